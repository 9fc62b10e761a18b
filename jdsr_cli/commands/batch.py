"""Batch processing shared by the image commands: input discovery, output naming, error isolation.

A batch never stops at a bad file (unless ``fail_fast``): each file gets a ``FileReport`` with its
status and a one-line error, and the caller decides the exit code from the reports.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jdsr_cli.errors import JdsrError, UsageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    """An input image and its path relative to the folder it was found in (for mirroring)."""

    path: Path
    relative: Path


def collect_inputs(specs: Iterable[str], *, recursive: bool = False) -> list[InputFile]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of inputs.

    A file named explicitly is always attempted; inside folders and globs only known image
    extensions count. A path that does not exist is a usage error, reported before any work.
    """
    found: dict[Path, InputFile] = {}
    for spec in specs:
        for item in _expand(spec, recursive):
            found.setdefault(item.path.resolve(), item)
    return sorted(found.values(), key=lambda item: str(item.path))


def _expand(spec: str, recursive: bool) -> list[InputFile]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [InputFile(path, Path(path.name))]
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        return [
            InputFile(p, p.relative_to(path))
            for p in sorted(path.glob(pattern))
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]
    if _GLOB_CHARS & set(spec):
        matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=recursive))]
        return [InputFile(p, Path(p.name)) for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    raise UsageError(f"{spec}: no such file or folder")


def shard_for_rank(items: list[InputFile], rank: int, world: int) -> list[InputFile]:
    """Under ``torchrun``, rank r of w takes every w-th input (sorted order), so the ranks never collide."""
    return items[rank::world] if world > 1 else items


@dataclass(frozen=True)
class OutputNaming:
    """Where outputs go: ``{stem}{suffix}.{ext}`` next to the input, or mirrored under ``out_dir``."""

    suffix: str
    out_dir: Path | None = None
    extension: str | None = None  # without the dot; None keeps the input's

    def path_for(self, item: InputFile) -> Path:
        ext = self.extension or _writable_extension(item.path.suffix)
        name = f"{item.path.stem}{self.suffix}.{ext}"
        folder = item.path.parent if self.out_dir is None else self.out_dir / item.relative.parent
        return folder / name


def _writable_extension(suffix: str) -> str:
    """Keep the input's extension when we can write that format; otherwise PNG (e.g. for .gif)."""
    from jdsr_cli.io.formats import normalize_format

    ext = suffix.lstrip(".")
    return ext if ext and normalize_format(ext) is not None else "png"


@dataclass
class FileReport:
    """One line of the batch report (also the JSON record)."""

    input: str
    output: str | None
    status: str  # "done" | "skipped" | "failed"
    error: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(record.pop("details"))
        return record


#: process(item, output_path) -> details dict; raises JdsrError for an expected per-file failure.
ProcessFn = Callable[[InputFile, Path], dict[str, Any]]


def run_batch(
    items: list[InputFile],
    naming: OutputNaming,
    process: ProcessFn,
    *,
    overwrite: bool = False,
    fail_fast: bool = False,
    on_start: Callable[[int, InputFile, Path], None] | None = None,
    on_done: Callable[[FileReport], None] | None = None,
) -> list[FileReport]:
    """Process every item; a failure is recorded and the batch goes on (unless ``fail_fast``)."""
    reports: list[FileReport] = []
    planned: dict[Path, Path] = {}
    for index, item in enumerate(items):
        output = naming.path_for(item)
        if on_start is not None:
            on_start(index, item, output)
        report = _process_one(item, output, process, overwrite, planned)
        reports.append(report)
        if on_done is not None:
            on_done(report)
        if fail_fast and report.status == "failed":
            break
    return reports


def _process_one(
    item: InputFile, output: Path, process: ProcessFn, overwrite: bool, planned: dict[Path, Path]
) -> FileReport:
    key = output.resolve()
    if key == item.path.resolve():
        return FileReport(str(item.path), str(output), "failed", f"{item.path}: output would overwrite the input")
    if key in planned:
        return FileReport(
            str(item.path), str(output), "failed", f"{item.path}: output {output} is also the output of {planned[key]}"
        )
    planned[key] = item.path
    if output.exists() and not overwrite:
        return FileReport(str(item.path), str(output), "skipped", "output exists (use --overwrite)")
    start = time.perf_counter()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        details = process(item, output)
    except JdsrError as error:
        return FileReport(str(item.path), str(output), "failed", str(error), time.perf_counter() - start)
    except OSError as error:
        reason = error.strerror or str(error)
        where = error.filename or output.parent
        return FileReport(str(item.path), str(output), "failed", f"{where}: {reason}", time.perf_counter() - start)
    return FileReport(str(item.path), str(output), "done", None, time.perf_counter() - start, details)


#: transform(image) -> (new image, details for the report); raises JdsrError for a per-file failure.
ImageTransform = Callable[[Any], tuple[Any, dict[str, Any]]]


def image_processor(
    transform: ImageTransform,
    *,
    keep_alpha: bool = True,
    fmt: str | None = None,
    quality: int | None = None,
    lossless: bool = False,
    strip_metadata: bool = False,
    max_pixels: int | None = None,
) -> ProcessFn:
    """Read → ``transform`` → write atomically: the per-file work every image command shares.

    An image with real transparency is refused up front (before any compute) when the output format
    cannot store alpha, unless the command drops alpha (``keep_alpha=False``).
    """
    from jdsr_cli.errors import ImageWriteError
    from jdsr_cli.io.formats import format_supports_16bit, format_supports_alpha
    from jdsr_cli.io.image import read_image, write_image
    from jdsr_cli.ops.alpha import is_constant

    def process(item: InputFile, output: Path) -> dict[str, Any]:
        image = read_image(item.path, max_pixels=max_pixels)
        out_format = output.suffix.lstrip(".").lower()
        opaque = image.alpha is not None and is_constant(image.alpha) == 1.0
        if image.has_alpha and keep_alpha and not opaque and not format_supports_alpha(out_format):
            raise ImageWriteError(
                f"{item.path}: has an alpha channel and {out_format.upper()} cannot store one "
                "(use --alpha discard or --format png/webp/tiff)"
            )
        try:
            result, details = transform(image)
        except JdsrError as error:  # every per-file message names its file
            if str(item.path) in str(error):
                raise
            raise type(error)(f"{item.path}: {error}") from None
        write_image(output, result, format=fmt, quality=quality, lossless=lossless, strip_metadata=strip_metadata)
        details = dict(details)
        details["bit_depth"] = image.bit_depth
        if result.bit_depth > 8 and not format_supports_16bit(out_format):
            details["warning"] = f"saved as 8-bit: {out_format.upper()} cannot store 16-bit samples"
        return details

    return process
