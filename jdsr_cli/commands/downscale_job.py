"""``jdsr downscale`` as a job: every option checked once, here, before the first image is read."""

from __future__ import annotations

from dataclasses import dataclass

from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.commands.downscale import (
    METHODS,
    DownscaleSize,
    DownscaleTransform,
    check_fit_and_alpha,
    create_downscaler,
)
from jdsr_cli.commands.imagejob import BatchRequest, ImageJob
from jdsr_cli.commands.runner import parse_tile
from jdsr_cli.commands.sharding import rank_device
from jdsr_cli.errors import UsageError


@dataclass(frozen=True)
class DownscaleRequest(BatchRequest):
    """What the user asked for, as parsed (nothing checked yet): the library form of ``jdsr downscale``."""

    method: str = "bicubic"
    fit: str = "crop"
    seed: int = 0  # --method realistic


def prepare_downscale(request: DownscaleRequest) -> ImageJob:
    """Check every option, load the encoder if any, find and plan the inputs; raises if it cannot start."""
    r = request
    if r.method not in METHODS:
        raise UsageError(f"--method {r.method!r}: choose {', '.join(METHODS)}")
    check_fit_and_alpha(r.fit, r.alpha)
    if r.model is not None and r.method != "superior":
        raise UsageError(f"--model is for --method superior (the learned encoder), not {r.method}")
    size = DownscaleSize(r.scale, r.width, r.height)
    if r.method in ("superior", "realistic") and size.scale is None:
        raise UsageError(f"--method {r.method} shrinks by a whole factor: use -s 2|3|4, not --width/--height")
    tile = parse_tile(r.tile)
    r.check_destinations()
    items = r.find_inputs()
    loaded, model_name = None, None
    label = f"{r.method} ({'MATLAB imresize' if r.method == 'bicubic' else 'MATLAB kernel'})"
    if r.method == "superior":
        loaded = resolve_model(r.model, scale=r.scale, role="downscale")  # -s settles a ×2/×3 head without config
        model_name = loaded.name or loaded.source
        if loaded.config.scale != r.scale:
            raise UsageError(f"-s {r.scale} but {model_name} shrinks ×{loaded.config.scale}; use -s "
                             f"{loaded.config.scale}, or the ×{r.scale} encoder slr-down-x{r.scale}")
    downscaler = create_downscaler(r.method, loaded=loaded, device=rank_device(r.device), tile=tile, seed=r.seed)
    if r.method == "superior":
        runner = downscaler.runner  # type: ignore[union-attr]
        label = f"superior LR with {model_name} on {runner.device} {runner.precision.name}"
    if r.method == "realistic":
        label = downscaler.describe()  # type: ignore[union-attr]
    plan = r.plan(items, size.suffix())
    header = {"method": r.method, "model": model_name, "scale": r.scale, "fit": r.fit}
    defaults = {"size_in": None, "size_out": None, "method": r.method}
    transform = DownscaleTransform(downscaler, size, r.fit, r.alpha)
    return ImageJob("downscale", plan, transform, r.read, r.write, [f"{label}; {len(plan)} image(s)"], header,
                    defaults)
