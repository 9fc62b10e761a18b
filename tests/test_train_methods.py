"""The training seam: methods by name, their own optimizers and named losses, frozen networks kept out of
the state, EMA and optimizers, per-method TOML tables, and old training states that still resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from jdsr_cli.errors import UsageError
from jdsr_cli.training.config import TrainConfig, load_config
from jdsr_cli.training.method_api import Batch, Losses
from jdsr_cli.training.methods.nets import build_net
from jdsr_cli.training.methods.supervised import Supervised
from jdsr_cli.training.step_context import StepContext
from jdsr_cli.training.trainer import Trainer

DUMMY = "dummy-teacher"


class TeacherGuided(Supervised):
    """A tiny distillation-shaped method: the student learns from HR and from a frozen teacher's output."""

    OPTIONS = {"teacher_weight": 0.5}

    def build(self, config: TrainConfig) -> None:
        super().build(config)
        self.teacher = build_net(self.arch_config)

    def frozen(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def train_step(self, batch: Batch, step: int, ctx: StepContext) -> Losses:
        with torch.no_grad():
            target = ctx.forward(self.teacher, batch.lr).float()
        sr = ctx.forward(self.net, batch.lr).float()
        loss_hr = nn.functional.l1_loss(sr, batch.hr)
        loss_teacher = nn.functional.l1_loss(sr, target)
        loss = loss_hr + self.options["teacher_weight"] * loss_teacher
        ctx.backward_and_step(loss, "main")
        return {"loss": loss, "loss_hr": loss_hr.detach(), "loss_teacher": loss_teacher.detach()}


@pytest.fixture
def dummy_method() -> Iterator[type[TeacherGuided]]:
    from jdsr_cli.training.registry import REGISTRY, register_method

    register_method(DUMMY)(TeacherGuided)
    try:
        yield TeacherGuided
    finally:
        REGISTRY.pop(DUMMY, None)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:5]:
        (root / path.name).write_bytes(path.read_bytes())
    return root


def _config(data: Path, out: Path, **kw: Any) -> TrainConfig:
    base = dict(data=str(data), scale=2, arch="edsr", preset="tiny", steps=6, batch_size=2, patch_size=16,
                val_every=3, save_every=3, log_every=1, out=str(out), device="cpu", workers=0, seed=3,
                val_fraction=0.3)
    base.update(kw)
    return load_config(None, base)


def test_methods_are_registered_by_name_and_config_methods_follows(dummy_method: type) -> None:
    from jdsr_cli.training.registry import method_class, method_names

    assert method_names()[:2] == ("supervised", "superior-lr") and DUMMY in method_names()
    assert method_class(DUMMY) is dummy_method and dummy_method.name == DUMMY
    assert [method_class(name).name for name in method_names()] == list(method_names())
    choices = "supervised or superior-lr or adversarial or jdsr or distill or dummy-teacher"
    with pytest.raises(UsageError, match=rf"--method 'nope': choose {choices}"):
        load_config(None, {"data": "x", "method": "nope"})


def test_train_help_names_every_method_of_the_registry() -> None:
    """The --method help is static (no training import at start-up): it must follow the registry."""
    from jdsr_cli.cli.train_cmd import METHOD_HELP
    from jdsr_cli.training.registry import method_names

    missing = [name for name in method_names() if name != "distill" and f"{name} (" not in METHOD_HELP]
    assert not missing, f"jdsr train --method help lacks {missing}"


def test_an_old_training_state_still_resumes(photos: Path, tmp_path: Path) -> None:
    """A training_state.pt written before methods owned their optimizers (model, optimizer, scheduler)."""
    straight = Trainer(_config(photos, tmp_path / "straight", ema_decay=0.9))
    full = straight.run()
    run = tmp_path / "split"
    Trainer(_config(photos, run, ema_decay=0.9)).run(stop_at=3)
    path = run / "last" / "training_state.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    old = {k: v for k, v in state.items() if k not in ("trainable", "optimizers", "schedulers")}
    old.update(model=state["trainable"]["net"], optimizer=state["optimizers"]["main"],
               scheduler=state["schedulers"]["main"])
    torch.save(old, path)
    resumed = Trainer(_config(photos, run, ema_decay=0.9, resume=str(run)))
    assert resumed.run().losses == pytest.approx(full.losses[3:], rel=1e-5, abs=1e-7)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert set(torch.load(path, weights_only=True)["trainable"]) == {"net"}  # saved again in the new layout


def test_a_frozen_network_is_used_but_never_trained_saved_or_averaged(photos: Path, tmp_path: Path,
                                                                      dummy_method: type) -> None:
    run = tmp_path / "run"
    trainer = Trainer(_config(photos, run, method=DUMMY, ema_decay=0.9))
    teacher = trainer.method.teacher  # type: ignore[attr-defined]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer.run()
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher_ids = {id(p) for p in teacher.parameters()}
    for optimizer in trainer.method.optimizers().values():
        assert not teacher_ids & {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trainer.ema is not None and {id(p) for p in trainer.ema.parameters()}.isdisjoint(teacher_ids)
    assert len(trainer.ema.state_dict()) == len(trainer.method.net.state_dict())  # type: ignore[attr-defined]
    state = torch.load(run / "last" / "training_state.pt", weights_only=True)
    assert set(state["trainable"]) == {"net"} and set(state["optimizers"]) == {"main"}
    assert not any("teacher" in str(key) for key in _all_keys(state))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 7))
    assert all({"loss_hr", "loss_teacher", "lr"} <= set(r) for r in steps)
    assert all(r["loss"] == pytest.approx(r["loss_hr"] + 0.5 * r["loss_teacher"], rel=1e-5) for r in steps)


def test_a_method_table_holds_its_options_and_refuses_unknown_keys(tmp_path: Path, dummy_method: type) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(f'data = "x"\nmethod = "{DUMMY}"\n\n[{DUMMY}]\nteacher_weight = 0.25\n')
    config = load_config(toml, {})
    assert config.method_options == {"teacher_weight": 0.25}
    assert load_config_text(tmp_path, config.to_toml()).method_options == {"teacher_weight": 0.25}
    toml.write_text(f'data = "x"\nmethod = "{DUMMY}"\n[{DUMMY}]\nteacher_wieght = 1\n')
    with pytest.raises(UsageError, match=rf"^\[{DUMMY}\]: unknown option\(s\) teacher_wieght; known: teacher_weight$"):
        load_config(toml, {})
    toml.write_text(f'data = "x"\n[{DUMMY}]\nteacher_weight = 1\n')
    with pytest.raises(UsageError, match=rf"\[{DUMMY}\] options, but the method is supervised"):
        load_config(toml, {})
    assert load_config(toml, {"method": DUMMY}).method_options == {"teacher_weight": 1}
    toml.write_text('data = "x"\n[supervised]\nanything = 1\n')
    with pytest.raises(UsageError, match=r"^\[supervised\]: unknown option\(s\) anything; known: none$"):
        load_config(toml, {})


def test_a_method_gets_its_table(photos: Path, tmp_path: Path, dummy_method: type) -> None:
    config = _config(photos, tmp_path / "run", method=DUMMY, method_options={"teacher_weight": 0.0}, steps=1)
    assert Trainer(config).method.options == {"teacher_weight": 0.0}  # type: ignore[attr-defined]


def load_config_text(tmp_path: Path, text: str) -> TrainConfig:
    path = tmp_path / "saved.toml"
    path.write_text(text)
    return load_config(path, {})


def _all_keys(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _all_keys(item)


def test_one_flag_to_option_mapping_for_every_training_command() -> None:
    from jdsr_cli.training.config import config_overrides

    assert config_overrides(data=Path("photos"), scale=2, lr=None, channels_last=False) == {
        "data": "photos", "scale": 2, "lr": None, "channels_last": False}
    with pytest.raises(TypeError, match="not training options: debug"):
        config_overrides(debug=True)
