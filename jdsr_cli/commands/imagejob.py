"""The typed job both image commands build, and the per-file work they share: read, check, transform, write.

A job is everything validated before the first image is read: the planned batch, the read and write
options, and a transform (upscale or downscale) that also says how large an image it will hold, so an
output that cannot fit (``--width 100000``, or a bomb-sized input) fails its file before any compute.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image as PILImage

from jdsr_cli.commands.batch import BatchOutcome, FileReport, OutputNaming, PlannedFile, ProcessFn, run_batch
from jdsr_cli.commands.inputs import InputFile, collect_inputs
from jdsr_cli.commands.sharding import plan_for_this_rank
from jdsr_cli.engine import memory
from jdsr_cli.errors import ImageWriteError, JdsrError, ResourceError, UsageError, is_out_of_memory
from jdsr_cli.io.animation import ANIMATION_FORMATS, Animation, read_frames, write_animation
from jdsr_cli.io.atomic import remove_stale_temp_files
from jdsr_cli.io.destinations import check_output_file, check_output_folder, check_report_file
from jdsr_cli.io.formats import (
    format_from_path,
    format_supports_16bit,
    format_supports_alpha,
    format_supports_lossless,
    output_extension,
)
from jdsr_cli.io.image import Image, write_image
from jdsr_cli.io.video import is_video_path
from jdsr_cli.io.writer import check_size
from jdsr_cli.ops.alpha import is_constant
from jdsr_cli.process.signals import signals_as_exceptions

if TYPE_CHECKING:  # torch and the CPU sharing only where a command brings them
    from jdsr_cli.engine.upscaler import ProgressCallback
    from jdsr_cli.process.cpu_share import CpuShare

#: An output may have this many times the pixels of the largest input ``--max-pixels`` allows (×4 SR).
OUTPUT_PIXELS_PER_INPUT_PIXEL = 16
#: Peak bytes per output sample while an output is made: the float32 tile accumulator and its result,
#: then the result and the float32/uint8 copies of the writer (measured peaks are 8-12 per sample).
WORKING_BYTES_PER_SAMPLE = 12


@dataclass(frozen=True)
class ReadOptions:
    """``max_pixels``: the decompression-bomb limit (None: Pillow's default, 0: none); ``strict``: fail
    files the decoder complained about instead of reporting them with a warning."""

    max_pixels: int | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if self.max_pixels is not None and self.max_pixels < 0:
            raise UsageError(f"--max-pixels {self.max_pixels}: use a positive number, or 0 for no limit")

    def output_pixel_limit(self) -> int | None:
        """The largest output in pixels: 16 × the input limit (None when ``--max-pixels 0``)."""
        if self.max_pixels == 0:
            return None
        base = self.max_pixels if self.max_pixels is not None else PILImage.MAX_IMAGE_PIXELS
        return None if base is None else int(base) * OUTPUT_PIXELS_PER_INPUT_PIXEL


@dataclass(frozen=True)
class WriteOptions:
    """How outputs are encoded: ``fmt`` as given to ``--format`` (None keeps each input's)."""

    fmt: str | None = None
    quality: int | None = None
    lossless: bool = False
    strip_metadata: bool = False

    def __post_init__(self) -> None:
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise UsageError(f"--quality {self.quality}: use 1..100")
        extension = self.extension
        if self.lossless and extension is not None and not format_supports_lossless(extension):
            raise UsageError(f"--lossless: {extension.upper()} cannot be saved losslessly; use PNG, WebP or TIFF")

    @property
    def extension(self) -> str | None:
        return output_extension(self.fmt)

    def save(self, path: Path, output: Image | Animation) -> None:
        """Encode ``output`` (an image, or every frame of an animation) as these options say, atomically."""
        writer = write_animation if isinstance(output, Animation) else write_image
        writer(path, output, format=self.fmt, quality=self.quality, lossless=self.lossless,  # type: ignore[operator]
               strip_metadata=self.strip_metadata)


@dataclass(frozen=True)
class BatchRequest:
    """The options every image command takes, as parsed (nothing checked yet)."""

    inputs: list[str]
    output: Path | None = None
    scale: int | None = None
    model: str | None = None
    recursive: bool = False
    suffix: str | None = None
    overwrite: bool = False
    read: ReadOptions = field(default_factory=ReadOptions)
    write: WriteOptions = field(default_factory=WriteOptions)
    alpha: str = "auto"
    device: str = "auto"
    tile: str | int = "auto"
    width: int | None = None
    height: int | None = None
    report: Path | None = None  # the --json path, checked up front

    @property
    def output_file(self) -> Path | None:
        """``-o`` as the one output's exact path: it ends in an image extension and is not a folder.

        ``jdsr upscale photo.jpg -o big.png`` writes ``big.png``, not a folder of that name.
        """
        if self.output is None or self.output.expanduser().is_dir() or \
                (format_from_path(self.output) is None and not is_video_path(self.output)):
            return None
        return self.output.expanduser()

    @property
    def output_folder(self) -> Path | None:
        """``-o`` as the folder outputs go to (None: next to each input, or ``-o`` names a file)."""
        return None if self.output_file is not None else self.output

    def check_destinations(self) -> None:
        """``-o``, ``--json`` and ``--suffix``, before any model is loaded or image read."""
        file = self.output_file
        if file is not None:
            check_output_file(file, self.output, fmt=self.write.fmt, suffix=self.suffix, lossless=self.write.lossless)
        else:
            check_output_folder(self.output)
        check_report_file(self.report)
        OutputNaming(self.suffix or "", self.output_folder, self.write.extension)

    def find_inputs(self) -> list[InputFile]:
        """Every input (never from inside ``-o``); a missing path or no image at all is a usage error."""
        items = collect_inputs(self.inputs, recursive=self.recursive, output_dir=self.output_folder)
        if not items:
            raise UsageError(f"no images found in {', '.join(self.inputs)}")
        if self.output_file is not None and len(items) > 1:
            raise UsageError(f"-o {self.output}: names one output file, but {len(items)} images were found; "
                             "give a folder for several (-o out/)")
        return items

    def plan(self, items: list[InputFile], default_suffix: str) -> list[PlannedFile]:
        """The planned batch of this process (all inputs planned, then this rank's share)."""
        suffix = self.suffix if self.suffix is not None else default_suffix
        naming = OutputNaming(suffix, self.output_folder, self.write.extension, out_file=self.output_file)
        return plan_for_this_rank(items, naming, overwrite=self.overwrite)


class ImageTransform(Protocol):
    """What an image command does to one image."""

    keep_alpha: bool

    def peak_size(self, width: int, height: int, channels: int) -> tuple[int, int, int]:
        """(width, height, channels) of the largest image held while transforming a width×height×channels input."""

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the image a width×height input becomes."""

    def __call__(self, image: Image, progress: ProgressCallback | None) -> tuple[Image, dict[str, Any]]:
        """The new image (metadata carried over) and the details for its report record."""


def check_output_fits(name: str, width: int, height: int, channels: int, read: ReadOptions) -> None:
    """Refuse an output larger than the pixel limit or than the memory this process can still get."""
    pixels = width * height
    limit = read.output_pixel_limit()
    if limit is not None and pixels > limit:
        needed = math.ceil(pixels / OUTPUT_PIXELS_PER_INPUT_PIXEL)
        raise ResourceError(
            f"{name}: the output would be {width}x{height} = {pixels:,} pixels, over the limit of {limit:,} "
            f"({OUTPUT_PIXELS_PER_INPUT_PIXEL} × --max-pixels); if you mean it, raise it with --max-pixels {needed}"
        )
    need = pixels * channels * WORKING_BYTES_PER_SAMPLE
    available = memory.available_host_memory()  # looked up per call: tests stand in for a full machine
    if available is not None and need > available:
        raise ResourceError(
            f"{name}: making the {width}x{height} output needs about {memory.format_bytes(need)} of memory and "
            f"{memory.format_bytes(available)} is available; ask for a smaller output or free memory"
        )


def image_processor(
    transform: ImageTransform, read: ReadOptions, write: WriteOptions, progress: ProgressCallback | None = None
) -> ProcessFn:
    """Read → check → ``transform`` → write atomically: the per-file work every image command shares.

    An animated GIF, APNG or WebP has every frame transformed and is written as an animation with the
    same frame count, durations and loop; to a format that cannot animate, its first frame is written
    with a warning. Decoder complaints become warnings (``read.strict`` fails the file instead).
    """
    def process(item: InputFile, output: Path) -> dict[str, Any]:
        source = read_frames(item.path, max_pixels=read.max_pixels, strict=read.strict)
        out_format = _canonical_format(output)
        if isinstance(source, Animation):
            details = _animation(transform, source, item.path, output, out_format, read, write, progress)
        else:
            details = _still(transform, source, item.path, output, out_format, read, write, progress)
        details["warnings"] = list(source.warnings) + details.get("warnings", [])
        return details

    return process


def _canonical_format(output: Path) -> str:
    return format_from_path(output) or output.suffix.lstrip(".").lower()


def _check_alpha(transform: ImageTransform, image: Image, path: Path, out_format: str) -> None:
    """Refuse real transparency up front (before any compute) when the output format cannot store it."""
    opaque = image.alpha is not None and is_constant(image.alpha) == 1.0
    if image.has_alpha and transform.keep_alpha and not opaque and not format_supports_alpha(out_format):
        raise ImageWriteError(
            f"{path}: has an alpha channel and {out_format.upper()} cannot store one "
            "(use --alpha discard or --format png/webp/tiff)"
        )


def _still(
    transform: ImageTransform, image: Image, path: Path, output: Path, out_format: str, read: ReadOptions,
    write: WriteOptions, progress: ProgressCallback | None,
) -> dict[str, Any]:
    _check_alpha(transform, image, path, out_format)
    _check_format_size(transform, image, output, out_format)
    peak_w, peak_h, channels = transform.peak_size(image.width, image.height, image.channels)
    check_output_fits(str(path), peak_w, peak_h, channels, read)
    result, details = _transform(transform, image, progress, path, (peak_w, peak_h))
    write.save(output, result)
    details = dict(details)
    details["bit_depth"] = image.bit_depth
    if result.bit_depth > 8 and not format_supports_16bit(out_format):
        details["warnings"] = [f"saved as 8-bit: {out_format.upper()} cannot store 16-bit samples"]
    return details


def _animation(
    transform: ImageTransform, animation: Animation, path: Path, output: Path, out_format: str, read: ReadOptions,
    write: WriteOptions, progress: ProgressCallback | None,
) -> dict[str, Any]:
    count = len(animation.frames)
    if out_format not in ANIMATION_FORMATS:
        details = _still(transform, animation.frames[0], path, output, out_format, read, write, progress)
        details.setdefault("warnings", []).append(
            f"animated ({count} frames): only the first frame was written; {out_format.upper()} cannot animate "
            "(use --format gif, png or webp)")
        return details
    first = animation.frames[0]
    _check_alpha(transform, first, path, out_format)
    _check_format_size(transform, first, output, out_format)
    peak_w, peak_h, channels = transform.peak_size(first.width, first.height, first.channels)
    check_output_fits(str(path), peak_w, peak_h, channels * count, read)
    results = [_transform(transform, frame, progress, path, (peak_w, peak_h)) for frame in animation.frames]
    frames = [image for image, _ in results]
    write.save(output, dataclasses.replace(animation, frames=frames))
    details = dict(results[0][1])
    details.update(frames=count, bit_depth=8)
    return details


def _check_format_size(transform: ImageTransform, image: Image, output: Path, out_format: str) -> None:
    """An output its format cannot store (WebP stops at 16383 px a side) fails before the work, not after."""
    width, height = transform.output_size(image.width, image.height)
    if width and height:  # an empty result is the transform's to explain (an image smaller than one block)
        check_size(str(output), out_format, width, height)


def _transform(
    transform: ImageTransform, image: Image, progress: ProgressCallback | None, path: Path, peak: tuple[int, int]
) -> tuple[Image, dict[str, Any]]:
    try:
        return transform(image, progress)
    except JdsrError as error:  # every per-file message names its file
        if str(path) in str(error):
            raise
        raise type(error)(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - only memory errors are translated here
        if is_out_of_memory(error):
            raise ResourceError(f"{path}: out of memory while making the {peak[0]}x{peak[1]} output") from None
        raise


@dataclass(frozen=True)
class ImageJob:
    """One image command, validated and planned: what ``run_image_job`` and the CLI need, nothing else."""

    command: str  # "upscale" | "downscale"
    plan: list[PlannedFile]
    transform: ImageTransform
    read: ReadOptions
    write: WriteOptions
    banner: list[str]  # lines to show before the batch (model, device, notes)
    header: dict[str, Any]  # the report's header fields
    record_defaults: dict[str, Any] = field(default_factory=dict)  # keys every report record has
    video: Callable[[ProgressCallback | None], ProcessFn] | None = None  # the per-file work for clips, if any

    def processor(self, progress: ProgressCallback | None = None) -> ProcessFn:
        images = image_processor(self.transform, self.read, self.write, progress)
        return images if self.video is None else _by_kind(images, self.video(progress))


def _by_kind(images: ProcessFn, videos: ProcessFn) -> ProcessFn:
    """Clips (by extension: :data:`jdsr_cli.io.video.VIDEO_EXTENSIONS`) to ``videos``, the rest to ``images``."""
    def process(item: InputFile, output: Path) -> dict[str, Any]:
        if is_video_path(item.path):
            return videos(item, output)
        if is_video_path(output):
            raise ImageWriteError(f"{item.path}: is an image; -o {output} names a video")
        return images(item, output)

    return process


def run_image_job(
    job: ImageJob,
    *,
    fail_fast: bool = False,
    progress: ProgressCallback | None = None,
    on_start: Callable[[int, PlannedFile], None] | None = None,
    on_done: Callable[[FileReport], None] | None = None,
    cpu_share: CpuShare | None = None,
) -> BatchOutcome:
    """Run the planned batch with SIGINT/SIGTERM caught: the outcome always says what was done.

    Stale temp files of ours (from a killed run) are removed from the output folders first. A ``cpu_share``
    (:mod:`jdsr_cli.process.cpu_share`) re-counts the idle cores before each file and after each tile batch;
    torch's thread count is given back at the end.
    """
    for folder in sorted({planned.output.parent for planned in job.plan}):
        remove_stale_temp_files(folder)
    if cpu_share is not None:
        progress, on_start = _sharing(cpu_share, progress, on_start)
    process = job.processor(progress)
    if cpu_share is not None:
        process = _noting_threads(cpu_share, process)
    try:
        with signals_as_exceptions():
            return run_batch(job.plan, process, fail_fast=fail_fast, on_start=on_start, on_done=on_done)
    finally:
        if cpu_share is not None:
            cpu_share.restore()


def _noting_threads(share: CpuShare, process: ProcessFn) -> ProcessFn:
    """``process`` whose details also say how many CPU threads the file ended on (``threads``)."""

    def noted(item: InputFile, output: Path) -> dict[str, Any]:
        details = process(item, output)
        if share.threads is not None:
            details = {**details, "threads": share.threads, "max_threads": share.max_threads}
        return details

    return noted


def _sharing(
    share: CpuShare, progress: ProgressCallback | None, on_start: Callable[[int, PlannedFile], None] | None
) -> tuple[ProgressCallback, Callable[[int, PlannedFile], None]]:
    """``progress`` and ``on_start`` that first let ``share`` adjust the thread count."""

    def tile_done(done: int, total: int) -> None:
        share.adjust()
        if progress is not None:
            progress(done, total)

    def file_start(index: int, planned: PlannedFile) -> None:
        share.adjust()
        if on_start is not None:
            on_start(index, planned)

    return tile_done, file_start
