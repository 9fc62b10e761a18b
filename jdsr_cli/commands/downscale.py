"""``jdsr downscale`` as a library: classic filters and the learned superior-LR encoder.

Methods:

- ``bicubic``: MATLAB ``imresize`` (antialiased Keys cubic). 8-bit images go through MATLAB's uint8
  pipeline, so the output is bit-exact with MATLAB (and with the benchmark ``LR_bicubic`` files).
- ``area``: MATLAB's antialiased box filter; at an integer factor, the mean of each s×s block.
- ``lanczos``: MATLAB's antialiased Lanczos-3.
- ``superior``: the superior-LR encoder (JDSR stage 1). Its output is an 8-bit image by construction,
  meant to be enlarged again by its paired decoder (``jdsr upscale --model slr-up-xS``).

Size rule for ``-s S`` when a side is not a multiple of S (``fit``): ``crop`` (default) drops the last
``side mod S`` rows/columns first, the benchmark "modcrop" convention, so the output is ⌊W/S⌋×⌊H/S⌋;
``pad`` repeats the last row/column up to the next multiple, so the output is ⌈W/S⌉×⌈H/S⌉ and no pixel is
lost. What was cropped or padded is reported for every file. ``--width/--height`` (classic methods
only) resize to exactly that size, with no rule needed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from jdsr_cli.errors import UsageError

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel
    from jdsr_cli.engine.upscaler import ProgressCallback, TileSetting, Upscaler
    from jdsr_cli.io.image import Image

METHODS = ("bicubic", "superior", "area", "lanczos", "realistic")
FIT_RULES = ("crop", "pad")
ALPHA_MODES = ("auto", "discard")
_KERNELS = {"bicubic": "cubic", "area": "box", "lanczos": "lanczos3"}


@dataclass(frozen=True)
class DownscaleSize:
    """An integer factor (``-s``) or explicit pixel dimensions (``--width``/``--height``)."""

    scale: int | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.scale is None and not (self.width or self.height):
            raise UsageError("say how small: -s 2|3|4, or --width/--height")
        if self.scale is not None and (self.width or self.height):
            raise UsageError("-s cannot be combined with --width/--height")
        if self.scale is not None and self.scale not in (2, 3, 4):
            raise UsageError(f"-s {self.scale}: choose 2, 3 or 4 (or --width/--height for other sizes)")
        for flag, value in (("--width", self.width), ("--height", self.height)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} {value}: must be a positive number of pixels")

    def target(self, width: int, height: int) -> tuple[int, int]:
        """Output (width, height) for an input already fitted to the scale (or any input, for w/h)."""
        if self.scale is not None:
            return width // self.scale, height // self.scale
        from jdsr_cli.commands.upscale import size_keeping_aspect

        return size_keeping_aspect(width, height, self.width, self.height)

    def suffix(self) -> str:
        """Default file-name suffix: ``_down_x4`` or ``_640x480``-style."""
        if self.scale is not None:
            return f"_down_x{self.scale}"
        return f"_{self.width or 'auto'}x{self.height or 'auto'}"


@dataclass(frozen=True)
class Fit:
    """What the size rule did: rows and columns removed (crop, < 0) or added (pad, > 0)."""

    rule: str
    rows: int
    cols: int

    @property
    def changed(self) -> bool:
        return bool(self.rows or self.cols)

    def describe(self) -> str:
        verb = "cropped" if self.rule == "crop" else "padded"
        return f"{verb} {abs(self.rows)} row(s), {abs(self.cols)} column(s) to a multiple of the scale"


def fitted_side(side: int, scale: int, rule: str) -> int:
    """A side cropped down (``crop``) or padded up (``pad``) to a multiple of ``scale``."""
    return side - side % scale if rule == "crop" else side + -side % scale


def fit_to_scale(pixels: np.ndarray, scale: int, rule: str) -> tuple[np.ndarray, Fit]:
    """Crop (top-left kept) or edge-pad (bottom/right) an H×W×C array to multiples of ``scale``."""
    check_fit(rule)
    height, width = pixels.shape[:2]
    rows, cols = fitted_side(height, scale, rule) - height, fitted_side(width, scale, rule) - width
    if rule == "crop":
        if height + rows < scale or width + cols < scale:
            raise UsageError(f"{width}x{height} is smaller than one {scale}x{scale} block")
        return pixels[: height + rows, : width + cols], Fit(rule, rows, cols)
    if rows or cols:
        pixels = np.pad(pixels, ((0, rows), (0, cols), (0, 0)), mode="edge")
    return pixels, Fit(rule, rows, cols)


# ---------------------------------------------------------------------------------------------------
# The downscalers: ``resize(pixels H×W×C float in [0,1], out_w, out_h, bit_depth) -> pixels``
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassicDownscaler:
    """MATLAB-compatible resampling filters (``jdsr_cli.ops.resize.imresize``)."""

    method: str

    def __post_init__(self) -> None:
        if self.method not in _KERNELS:
            raise UsageError(f"--method {self.method!r}: choose {', '.join(METHODS)}")

    def resize(self, pixels: np.ndarray, width: int, height: int, bit_depth: int) -> np.ndarray:
        import torch

        from jdsr_cli.io.quantize import to_uint8
        from jdsr_cli.ops.resize import imresize

        kernel = _KERNELS[self.method]
        chw = np.ascontiguousarray(pixels.transpose(2, 0, 1))
        if self.method == "bicubic" and bit_depth == 8:
            # MATLAB's uint8 pipeline (float64, rounded per pass): bit-exact with MATLAB.
            levels = torch.from_numpy(to_uint8(chw))
            out = imresize(levels, size=(height, width), kernel=kernel, quantize=True).numpy() / 255.0
        else:
            out = imresize(torch.from_numpy(chw.astype(np.float64)), size=(height, width), kernel=kernel).numpy()
        return np.clip(out.transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)


class LearnedDownscaler:
    """The superior-LR encoder run tiled on the LR grid (``Upscaler`` with ``input_stride = S``)."""

    method = "superior"

    def __init__(self, runner: Upscaler, name: str) -> None:
        self.runner = runner
        self.name = name
        self.scale = runner.input_stride

    def resize(
        self, pixels: np.ndarray, width: int, height: int, bit_depth: int,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        del bit_depth  # the encoder's output is on the 8-bit grid whatever the input depth
        s = self.scale
        if pixels.shape[0] != height * s or pixels.shape[1] != width * s:
            raise UsageError("the superior-LR encoder shrinks by its own factor only (use -s, not --width/--height)")
        from jdsr_cli.io.quantize import to_uint8
        from jdsr_cli.ops.color import gray_as_rgb, rgb_as_gray

        out = self.runner.upscale(np.ascontiguousarray(gray_as_rgb(pixels)), progress).pixels
        if pixels.shape[2] == 1:
            out = to_uint8(rgb_as_gray(out)) / np.float32(255.0)  # back on the 8-bit grid
        return out.astype(np.float32)


class RealisticDownscaler:
    """The realistic degradation chain (``ops.degrade``) as a downscaler: the same LR ``jdsr eval --degradation
    realistic`` scores, for inspection. Each image's generator is ``(seed, crc32 of its 8-bit samples)``, so an
    image always gets the same LR for a seed, whatever folder or batch it comes in."""

    method = "realistic"

    def __init__(self, seed: int = 0, settings: Any = None) -> None:
        from jdsr_cli.ops.degrade import Degradation

        self.seed = seed
        self.settings = settings or Degradation()
        self.name = f"realistic degradation (seed {seed})"

    def describe(self) -> str:
        """The chain's main ranges, for the header of a table or a report."""
        s = self.settings
        return (f"realistic LR, seed {self.seed}: blur σ {s.blur_sigma[0]}–{s.blur_sigma[1]} then "
                f"{s.blur_sigma2[0]}–{s.blur_sigma2[1]}, noise σ {s.noise_range[0]:g}–{s.noise_range[1]:g} then "
                f"{s.noise_range2[0]:g}–{s.noise_range2[1]:g} (/255) or Poisson, JPEG q {s.jpeg_range[0]:g}–"
                f"{s.jpeg_range[1]:g} twice, final sinc p={s.final_sinc_prob} (Real-ESRGAN x4plus settings)")

    def resize(self, pixels: np.ndarray, width: int, height: int, bit_depth: int,
               progress: ProgressCallback | None = None) -> np.ndarray:
        del bit_depth, progress  # the chain ends in 8-bit JPEG levels
        import zlib

        from jdsr_cli.io.quantize import to_uint8
        from jdsr_cli.ops.color import gray_as_rgb, rgb_as_gray
        from jdsr_cli.ops.degrade import degrade

        scale = pixels.shape[0] // max(height, 1)
        if scale < 2 or pixels.shape[0] != height * scale or pixels.shape[1] != width * scale:
            raise UsageError("--method realistic shrinks by a whole factor: use -s 2|3|4, not --width/--height")
        rgb = np.ascontiguousarray(gray_as_rgb(pixels), dtype=np.float32)
        key = zlib.crc32(to_uint8(rgb).tobytes())
        out = degrade(rgb, scale, np.random.default_rng([self.seed, key]), self.settings) / np.float32(255.0)
        if pixels.shape[2] == 1:
            out = to_uint8(rgb_as_gray(out)) / np.float32(255.0)
        return out.astype(np.float32)


Downscaler = ClassicDownscaler | LearnedDownscaler | RealisticDownscaler


def create_downscaler(
    method: str,
    *,
    loaded: LoadedModel | None = None,
    device: str = "auto",
    tile: TileSetting = "auto",
    overlap: int = 8,
    batch_size: int | None = None,
    seed: int = 0,
) -> Downscaler:
    """A downscaler for ``method``; ``superior`` needs the loaded encoder checkpoint, ``realistic`` takes a seed."""
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose {', '.join(METHODS)}")
    if method == "realistic":
        return RealisticDownscaler(seed)
    if method != "superior":
        return ClassicDownscaler(method)
    if loaded is None:
        raise UsageError("--method superior needs an encoder (--model)")
    from jdsr_cli.commands.runner import create_runner

    runner = create_runner(loaded, direction="down", device=device, precision="auto", tile=tile, overlap=overlap,
                           batch_size=batch_size)
    name = loaded.name or loaded.source
    return LearnedDownscaler(runner, name)


# ---------------------------------------------------------------------------------------------------
# One image
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownscaleReport:
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    method: str
    fit: Fit | None
    alpha: str | None

    def as_dict(self) -> dict[str, Any]:
        fit = None if self.fit is None else {"rule": self.fit.rule, "rows": self.fit.rows, "cols": self.fit.cols}
        return {"size_in": list(self.size_in), "size_out": list(self.size_out), "method": self.method, "fit": fit,
                "alpha": self.alpha}


def downscale_image(
    image: Image,
    downscaler: Downscaler,
    size: DownscaleSize,
    *,
    fit: str = "crop",
    alpha: str = "auto",
    progress: ProgressCallback | None = None,
) -> tuple[Image, DownscaleReport]:
    """Shrink one image; metadata is carried over. Alpha is resized with MATLAB bicubic (constant stays)."""
    from jdsr_cli.ops.alpha import fill_transparent, is_constant

    check_fit_and_alpha(fit, alpha)
    if isinstance(downscaler, LearnedDownscaler) and size.scale != downscaler.scale:
        raise UsageError(f"{downscaler.name} shrinks ×{downscaler.scale}, not to {size}")
    height, width = image.pixels.shape[:2]
    pixels, fitted = image.pixels, None
    if size.scale is not None:
        pixels, fitted = fit_to_scale(pixels, size.scale, fit)
    fitted_image = replace(image, pixels=np.ascontiguousarray(pixels))
    out_w, out_h = size.target(pixels.shape[1], pixels.shape[0])
    if out_w > pixels.shape[1] or out_h > pixels.shape[0]:
        raise UsageError(f"{out_w}x{out_h} is larger than the image ({pixels.shape[1]}x{pixels.shape[0]}): "
                         "jdsr downscale only shrinks (jdsr upscale --width/--height enlarges)")
    color, plane = fitted_image.color, fitted_image.alpha if alpha != "discard" else None
    if plane is not None:
        color = fill_transparent(color, plane)
    if isinstance(downscaler, (LearnedDownscaler, RealisticDownscaler)):
        small = downscaler.resize(color, out_w, out_h, image.bit_depth, progress)
        bit_depth = 8
    else:
        small = downscaler.resize(color, out_w, out_h, image.bit_depth)
        bit_depth = image.bit_depth
    alpha_how = None
    if plane is not None:
        constant = is_constant(plane)
        if constant is not None:
            new_alpha, alpha_how = np.full((out_h, out_w, 1), constant, dtype=np.float32), "constant"
        else:
            new_alpha = ClassicDownscaler("bicubic").resize(plane[:, :, None], out_w, out_h, image.bit_depth)
            alpha_how = "bicubic"
        small = np.concatenate([small, new_alpha], axis=2)
    report = DownscaleReport((width, height), (out_w, out_h), downscaler.method, fitted, alpha_how)
    return replace(image, pixels=np.ascontiguousarray(small, dtype=np.float32), bit_depth=bit_depth), report


@dataclass(frozen=True)
class DownscaleTransform:
    """``downscale_image`` as the per-file transform of an image job."""

    downscaler: Downscaler
    size: DownscaleSize
    fit: str = "crop"
    alpha: str = "auto"

    def __post_init__(self) -> None:
        check_fit_and_alpha(self.fit, self.alpha)

    @property
    def keep_alpha(self) -> bool:
        return self.alpha != "discard"

    def peak_size(self, width: int, height: int, channels: int) -> tuple[int, int, int]:
        """A downscale never holds more than its (possibly padded) input."""
        scale = self.size.scale or 1
        return fitted_side(width, scale, "pad"), fitted_side(height, scale, "pad"), max(channels, 3)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """As ``downscale_image`` computes it: the input fitted to the scale (cropped or padded), then shrunk."""
        scale = self.size.scale
        if scale is not None:
            width, height = fitted_side(width, scale, self.fit), fitted_side(height, scale, self.fit)
        return self.size.target(width, height)

    def __call__(self, image: Image, progress: ProgressCallback | None = None) -> tuple[Image, dict[str, Any]]:
        small, report = downscale_image(image, self.downscaler, self.size, fit=self.fit, alpha=self.alpha,
                                        progress=progress)
        details = report.as_dict()
        if report.fit is not None and report.fit.changed:
            details["note"] = report.fit.describe()
        return small, details


def check_fit(fit: str) -> None:
    if fit not in FIT_RULES:
        raise UsageError(f"--fit {fit!r}: choose crop or pad")


def check_fit_and_alpha(fit: str, alpha: str) -> None:
    check_fit(fit)
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r}: choose {', '.join(ALPHA_MODES)} for downscale")
