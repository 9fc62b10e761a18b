"""A checkpoint folder changes as a whole: a kill or an error at any filesystem step leaves one that loads.

The crash is injected before every filesystem call a save makes (``os.mkdir``, ``os.rename``, ``os.replace``,
``os.fsync``, ``os.link``, ``os.unlink``, ``os.rmdir``: counted, not named, so a new step is covered
without touching this test). A *kill* runs the save in a forked child that ``os._exit``s at step k, so no
``except``/``finally`` of ours runs, exactly as with kill -9; an *error* raises ``OSError`` at step k in
process. After each: the path loads the old or the new weights, never a mix, and a later save leaves
nothing of ours behind.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.checkpoints.save import save_checkpoint
from tests.helpers.tinynet import TINY_REGISTRY, make_tiny, tiny_config

FS_CALLS = ("mkdir", "rename", "replace", "fsync", "link", "unlink", "rmdir")
KILLED = 77
OLD, NEW, NEWER = make_tiny(seed=1), make_tiny(seed=2), make_tiny(seed=3)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill is simulated with fork + _exit")


def _inject(at: int, action: Callable[[], None], count: list[int] | None = None) -> dict[str, Callable[..., object]]:
    """Replace the os filesystem calls by counters that run ``action`` before call number ``at``."""
    count = count if count is not None else [0]
    originals = {name: getattr(os, name) for name in FS_CALLS}

    def wrap(fn: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            if count[0] == at:
                action()
            count[0] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name, fn in originals.items():
        setattr(os, name, wrap(fn))
    return originals


def _save_killed_at(step: int, folder: Path) -> int:
    """Save NEW into ``folder`` in a child killed before filesystem call ``step``; its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            _inject(step, lambda: os._exit(KILLED))
            save_checkpoint(folder, NEW, tiny_config(), name="new")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _which(folder: Path) -> str:
    """'old' or 'new': what loads from ``folder`` (it must load)."""
    loaded = load_checkpoint(folder, registry=TINY_REGISTRY)
    state = loaded.model.state_dict()
    for label, model in (("old", OLD), ("new", NEW), ("newer", NEWER)):
        if all(torch.equal(v, state[k]) for k, v in model.state_dict().items()):
            return label
    raise AssertionError(f"{folder} loads weights that are neither old nor new")


def _ours(parent: Path) -> list[str]:
    """Hidden entries: anything a save left next to its folder."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _later_save_cleans_up(folder: Path, extra: str | None) -> None:
    save_checkpoint(folder, NEWER, tiny_config(), name="newer")
    assert _which(folder) == "newer" and _ours(folder.parent) == []
    expected = {"config.json", "model.safetensors", *([extra] if extra else [])}
    assert {p.name for p in folder.iterdir()} == expected


@pytest.mark.parametrize("previous", [True, False], ids=["replace", "first-save"])
def test_a_kill_at_any_step_leaves_a_loadable_checkpoint(tmp_path: Path, previous: bool) -> None:
    seen: list[str] = []
    for step in range(60):
        folder = tmp_path / f"k{step}" / "last"
        if previous:
            save_checkpoint(folder, OLD, tiny_config(), name="old")
            (folder / "training_state.pt").write_bytes(b"resume state")  # not ours: carried over
        code = _save_killed_at(step, folder)
        if code == 0:  # the save no longer reaches step k: every step has been tried
            break
        assert code == KILLED
        if previous:
            seen.append(_which(folder))  # loads (finishing or undoing the swap if needed)
            assert (folder / "training_state.pt").read_bytes() == b"resume state"
        elif folder.exists():
            assert _which(folder) == "new"
        else:
            with pytest.raises(Exception, match="no such file or folder"):
                load_checkpoint(folder, registry=TINY_REGISTRY)
        _later_save_cleans_up(folder, "training_state.pt" if previous else None)
    else:
        pytest.fail("the save never completed")
    assert step >= 8, f"only {step} filesystem steps were interrupted: is the injection working?"
    if previous:
        assert seen[0] == "old" and seen[-1] == "new" and set(seen) == {"old", "new"}


def _restore(originals: dict[str, Callable[..., object]]) -> None:
    for name, fn in originals.items():
        setattr(os, name, fn)


def test_an_error_at_any_step_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    def fail() -> None:
        raise OSError(errno.EIO, "injected failure")

    save_checkpoint(tmp_path / "count", OLD, tiny_config())
    calls = [0]
    originals = _inject(-1, fail, calls)
    try:
        save_checkpoint(tmp_path / "count", NEW, tiny_config())
    finally:
        _restore(originals)
    assert calls[0] >= 8
    for step in range(calls[0]):
        folder = tmp_path / f"e{step}" / "best"
        save_checkpoint(folder, OLD, tiny_config(), name="old")
        originals = _inject(step, fail)
        try:
            save_checkpoint(folder, NEW, tiny_config(), name="new")
            completed = True
        except OSError as error:
            assert "injected failure" in str(error)
            completed = False
        finally:
            _restore(originals)
        assert _which(folder) == "new" if completed else _which(folder) in ("old", "new")
        _later_save_cleans_up(folder, None)


def test_leftovers_of_live_processes_and_other_files_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "best"
    save_checkpoint(folder, OLD, tiny_config())
    live = tmp_path / f".best.jdsr-{os.getppid()}-0123abcd.new"  # a save in progress in another process
    live.mkdir()
    dead = tmp_path / ".best.jdsr-999999999-0123abcd.new"  # no such process
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"half")
    other = tmp_path / ".best.backup"  # not our pattern
    other.mkdir()
    save_checkpoint(folder, NEW, tiny_config())
    assert _ours(tmp_path) == sorted([live.name, other.name]) and _which(folder) == "new"


def test_save_into_a_symlinked_folder_replaces_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real"
    save_checkpoint(real, OLD, tiny_config())
    real.chmod(0o750)  # the folder's permissions survive the swap
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    save_checkpoint(link, NEW, tiny_config())
    assert link.is_symlink() and _which(real) == "new" and _ours(tmp_path) == []
    assert real.stat().st_mode & 0o777 == 0o750


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ckpt").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="ckpt"):
        save_checkpoint(tmp_path / "ckpt", NEW, tiny_config())
    assert (tmp_path / "ckpt").read_text() == "not a folder" and _ours(tmp_path) == []


def test_a_write_error_without_a_file_name_names_the_folder(tmp_path: Path) -> None:
    """A full disk fails a write() with no file name; the error says which folder could not be replaced."""
    from jdsr_cli.checkpoints.swap import replace_folder

    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(OSError, match="No space left on device") as caught:
        with replace_folder(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert (target / "keep.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


# ------------------------------------------------------------------ the window between the two renames

def _real_pair() -> tuple[object, object, object]:
    """An old and a new tiny FSRCNN (a real architecture, so `jdsr upscale --model` can load them)."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig

    config = ArchConfig("fsrcnn", 2, {"d": 8, "s": 4, "m": 1})
    torch.manual_seed(1)
    old = REGISTRY.build(config).eval()
    torch.manual_seed(2)
    return config, old, REGISTRY.build(config).eval()


def _save_real_killed_at(step: int, folder: Path, model: object, config: object, *, exchange: bool) -> int:
    """As ``_save_killed_at``, with a real model; ``exchange=False`` forces the two-rename fallback, else the
    atomic exchange counts as one filesystem step too."""
    from jdsr_cli.checkpoints import swap

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            count = [0]
            _inject(step, lambda: os._exit(KILLED), count)
            original = getattr(swap, "_exchange", None)

            def counted(*args: object) -> bool:
                if count[0] == step:
                    os._exit(KILLED)
                count[0] += 1
                return original(*args) if exchange and original is not None else False

            swap._exchange = counted  # type: ignore[attr-defined]
            save_checkpoint(folder, model, config, name="new")  # type: ignore[arg-type]
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_a_kill_between_the_renames_still_loads_with_model(tmp_path: Path, exchange: bool) -> None:
    """`jdsr upscale --model RUN/last` works after a kill at any filesystem call of a save of last/ (the audit's
    window: killed between `last -> .last…old` and `.last…new -> last`, RUN had no last/ at all)."""
    import sys

    from PIL import Image
    from typer.testing import CliRunner

    from jdsr_cli.cli.main import app

    if exchange and sys.platform != "linux":
        pytest.skip("the atomic folder exchange is Linux's renameat2")
    config, old, new = _real_pair()
    image = tmp_path / "in.png"
    Image.new("RGB", (16, 16), (90, 120, 30)).save(image)
    outputs: set[bytes] = set()
    for step in range(60):
        run = tmp_path / f"run{step}"
        save_checkpoint(run / "last", old, config, name="old")  # type: ignore[arg-type]
        code = _save_real_killed_at(step, run / "last", new, config, exchange=exchange)
        if code == 0:
            break
        assert code == KILLED
        if exchange:  # one atomic step: last/ is never missing, not even before a loader runs
            assert (run / "last" / "model.safetensors").is_file(), sorted(p.name for p in run.iterdir())
        out = tmp_path / f"out{step}.png"
        result = CliRunner().invoke(app, ["upscale", str(image), "-o", str(out), "--model", str(run / "last"),
                                          "--device", "cpu"])
        assert result.exit_code == 0, (step, result.output)
        outputs.add(out.read_bytes())
    else:
        pytest.fail("the save never completed")
    assert step >= 8 and len(outputs) == 2, (step, len(outputs))  # the old weights, then the new ones


def test_run_folder_loaders_recover_a_swap_killed_between_the_renames(tmp_path: Path) -> None:
    """Where the swap is two renames (no atomic exchange), every loader of a run folder finishes a dead save first:
    `models publish RUN` still takes best/, and `train --out RUN` still sees a run there."""
    import shutil

    from jdsr_cli.checkpoints.publish import checkpoint_of_run
    from jdsr_cli.errors import UsageError
    from jdsr_cli.io.atomic import host_tag
    from jdsr_cli.training.resume import check_new_run_folder

    run = tmp_path / "run"
    for which in ("best", "last"):
        save_checkpoint(run / which, OLD, tiny_config(), name=which)
        token = f"999999999-{host_tag()}-0123abcd"  # a dead process of this host, killed between the renames
        os.rename(run / which, run / f".{which}.jdsr-{token}.old")
        shutil.copytree(run / f".{which}.jdsr-{token}.old", run / f".{which}.jdsr-{token}.new")
    with pytest.raises(UsageError, match="already holds a training run"):
        check_new_run_folder(run)
    assert checkpoint_of_run(run) == run / "best"
    assert _ours(run) == []
