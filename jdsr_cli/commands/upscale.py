"""``jdsr upscale`` as a library: one image through the engine, with alpha, gray and output sizing.

Model scale and output scale are separate: the network always runs at its own scale, then a
high-quality resize (MATLAB-style antialiased bicubic) reaches ``outscale`` or ``width``/``height``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel
    from jdsr_cli.engine.upscaler import ProgressCallback, TileSetting, Upscaler, UpscaleResult
    from jdsr_cli.io.image import Image

ALPHA_MODES = ("auto", "model", "bicubic", "discard")


def check_alpha_mode(alpha: str) -> None:
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: choose one of {', '.join(ALPHA_MODES)}")


def size_keeping_aspect(width: int, height: int, new_width: int | None, new_height: int | None) -> tuple[int, int]:
    """(width, height) for ``--width``/``--height``: both given as is, one given keeps the aspect ratio."""
    if new_width and new_height:
        return new_width, new_height
    if new_width:
        return new_width, max(1, round(height * new_width / width))
    if new_height:
        return max(1, round(width * new_height / height)), new_height
    raise ValueError("give a width, a height or both")


@dataclass(frozen=True)
class OutputSize:
    """How big the output is: the model's scale, a factor, or explicit pixel dimensions."""

    outscale: float | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.outscale is not None and (self.width or self.height):
            raise UsageError("--outscale cannot be combined with --width/--height")
        if self.outscale is not None and not 0 < self.outscale <= 16:
            raise UsageError(f"--outscale {self.outscale}: must be in (0, 16]")
        for flag, value in (("--width", self.width), ("--height", self.height)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} {value}: must be a positive number of pixels")

    def target(self, width: int, height: int, model_scale: int) -> tuple[int, int]:
        """Output (width, height) for an input of ``width``×``height``."""
        if self.width or self.height:
            return size_keeping_aspect(width, height, self.width, self.height)
        factor = self.outscale if self.outscale is not None else model_scale
        return max(1, round(width * factor)), max(1, round(height * factor))

    def suffix(self, model_scale: int) -> str:
        """Default file-name suffix: ``_x4``, ``_x2.5`` or ``_1920x1080``-style."""
        if self.width or self.height:
            return f"_{self.width or 'auto'}x{self.height or 'auto'}"
        factor = self.outscale if self.outscale is not None else model_scale
        return f"_x{factor:g}"


def create_upscaler(
    loaded: LoadedModel,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: TileSetting = "auto",
    overlap: int = 16,
    batch_size: int | None = None,
    tta: bool = False,
    backend: str = "torch",
) -> Upscaler:
    """An ``Upscaler`` for a loaded checkpoint, with device and precision validated up front."""
    from jdsr_cli.commands.runner import create_runner

    return create_runner(loaded, direction="up", device=device, precision=precision, tile=tile, overlap=overlap,
                         batch_size=batch_size, tta=tta, backend=backend)


@dataclass(frozen=True)
class UpscaleReport:
    """What happened to one image (for the progress line and the JSON report)."""

    size_in: tuple[int, int]
    size_out: tuple[int, int]
    tile: int | None
    tiles: int
    fp32_fallbacks: int
    precision: str
    alpha: str | None  # how alpha was produced, None when the image had none

    def as_dict(self) -> dict[str, Any]:
        return {
            "size_in": list(self.size_in),
            "size_out": list(self.size_out),
            "tile": self.tile if self.tile is not None else "whole",
            "tiles": self.tiles,
            "fp32_fallbacks": self.fp32_fallbacks,
            "precision": self.precision,
            "alpha": self.alpha,
        }


def upscale_image(
    image: Image,
    upscaler: Upscaler,
    *,
    size: OutputSize = OutputSize(),
    alpha: str = "auto",
    progress: ProgressCallback | None = None,
) -> tuple[Image, UpscaleReport]:
    """Upscale one image; returns the new image (metadata carried over) and a report.

    An 8-bit image without alpha at the model's own scale comes back as uint8 samples quantized tile by
    tile as pixels finish (no float32 copy of the output: the large-photo memory rule of issue 16); others as float32."""
    from jdsr_cli.ops.alpha import fill_transparent, is_constant

    check_alpha_mode(alpha)
    height, width = image.pixels.shape[:2]
    out_w, out_h = size.target(width, height, upscaler.scale)
    color = image.color
    plane = image.alpha if alpha != "discard" else None

    if plane is None and image.bit_depth == 8 and (out_w, out_h) == (width * upscaler.scale, height * upscaler.scale) \
            and color.shape[2] == upscaler.in_channels:  # the common photo: straight to 8-bit samples, tile by tile
        result = upscaler.upscale(color, progress, depth=8)
        report = UpscaleReport((width, height), (out_w, out_h), result.tile, result.tiles, result.fp32_fallbacks,
                               result.precision, None)
        return replace(image, pixels=result.pixels), report
    if plane is not None:
        color = fill_transparent(color, plane)
    rgb, result = _upscale_color(color, upscaler, progress)
    rgb = _resize_to(rgb, out_w, out_h)

    alpha_how = None
    if plane is not None:
        constant = is_constant(plane)
        if alpha == "auto" and constant is not None:
            new_alpha, alpha_how = np.full((out_h, out_w), constant, dtype=np.float32), "constant"
        elif alpha == "bicubic":
            new_alpha, alpha_how = _resize_to(plane[:, :, None], out_w, out_h)[:, :, 0], "bicubic"
        else:
            grey, _ = _upscale_color(plane[:, :, None], upscaler, None)
            new_alpha, alpha_how = _resize_to(grey, out_w, out_h)[:, :, 0], "model"
        pixels = np.concatenate([rgb, np.clip(new_alpha, 0, 1)[:, :, None]], axis=2)
    else:
        pixels = rgb

    report = UpscaleReport(
        (width, height), (out_w, out_h), result.tile, result.tiles, result.fp32_fallbacks, result.precision, alpha_how
    )
    return replace(image, pixels=np.ascontiguousarray(pixels, dtype=np.float32)), report


def _upscale_color(
    color: np.ndarray, upscaler: Upscaler, progress: ProgressCallback | None
) -> tuple[np.ndarray, UpscaleResult]:
    """Run the model on colour (H×W×1 or ×3) the way its input channels require.

    RGB models see gray as replicated RGB and give gray back through BT.601 luma. Single-channel
    (Y-only) models, such as most published FSRCNN weights, see the Y of YCbCr; Cb and Cr are resized
    with the antialiased bicubic, the usual convention for those models.
    """
    from jdsr_cli.ops.color import gray_as_rgb, rgb_as_gray

    if upscaler.in_channels == 3:
        result = upscaler.upscale(gray_as_rgb(color), progress)
        return (result.pixels if color.shape[2] == 3 else rgb_as_gray(result.pixels)), result
    if color.shape[2] == 1:
        result = upscaler.upscale(color, progress)
        return result.pixels, result
    import torch

    from jdsr_cli.ops.color import rgb_to_ycbcr, ycbcr_to_rgb

    ycbcr = rgb_to_ycbcr(torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1)))).numpy().transpose(1, 2, 0)
    result = upscaler.upscale(np.ascontiguousarray(ycbcr[:, :, :1]), progress)
    height, width = result.pixels.shape[:2]
    chroma = _resize_to(ycbcr[:, :, 1:], width, height, clamp=False)
    merged = np.concatenate([result.pixels, chroma], axis=2).transpose(2, 0, 1)
    rgb = ycbcr_to_rgb(torch.from_numpy(np.ascontiguousarray(merged))).numpy().transpose(1, 2, 0)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), result


def _resize_to(pixels: np.ndarray, width: int, height: int, *, clamp: bool = True) -> np.ndarray:
    """Resize H×W×C float pixels with the antialiased MATLAB-style cubic (clamped to [0, 1])."""
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return pixels
    import torch

    from jdsr_cli.ops.resize import resize_float

    tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
    out = resize_float(tensor, size=(height, width)).numpy().transpose(1, 2, 0)
    return (np.clip(out, 0.0, 1.0) if clamp else out).astype(np.float32)


def check_scale(requested: int | None, model_scale: int, model_name: str, *, outscale_hint: bool = True) -> None:
    """Refuse a model whose scale contradicts an explicit ``-s`` instead of garbling the output."""
    if requested is not None and requested != model_scale:
        hint = ", or use --outscale for other output sizes" if outscale_hint else ""
        raise UsageError(f"--scale {requested} but {model_name} is a ×{model_scale} model; "
                         f"drop -s or pick a ×{requested} model{hint}")


@dataclass(frozen=True)
class UpscaleTransform:
    """``upscale_image`` as the per-file transform of an image job."""

    upscaler: Upscaler
    size: OutputSize = OutputSize()
    alpha: str = "auto"

    def __post_init__(self) -> None:
        check_alpha_mode(self.alpha)

    @property
    def keep_alpha(self) -> bool:
        return self.alpha != "discard"

    def peak_size(self, width: int, height: int, channels: int) -> tuple[int, int, int]:
        """The larger of the network's output and the final size; gray runs through RGB models as RGB."""
        out_w, out_h = self.size.target(width, height, self.upscaler.scale)
        s = self.upscaler.scale
        return max(out_w, width * s), max(out_h, height * s), max(channels, self.upscaler.in_channels)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return self.size.target(width, height, self.upscaler.scale)

    def __call__(self, image: Image, progress: ProgressCallback | None = None) -> tuple[Image, dict[str, Any]]:
        result, report = upscale_image(image, self.upscaler, size=self.size, alpha=self.alpha, progress=progress)
        details = report.as_dict()
        details["device"] = str(self.upscaler.device)
        return result, details
