"""One factory for the engine runner behind both image commands: a loaded checkpoint, checked for its
direction (upscaler or learned downscaler), on a resolved device and precision, with a tile setting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel
    from jdsr_cli.engine.upscaler import TileSetting, Upscaler


def parse_tile(value: str | int) -> TileSetting:
    """``--tile``: "auto", 0 (the whole image) or a side of at least 32 pixels."""
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        raise UsageError(f"--tile {value!r}: use auto, 0 (no tiling) or a size in pixels") from None
    if tile < 0 or 0 < tile < 32:
        raise UsageError(f"--tile {tile}: use 0 (no tiling) or at least 32 pixels")
    return tile


def create_runner(
    loaded: LoadedModel,
    *,
    direction: str,
    device: str = "auto",
    precision: str = "auto",
    tile: TileSetting = "auto",
    overlap: int = 16,
    batch_size: int | None = None,
    tta: bool = False,
    backend: str = "torch",
) -> Upscaler:
    """An ``Upscaler`` for ``loaded``: ``direction`` "up" runs it at its scale, "down" (the superior-LR
    encoder) on a grid of scale×scale input cells giving one output pixel each. ``backend`` "onnxruntime"
    runs the model's checked ONNX export (made once, cached) on the CPU in fp32, with the same tiling."""
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.engine.device import resolve_device, resolve_precision
    from jdsr_cli.engine.upscaler import Upscaler

    spec = REGISTRY.get(loaded.config.arch)
    _check_direction(loaded, spec.direction, direction)
    model = loaded.model
    if backend == "onnxruntime":
        model, device, precision = onnx_model(loaded, device, precision)
    elif backend != "torch":
        raise UsageError(f"--backend {backend!r}: choose torch or onnxruntime")
    torch_device = resolve_device(device)
    chosen = resolve_precision(precision, torch_device, supports_fp16=spec.supports_fp16,
                               supports_bf16=spec.supports_bf16,
                               auto_bf16=loaded.entry is None or loaded.entry.bf16_fits_auto)
    down = direction == "down"
    return Upscaler(
        model,
        scale=1 if down else loaded.config.scale,
        input_stride=loaded.config.scale if down else 1,
        device=torch_device,
        precision=chosen,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        size_requirement=spec.size,
        feature_channels=int(getattr(loaded.model, "feature_channels", 64)),
        channels_last=backend == "torch",
    )


def onnx_model(loaded: LoadedModel, device: str, precision: str) -> tuple[Any, str, str]:
    """(the ONNX Runtime model, "cpu", "fp32") for ``--backend onnxruntime``, or a UsageError."""
    from jdsr_cli.commands.export import cached_onnx
    from jdsr_cli.engine.onnx_runtime import OnnxNet

    if device not in ("auto", "cpu"):
        raise UsageError(f"--backend onnxruntime runs on the CPU; drop --device {device} or use --backend torch")
    if precision not in ("auto", "fp32"):
        raise UsageError(f"--backend onnxruntime runs fp32; drop --precision {precision} or use --backend torch")
    return OnnxNet(cached_onnx(loaded)), "cpu", "fp32"


def _check_direction(loaded: LoadedModel, found: str, wanted: str) -> None:
    if found == wanted:
        return
    name = loaded.name or loaded.source
    model_arg = name if loaded.entry is not None else loaded.source
    if wanted == "up":
        raise UsageError(
            f"{name} is a learned downscaler ({loaded.config.arch}), not an upscaler; use it with "
            f"`jdsr downscale --method superior --model {model_arg}`"
        )
    raise UsageError(
        f"{name} is an upscaler ({loaded.config.arch}); --method superior needs a superior-LR encoder "
        f"(e.g. slr-down-x{loaded.config.scale})"
    )
