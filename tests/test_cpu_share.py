"""Sharing the CPU: one torch thread per core other processes leave idle (jdsr_cli.process.cpu_share)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

from jdsr_cli.process import cpu_share
from jdsr_cli.process.cpu_share import CpuSample, CpuShare, cores_left, read_cpu_sample, threads_for


def test_cores_left_subtracts_this_process_from_all_busy_time() -> None:
    before = CpuSample(busy=1000, total=2000, own=100)
    # 200 ticks of wall time on 2 cores = 400 ticks in all; 300 busy, 120 of them ours: others used 180
    after = CpuSample(busy=1300, total=2400, own=220)
    assert cores_left(before, after, cores=2) == pytest.approx(2 * (1 - 180 / 400))
    assert cores_left(before, before, cores=4) == 4.0  # no time passed: assume all free
    assert cores_left(before, CpuSample(1400, 2400, 600), cores=2) == 2.0  # ours counted late: never above cores


@pytest.mark.parametrize(("idle", "most", "threads"), [(2.0, 2, 2), (1.6, 2, 2), (1.4, 2, 1), (0.0, 8, 1),
                                                       (7.7, 8, 8), (30.0, 8, 8), (3.5, 8, 4)])
def test_one_thread_per_idle_core(idle: float, most: int, threads: int) -> None:
    assert threads_for(idle, most) == threads


def test_counters_are_parsed_from_proc_files(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 1 2 3 4\n")
    own = tmp_path / "self"
    own.write_text("4242 (a (tricky) name) R 1 2 3 4 5 6 7 8 9 10 77 33 0 0 20 0 4 0 1\n")
    sample = read_cpu_sample(str(stat), str(own))
    assert sample == CpuSample(busy=100 + 5 + 50 + 3 + 2 + 10, total=170 + 1000 + 20, own=77 + 33)
    assert read_cpu_sample(str(tmp_path / "missing"), str(own)) is None


def test_only_the_cpus_this_process_may_use_count(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  300 0 0 300 0 0 0 0\ncpu0 100 0 0 100 0 0 0 0\ncpu1 200 0 0 100 0 0 0 0\n"
                    "cpu2 0 0 0 100 0 0 0 0\nintr 1 2 3\n")
    own = tmp_path / "self"
    own.write_text("1 (x) R 1 2 3 4 5 6 7 8 9 10 5 5 0 0 20 0 4 0 1\n")
    assert read_cpu_sample(str(stat), str(own), cpus=frozenset({1, 2})) == CpuSample(busy=200, total=400, own=10)
    assert read_cpu_sample(str(stat), str(own), cpus=frozenset({7})) is None  # no such CPU: no sample


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_this_process_own_time_is_counted() -> None:
    before = read_cpu_sample()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = read_cpu_sample()
    assert before is not None and after is not None
    assert after.own - before.own >= 20  # 0.3 s at the usual 100 ticks per second, with slack
    assert after.busy - before.busy >= after.own - before.own - 5


@pytest.fixture()
def restore_threads():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _scripted(monkeypatch: pytest.MonkeyPatch, samples: list[CpuSample]) -> None:
    feed = iter(samples)
    monkeypatch.setattr(cpu_share, "read_cpu_sample", lambda **_: next(feed))
    monkeypatch.setattr(cpu_share, "MIN_WINDOW_S", 0.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(cpu_share.OPT_OUT_VARIABLE, raising=False)


def test_the_thread_count_follows_the_idle_cores(monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    _scripted(monkeypatch, [
        CpuSample(0, 0, 0),
        CpuSample(busy=400, total=400, own=200),  # another process used one of the two cores
        CpuSample(busy=600, total=800, own=400),  # it stopped
    ])
    torch.set_num_threads(2)
    share = CpuShare(cores=2)
    assert share.adjust() == 1 and torch.get_num_threads() == 1
    assert share.adjust() == 2 and torch.get_num_threads() == 2


def test_the_count_is_given_back(monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    _scripted(monkeypatch, [CpuSample(0, 0, 0), CpuSample(busy=400, total=400, own=0)])
    torch.set_num_threads(2)
    share = CpuShare(cores=2)
    assert share.adjust() == 1 and torch.get_num_threads() == 1
    share.restore()
    assert torch.get_num_threads() == 2 and share.threads == 2


def test_the_thread_count_does_not_change_the_pixels(restore_threads: None) -> None:
    """Sharing changes the thread count between files: the output must not depend on it."""
    import numpy as np

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler

    image = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    upscaler = create_upscaler(resolve_model("imdn-x4", scale=None), device="cpu", precision="fp32", tile=0)
    outputs = []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        outputs.append(np.asarray(upscaler.upscale(image, depth=8).pixels, dtype=np.int16))
    differ = outputs[0] != outputs[1]
    assert np.abs(outputs[0] - outputs[1]).max() <= 1 and differ.mean() < 1e-3


def test_opting_out_leaves_the_thread_count_alone(monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    _scripted(monkeypatch, [CpuSample(0, 0, 0), CpuSample(400, 400, 0)])
    monkeypatch.setenv(cpu_share.OPT_OUT_VARIABLE, "0")
    threads = torch.get_num_threads()
    share = CpuShare(max_threads=2, cores=2)
    assert not share.enabled and share.adjust() is None and torch.get_num_threads() == threads
    monkeypatch.delenv(cpu_share.OPT_OUT_VARIABLE)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert not CpuShare(max_threads=2, cores=2).enabled


def test_short_windows_keep_the_count(monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> None:
    _scripted(monkeypatch, [CpuSample(0, 0, 0), CpuSample(400, 400, 0)])
    monkeypatch.setattr(cpu_share, "MIN_WINDOW_S", 60.0)
    torch.set_num_threads(2)
    share = CpuShare(max_threads=2, cores=2)
    assert share.adjust() == 2 and torch.get_num_threads() == 2


class _CountingShare:
    def __init__(self) -> None:
        self.calls = 0
        self.restored = False
        self.threads, self.max_threads = 1, 2

    def adjust(self) -> int:
        self.calls += 1
        return 1

    def restore(self) -> None:
        self.restored = True


def test_image_jobs_look_before_each_file_and_after_each_tile_batch(tmp_path: Path,
                                                                    trained_checkpoint: Path) -> None:
    from PIL import Image as PILImage

    from jdsr_cli.commands.imagejob import run_image_job
    from jdsr_cli.commands.upscale_job import UpscaleRequest, prepare_upscale

    for name in ("a.png", "b.png"):
        PILImage.new("RGB", (64, 64), "gray").save(tmp_path / name)
    job = prepare_upscale(UpscaleRequest(inputs=[str(tmp_path / "a.png"), str(tmp_path / "b.png")],
                                         output=tmp_path / "out", model=str(trained_checkpoint), tile=32,
                                         tile_overlap=4, batch_size=1))
    share = _CountingShare()
    outcome = run_image_job(job, cpu_share=share)  # type: ignore[arg-type]
    assert share.restored
    assert outcome.count("done") == 2
    assert all(r.details["threads"] == 1 and r.details["max_threads"] == 2 for r in outcome.reports)
    tiles = [report.details["tiles"] for report in outcome.reports]
    assert min(tiles) > 1
    assert share.calls == sum(1 + n for n in tiles)  # each file: once before it, once after each of its tiles


def test_doctor_says_whether_commands_share_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from jdsr_cli.cli.main import app

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(cpu_share.OPT_OUT_VARIABLE, "0")
    off = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert off.exit_code == 0 and "off (JDSR_CPU_SHARE=0)" in off.output
    monkeypatch.delenv(cpu_share.OPT_OUT_VARIABLE)
    on = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    expected = "on: upscale, downscale and eval" if sys.platform.startswith("linux") else "off (no /proc/stat"
    assert expected in on.output


def test_eval_looks_after_each_image(monkeypatch: pytest.MonkeyPatch, data_dir: Path,
                                     trained_checkpoint: Path) -> None:
    from typer.testing import CliRunner

    from jdsr_cli.cli.main import app

    calls = []
    monkeypatch.setattr(CpuShare, "adjust", lambda self: calls.append(1) or 1)
    result = CliRunner().invoke(app, ["eval", str(trained_checkpoint), "--data", str(data_dir), "--sets", "Set5"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 5  # Set5's five images


def test_the_progress_line_says_when_a_file_ran_on_fewer_threads() -> None:
    from jdsr_cli.cli.batch_cmd import _shared_cpu

    assert _shared_cpu({"threads": 1, "max_threads": 2}) == ", 1 of 2 CPU threads (others busy)"
    assert _shared_cpu({"threads": 2, "max_threads": 2}) == "" and _shared_cpu({}) == ""
