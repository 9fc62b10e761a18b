"""``jdsr upscale`` as a job: every option checked once, here, before the first image is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jdsr_cli.checkpoints.interpolate import with_denoise
from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.commands.batch import PlannedFile
from jdsr_cli.commands.imagejob import BatchRequest, ImageJob
from jdsr_cli.commands.runner import parse_tile
from jdsr_cli.commands.sharding import rank_device
from jdsr_cli.commands.upscale import OutputSize, UpscaleTransform, check_alpha_mode, check_scale, create_upscaler
from jdsr_cli.commands.video_job import FrameTransform, VideoOptions, video_processor
from jdsr_cli.errors import UsageError
from jdsr_cli.io.video import is_video_path

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel


@dataclass(frozen=True)
class UpscaleRequest(BatchRequest):
    """What the user asked for, as parsed (nothing checked yet): the library form of ``jdsr upscale``."""

    precision: str = "auto"
    tile_overlap: int = 16
    batch_size: int | None = None
    tta: bool = False
    outscale: float | None = None
    backend: str = "torch"
    denoise: float = 1.0  # 1: the model as it is; below: towards its clean counterpart (--denoise-from)
    denoise_from: str | None = None
    video_codec: str | None = None  # clips: the encoder (None: the best this PyAV has for the container)
    crf: int | None = None  # clips: the encoder's quality (None: its default)


def prepare_upscale(request: UpscaleRequest) -> ImageJob:
    """Check every option, load the model, find and plan the inputs; raises a JdsrError if it cannot start."""
    r = request
    if r.scale is not None and r.scale not in (2, 3, 4):
        raise UsageError(f"--scale {r.scale}: choose 2, 3 or 4 (use --outscale for other factors)")
    check_alpha_mode(r.alpha)
    if r.tile_overlap < 0:
        raise UsageError(f"--tile-overlap {r.tile_overlap}: must be 0 or more")
    if r.batch_size is not None and r.batch_size < 1:
        raise UsageError(f"--batch-size {r.batch_size}: must be at least 1")
    tile = parse_tile(r.tile)
    size = OutputSize(r.outscale, r.width, r.height)
    video = VideoOptions(r.video_codec, r.crf)
    r.check_destinations()
    items = r.find_inputs()
    loaded = resolve_model(r.model, scale=r.scale)
    candidates = loaded.meta.get("scale_candidates") or []
    if r.scale is None and len(candidates) > 1:
        raise UsageError(
            f"{loaded.source}: the weights fit scales {', '.join(f'×{c}' for c in candidates)} equally; "
            "pass -s to say which"
        )
    check_scale(r.scale, loaded.config.scale, loaded.source)
    loaded = with_denoise(loaded, r.denoise, r.denoise_from)
    upscaler = create_upscaler(loaded, device=rank_device(r.device), precision=r.precision, tile=tile,
                               overlap=r.tile_overlap, batch_size=r.batch_size, tta=r.tta, backend=r.backend)
    plan = r.plan(items, size.suffix(loaded.config.scale))
    name = loaded.name or loaded.source
    banner = [f"model {name} (×{upscaler.scale}, {loaded.config.arch}) on {upscaler.device} "
              f"{upscaler.precision.name}{' (onnxruntime)' if r.backend == 'onnxruntime' else ''}; {_counted(plan)}"]
    banner += _model_notes(loaded, name, r.denoise)
    header = {"model": name, "arch": loaded.config.arch, "scale": upscaler.scale, "device": str(upscaler.device),
              "precision": upscaler.precision.name, "backend": r.backend}
    defaults = {"size_in": None, "size_out": None, "tile": None, "device": str(upscaler.device)}
    transform = UpscaleTransform(upscaler, size, r.alpha)
    frames = FrameTransform(upscaler, size)
    return ImageJob("upscale", plan, transform, r.read, r.write, banner, header, defaults,
                    video=lambda progress: video_processor(frames, video, r.read, progress))


def _counted(plan: list[PlannedFile]) -> str:
    """``3 image(s)``, ``2 image(s), 1 video(s)`` or ``1 video(s)``."""
    videos = sum(is_video_path(planned.item.path) for planned in plan)
    images = len(plan) - videos
    if not videos:
        return f"{images} image(s)"
    return f"{images} image(s), {videos} video(s)" if images else f"{videos} video(s)"


def _model_notes(loaded: LoadedModel, name: str, denoise: float) -> list[str]:
    """What a user should know about the model before trusting its output (one line each)."""
    entry = loaded.entry
    if entry is not None and entry.pair is not None:
        return [f"note: {name} is made for images shrunk by {entry.pair} (jdsr downscale --method superior); "
                "on other images prefer the default model"]
    if entry is not None and entry.clean is not None and denoise == 1.0:
        return [f"note: {name} is made for real photos (JPEG, noise, blur); for clean sources (renders, lossless "
                f"screenshots) use -m {entry.clean}, or --denoise 0.5 in between"]
    return []
