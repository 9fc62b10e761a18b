"""Run folders and configs written before the methods had one home still load and resume: superior-lr's options
as top-level keys (now its ``[superior-lr]`` table), ``[distill] loss`` and ``jdsr distill --method`` (now
``kd_loss`` / ``--kd-loss``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jdsr_cli.cli.main import app
from jdsr_cli.errors import UsageError
from jdsr_cli.training.config import load_config
from jdsr_cli.training.resume import check_unchanged
from jdsr_cli.training.run_folder import ResumeError, RunFolder
from jdsr_cli.training.trainer import Trainer

HEADER = "# the options of a jdsr training run, written by jdsr (give it to --config to start a new run)\n"
# what `jdsr train` wrote into every run's config.toml before superior-lr had a table, whatever the method
FLAT_SUPERIOR_LR = ('encoder_preset = "small"\nencoder_kwargs = {}\nlr_weight = 0.1\nsr_weight = 1.0\n'
                    'slr_rounding = "ste"\n')
OLD_DISTILL = (HEADER + 'data = "photos"\nscale = 2\narch = "pan"\narch_kwargs = {}\nmethod = "distill"\n'
               + FLAT_SUPERIOR_LR + 'steps = 1000\nout = "runs/train"\n\n[distill]\nloss = "fitnet"\n'
               'teachers = ["imdn-x2"]\n')


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:5]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def _old_format(toml: str) -> str:
    """A config.toml as earlier versions wrote it: superior-lr's options as top-level keys, no table."""
    head, _, table = toml.partition("\n[superior-lr]\n")
    return head.replace('method = "superior-lr"\n', 'method = "superior-lr"\n' + table.strip() + "\n").rstrip() + "\n"


def test_the_flat_superior_lr_keys_are_its_table_or_dropped(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text(HEADER + 'data = "photos"\nscale = 2\nmethod = "superior-lr"\nencoder_preset = "small"\n'
                   'encoder_kwargs = {}\nlr_weight = 0.25\nsr_weight = 1.0\nslr_rounding = "none"\n')
    config = load_config(old, {})
    assert config.method_options == {"encoder_preset": "small", "encoder_kwargs": {}, "lr_weight": 0.25,
                                     "sr_weight": 1.0, "slr_rounding": "none"}
    assert "[superior-lr]" in config.to_toml() and "\nlr_weight = 0.25" in config.to_toml()
    assert load_config(old, {"method_options": {"lr_weight": 0.5}}).method_options["lr_weight"] == 0.5
    plain = tmp_path / "plain.toml"
    plain.write_text(HEADER + 'data = "photos"\nmethod = "supervised"\n' + FLAT_SUPERIOR_LR)
    assert load_config(plain, {}).method_options == {}
    with pytest.raises(UsageError, match=r"\[superior-lr\] slr_rounding = 'round': choose ste or none"):
        load_config(None, {"data": "x", "method": "superior-lr", "method_options": {"slr_rounding": "round"}})
    with pytest.raises(UsageError, match="--lr-weight: an option of --method superior-lr; this run's method is "
                                         "supervised"):
        load_config(None, {"data": "x", "method_options": {"lr_weight": 0.5}})


def test_an_old_distill_table_reads_loss_as_kd_loss(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(OLD_DISTILL)
    saved = RunFolder(run).read_config()
    assert saved.method_options == {"kd_loss": "fitnet", "teachers": ["imdn-x2"]}
    same = load_config(run / "config.toml", {"method_options": {"kd_loss": "fitnet"}, "resume": str(run)})
    check_unchanged(saved, same, run)
    other = load_config(run / "config.toml", {"method_options": {"kd_loss": "fakd"}, "resume": str(run)})
    with pytest.raises(ResumeError, match=r"\[distill\] kd_loss fakd: .* was trained with \[distill\] kd_loss fitnet"):
        check_unchanged(saved, other, run)
    both = tmp_path / "both.toml"
    both.write_text(OLD_DISTILL.replace('loss = "fitnet"\n', 'loss = "fitnet"\nkd_loss = "fakd"\n'))
    with pytest.raises(UsageError, match=r"\[distill\] loss and kd_loss are one option: keep kd_loss"):
        load_config(both, {})


def test_distill_kd_loss_and_its_former_name(photos: Path, tmp_path: Path) -> None:
    base = ["distill", str(photos), "-s", "2", "--teacher", "imdn-x2", "--student-arch", "pan",
            "--out", str(tmp_path / "x")]
    runner = CliRunner()
    for extra, message in ((["--kd-loss", "magic"], "--kd-loss 'magic': choose output, fitnet"),
                           (["--kd-loss", "fakd", "--method", "fitnet"], "--method is the former name of --kd-loss")):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in result.output, result.output
    shown = runner.invoke(app, ["distill", "--help"]).output
    assert "--kd-loss" in shown and "Former name" not in shown  # --method is hidden
    assert not (tmp_path / "x").exists()


def test_a_superior_lr_run_folder_of_an_earlier_version_resumes_exactly(photos: Path, tmp_path: Path) -> None:
    options = dict(data=str(photos), scale=2, method="superior-lr", arch="edsr", preset="tiny", steps=4,
                   batch_size=2, patch_size=16, val_every=2, save_every=2, log_every=1, device="cpu", workers=0,
                   seed=3, val_fraction=0.3, method_options={"lr_weight": 0.2})
    full = Trainer(load_config(None, {**options, "out": str(tmp_path / "straight")})).run()
    run = tmp_path / "split"
    Trainer(load_config(None, {**options, "out": str(run)})).run(stop_at=2)
    toml = (run / "config.toml").read_text()
    assert "[superior-lr]" in toml
    (run / "config.toml").write_text(_old_format(toml))
    assert "\nlr_weight = 0.2\n" in (run / "config.toml").read_text() and "[superior-lr]" not in _old_format(toml)
    resumed = Trainer(load_config(run / "config.toml", {"resume": str(run), "out": str(run)}))
    assert resumed.config.method_options["lr_weight"] == 0.2
    assert resumed.run().losses == pytest.approx(full.losses[2:], rel=1e-5, abs=1e-7)
