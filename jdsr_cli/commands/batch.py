"""Batch processing shared by the image commands: output naming, planning, error isolation, reports.

The whole batch is planned before anything is written: every output path is known up front, and an
output that is (or would replace) any input of the batch, or that two inputs would share, is refused
whatever the order, except that an input named as another input's output (``a_x2.png`` beside
``a.png``, from an earlier run) is taken for that output, not for an input. A batch never stops at a bad
file (unless ``fail_fast``): any exception in one file's work becomes that file's ``failed`` record with
a one-line reason, and the batch goes on.
SIGINT/SIGTERM stop it between two steps: the file in progress leaves no temp file, and the outcome
says what was done so the caller can still print the summary and write the report.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jdsr_cli.commands.inputs import InputFile
from jdsr_cli.errors import Interrupted, JdsrError, UsageError, one_line
from jdsr_cli.io.atomic import no_clobber
from jdsr_cli.io.formats import default_output_extension
from jdsr_cli.io.video import is_video_path


@dataclass(frozen=True)
class OutputNaming:
    """Where outputs go: ``{stem}{suffix}.{ext}`` next to the input, mirrored under ``out_dir``, or
    ``out_file`` exactly (a batch of one input)."""

    suffix: str
    out_dir: Path | None = None
    extension: str | None = None  # without the dot; None keeps the input's (when we can write it)
    out_file: Path | None = None

    def __post_init__(self) -> None:
        separators = {"/", "\0"} | ({os.altsep} if os.altsep else set())
        if separators & set(self.suffix):
            raise UsageError(f"--suffix {self.suffix!r}: must not contain a path separator")

    def path_for(self, item: InputFile) -> Path:
        if self.out_file is not None:
            return self.out_file
        # a clip stays in its container whatever --format says (that names the images' format)
        ext = item.path.suffix.lstrip(".") if is_video_path(item.path) else \
            self.extension or default_output_extension(item.path.suffix)
        name = f"{item.path.stem}{self.suffix}.{ext}"
        folder = item.path.parent if self.out_dir is None else self.out_dir / item.relative.parent
        return folder / name


@dataclass(frozen=True)
class PlannedFile:
    """One input, its output, and the verdict reached before any work (None: process it)."""

    item: InputFile
    output: Path
    status: str | None = None  # None, "skipped" or "failed"
    reason: str | None = None
    replace: bool = True  # False: the output did not exist when planned; one that appears since is not replaced


def plan_batch(items: list[InputFile], naming: OutputNaming, *, overwrite: bool = False) -> list[PlannedFile]:
    """Every output path, decided before anything is written; collisions are refused, existing outputs skipped.

    An input that is another input's output (``a_x2.png`` beside ``a.png``, left by an earlier run of the same
    command) is that output, not a new input: it is skipped, and ``a.png`` treats it as its existing output.
    """
    outputs = {item.path: naming.path_for(item) for item in items}
    keys = {item.path: outputs[item.path].resolve() for item in items}  # each path resolved once (stat calls)
    resolved_inputs = {item.path: item.path.resolve() for item in items}
    earlier = _earlier_outputs(items, keys, resolved_inputs, naming)
    sources = [item for item in items if item.path not in earlier]
    inputs_by_path = {resolved_inputs[item.path]: item for item in sources}
    inputs_by_inode = {_inode(item.path): item for item in sources}
    claimed: dict[Path, InputFile] = {}
    plan = []
    for item in items:
        output, key = outputs[item.path], keys[item.path]
        if item.path in earlier:
            plan.append(PlannedFile(item, output, "skipped",
                                    f"the output of {earlier[item.path].path} in this batch, not an input"))
            continue
        victim = inputs_by_path.get(key) or (inputs_by_inode.get(_inode(output)) if output.exists() else None)
        if victim is not None:
            what = "the input itself" if victim is item else f"the input {victim.path}"
            plan.append(PlannedFile(item, output, "failed", f"{item.path}: output {output} would replace {what}"))
        elif key in claimed:
            plan.append(PlannedFile(item, output, "failed",
                                    f"{item.path}: output {output} is also the output of {claimed[key].path}"))
        else:
            claimed[key] = item
            skipped = output.exists() and not overwrite
            plan.append(PlannedFile(item, output, "skipped" if skipped else None,
                                    "output exists (use --overwrite)" if skipped else None, replace=overwrite))
    return plan


def _earlier_outputs(items: list[InputFile], keys: dict[Path, Path], resolved_inputs: dict[Path, Path],
                     naming: OutputNaming) -> dict[Path, InputFile]:
    """Inputs that are another input's output (named with the suffix, so by an earlier run), with that input.

    Without a suffix (``--suffix ''`` and another format) ``a.jpg`` beside ``a.png`` may be the user's own
    photo: it stays an input, and the output that would replace it is refused as before.
    """
    if not naming.suffix or naming.out_file is not None:
        return {}
    producers = {keys[item.path]: item for item in items}
    found = {}
    for item in items:
        producer = producers.get(resolved_inputs[item.path])
        if producer is not None and producer is not item:
            found[item.path] = producer
    return found


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


@dataclass
class FileReport:
    """One line of the batch report (also the JSON record)."""

    input: str
    output: str | None
    status: str  # "done" | "skipped" | "failed"
    error: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    traceback: str | None = None  # for --debug; never in the JSON record

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("traceback")
        record.update(record.pop("details"))
        return record


@dataclass
class BatchOutcome:
    """The reports of the files that were reached, and the interruption that stopped the batch, if any."""

    reports: list[FileReport]
    total: int
    interrupted: Interrupted | None = None

    def count(self, status: str) -> int:
        return sum(report.status == status for report in self.reports)

    @property
    def not_run(self) -> int:
        return self.total - len(self.reports)


#: process(item, output_path) -> details dict (a "warnings" list in it is lifted into the report).
ProcessFn = Callable[[InputFile, Path], dict[str, Any]]


def run_batch(
    plan: list[PlannedFile],
    process: ProcessFn,
    *,
    fail_fast: bool = False,
    on_start: Callable[[int, PlannedFile], None] | None = None,
    on_done: Callable[[FileReport], None] | None = None,
) -> BatchOutcome:
    """Process every planned file; a failure is recorded and the batch goes on (unless ``fail_fast``).

    Run it inside :func:`jdsr_cli.process.signals.signals_as_exceptions` so SIGTERM stops it
    like Ctrl-C does: the outcome then carries the interruption and the files done so far.
    """
    outcome = BatchOutcome([], len(plan))
    try:  # a signal may also arrive inside the callbacks (while a line is printed)
        for index, planned in enumerate(plan):
            if on_start is not None:
                on_start(index, planned)
            report = _process_one(planned, process)
            outcome.reports.append(report)
            if on_done is not None:
                on_done(report)
            if fail_fast and report.status == "failed":
                break
    except Interrupted as stop:
        outcome.interrupted = stop
    return outcome


def _process_one(planned: PlannedFile, process: ProcessFn) -> FileReport:
    item, output = planned.item, planned.output
    if planned.status is not None:
        return FileReport(str(item.path), str(output), planned.status, planned.reason)

    start = time.perf_counter()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with no_clobber(not planned.replace):
            details = dict(process(item, output))
    except KeyboardInterrupt:
        raise Interrupted(2, "interrupted (Ctrl-C)") from None
    except Interrupted:
        raise
    except Exception as error:  # noqa: BLE001 - any failure is this file's, never the batch's
        if _appeared(error, output):
            return FileReport(str(item.path), str(output), "skipped",
                              "output exists (it appeared after the batch started; use --overwrite)",
                              time.perf_counter() - start)
        return FileReport(str(item.path), str(output), "failed", failure_reason(error, item.path, output),
                          time.perf_counter() - start, traceback=traceback.format_exc())
    warnings = list(details.pop("warnings", []) or [])
    return FileReport(str(item.path), str(output), "done", None, time.perf_counter() - start, details, warnings)


def _appeared(error: BaseException, output: Path) -> bool:
    """Whether ``error`` (or what it was raised from) is the no-clobber refusal for ``output``."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, FileExistsError) and seen.filename == str(output):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def failure_reason(error: BaseException, path: Path, output: Path) -> str:
    """One line naming the file and the reason, whatever the exception."""
    if isinstance(error, JdsrError):
        text = str(error)
    elif isinstance(error, MemoryError):
        text = "out of memory"
    elif isinstance(error, OSError):
        where = error.filename or output.parent
        return f"{where}: {error.strerror or one_line(error)}"
    else:
        text = f"{type(error).__name__}: {one_line(error)} (unexpected; --debug shows the traceback)"
    return text if str(path) in text else f"{path}: {text}"

