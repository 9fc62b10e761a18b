"""MATLAB-compatible ``imresize`` on torch tensors.

Why our own resize: the SR literature's LR inputs ("BI" degradation) are made by MATLAB
``imresize(img, 1/s, 'bicubic')``. No library resize reproduces them (cv2 has no antialiasing when
shrinking, PIL and torch's ``interpolate`` use other kernels/centres, BasicSR mirrors the border), and a
benchmark number is only comparable when its LR input is bit-identical. The algorithm follows MATLAB's
``contributions()`` exactly; see ``../shared/data/README.md`` for the details that break exactness.

Layout: tensors shaped (..., H, W), i.e. H×W, C×H×W or N×C×H×W, on any torch device.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "KERNELS",
    "imresize",
    "matlab_downscale_uint8",
    "modcrop",
    "output_size",
    "resize_float",
]


# ---------------------------------------------------------------------------------------------------
# Kernels: MATLAB's definitions and support widths, on float64 tensors.
# ---------------------------------------------------------------------------------------------------


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic'), support [-2, 2]."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1).to(x.dtype)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return inner + outer


def _triangle(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's 'bilinear' (triangle) kernel, support [-1, 1]."""
    return (x + 1.0) * ((x >= -1) & (x < 0)).to(x.dtype) + (1.0 - x) * ((x >= 0) & (x <= 1)).to(x.dtype)


def _box(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's 'box' kernel, support [-0.5, 0.5)."""
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


def _lanczos(a: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def kernel(x: torch.Tensor) -> torch.Tensor:
        # MATLAB adds eps to numerator and denominator so that x = 0 gives exactly 1 without a branch.
        eps = float(np.finfo(np.float64).eps)
        pix = math.pi * x
        f = (torch.sin(pix) * torch.sin(pix / a) + eps) / ((math.pi**2) * x * x / a + eps)
        return f * (x.abs() < a).to(x.dtype)

    return kernel


#: name -> (kernel function, support width in input pixels at scale 1), as in MATLAB's imresize.
KERNELS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "cubic": (_cubic, 4.0),
    "bicubic": (_cubic, 4.0),
    "linear": (_triangle, 2.0),
    "bilinear": (_triangle, 2.0),
    "triangle": (_triangle, 2.0),
    "box": (_box, 1.0),
    "lanczos2": (_lanczos(2), 4.0),
    "lanczos3": (_lanczos(3), 6.0),
}


# ---------------------------------------------------------------------------------------------------
# Per-axis index/weight tables.
# ---------------------------------------------------------------------------------------------------


def output_size(n: int, scale: float) -> int:
    """Output length ceil(n * scale), as MATLAB, but immune to last-bit float error.

    ``300 * (1/3)`` style products that land within 1e-9 of an integer are taken as that integer, so
    ``scale=1/s`` on a modcropped image gives exactly n/s (MATLAB's plain ``ceil`` could add a pixel).
    """
    v = n * scale
    r = round(v)
    if abs(v - r) <= 1e-9 * max(1.0, abs(v)):
        return max(1, int(r))
    return max(1, math.ceil(v))


def _contributions(
    n_in: int, n_out: int, scale: float, kernel: str, antialias: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``contributions()``: (indices m×P int64, 0-based and clamped; weights m×P float64).

    Weights are normalised per output pixel; the border replicates the edge pixel (index clamping),
    which is what the MATLAB versions that made the benchmark LR files did.
    """
    try:
        fn, width = KERNELS[kernel]
    except KeyError:
        raise ValueError(f"unknown resize kernel {kernel!r}; choose one of {sorted(KERNELS)}") from None
    if scale < 1 and antialias:
        # Stretch the kernel by 1/scale: a low-pass filter matched to the new sampling rate.
        def h(t: torch.Tensor) -> torch.Tensor:
            return scale * fn(scale * t)

        width = width / scale
    else:
        h = fn
    x = torch.arange(1, n_out + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    p = math.ceil(width) + 2
    idx = left.unsqueeze(1) + torch.arange(p, dtype=torch.float64, device=device).unsqueeze(0)
    w = h(u.unsqueeze(1) - idx)
    w = w / w.sum(dim=1, keepdim=True)
    idx = idx.clamp(1, n_in).to(torch.int64) - 1
    # Drop tap columns that are zero for every output pixel (MATLAB does the same; saves work only).
    keep = (w != 0).any(dim=0)
    if not bool(keep.all()):
        w, idx = w[:, keep], idx[:, keep]
    return idx, w


def _resize_axis(
    x: torch.Tensor, dim: int, n_out: int, scale: float, kernel: str, antialias: bool, quantize: bool
) -> torch.Tensor:
    """One 1-D pass along ``dim`` (-2 or -1). Taps are accumulated in order, as MATLAB's mex does."""
    n_in = x.shape[dim]
    if n_out == n_in and scale == 1.0:
        return x
    idx, w = _contributions(n_in, n_out, scale, kernel, antialias, x.device)
    w = w.to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n_out
    out: torch.Tensor | None = None
    for k in range(idx.shape[1]):
        term = x.index_select(dim, idx[:, k]) * w[:, k].reshape(shape)
        out = term if out is None else out + term
    assert out is not None
    if quantize:
        # MATLAB stores every pass as uint8: round half away from zero (values >= 0 after the clip
        # that follows, so floor(v + 0.5) is the same) and saturate.
        out = torch.floor(out + 0.5).clamp_(0.0, 255.0)
    return out


def _plan(
    h: int, w: int, scale: float | None, size: tuple[int | None, int | None] | None
) -> tuple[tuple[float, float], tuple[int, int]]:
    """Per-axis (scales, output sizes) from exactly one of scale/size, with MATLAB's rules."""
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale= or size=")
    if scale is not None:
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        return (float(scale), float(scale)), (output_size(h, scale), output_size(w, scale))
    assert size is not None
    if len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    oh, ow = size
    if oh is None and ow is None:
        raise ValueError("size=(None, None): give at least one of height, width")
    for v in (oh, ow):
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"size entries must be positive integers, got {size!r}")
    # MATLAB: one missing side keeps the aspect ratio (scale of the given side, ceil for the other).
    if oh is None:
        s = ow / w
        return (s, s), (output_size(h, s), int(ow))
    if ow is None:
        s = oh / h
        return (s, s), (int(oh), output_size(w, s))
    return (oh / h, ow / w), (int(oh), int(ow))


def imresize(
    x: torch.Tensor,
    *,
    scale: float | None = None,
    size: tuple[int | None, int | None] | None = None,
    antialias: bool = True,
    kernel: str = "cubic",
    quantize: bool = False,
) -> torch.Tensor:
    """MATLAB ``imresize`` on the last two dims of ``x`` (..., H, W), up or down, any device.

    Exactly one of ``scale`` (output side = ceil(n * scale)) or ``size`` = (h, w) (one side may be
    None to keep the aspect ratio). ``kernel``: cubic (Keys a=-0.5), linear, box, lanczos2, lanczos3.
    ``antialias`` stretches the kernel when shrinking, as MATLAB does by default.

    Pass order is MATLAB's: the axis with the smaller scale first, the vertical one on a tie (so
    vertical-then-horizontal for uniform scales). It matters only for ``quantize``.

    ``quantize=False`` (float path): no rounding or clamping (negative lobes survive; callers clamp).
    float32/float64 compute in their own dtype, half types in float32 and are cast back, integer
    inputs compute and return float32.

    ``quantize=True`` (MATLAB uint8 pipeline): ``x`` holds integers 0..255 (any dtype); computed in
    float64, every pass rounded half away from zero and saturated to [0, 255]; returns uint8. This
    reproduces the benchmark ``LR_bicubic`` files bit-exactly.
    """
    if x.dim() < 2:
        raise ValueError(f"imresize needs a tensor of shape (..., H, W), got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    (sh, sw), (oh, ow) = _plan(h, w, scale, size)
    device = x.device
    if quantize:
        # float64 is exact for the MATLAB arithmetic; MPS has no float64, so do that case on the CPU.
        work = x.to("cpu") if device.type == "mps" else x
        work = work.to(torch.float64)
        out_dtype = torch.uint8
    else:
        work = x
        if x.dtype in (torch.float32, torch.float64):
            out_dtype = x.dtype
        elif x.is_floating_point():
            work, out_dtype = x.to(torch.float32), x.dtype
        else:
            work, out_dtype = x.to(torch.float32), torch.float32
    passes = [(-2, oh, sh), (-1, ow, sw)]
    if sw < sh:
        passes.reverse()
    for dim, n_out, s in passes:
        work = _resize_axis(work, dim, n_out, s, kernel, antialias, quantize)
    if work is x:
        work = x.clone()
    return work.to(device=device, dtype=out_dtype)


# ---------------------------------------------------------------------------------------------------
# Conveniences used by the CLI, the engine and the evaluation.
# ---------------------------------------------------------------------------------------------------


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Top-left crop of an H×W(×C) array to multiples of ``scale`` (the benchmark HR convention)."""
    if scale < 1:
        raise ValueError(f"modcrop scale must be >= 1, got {scale}")
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale, ...]


def matlab_downscale_uint8(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` of a uint8 H×W or H×W×C array, bit-exact.

    Does not modcrop (call :func:`modcrop` first for benchmark LR); output is ceil(H/s)×ceil(W/s),
    same layout and uint8. Channels are processed independently (no colour conversion).
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"downscale factor must be a positive integer, got {scale!r}")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an H×W or H×W×C image, got shape {img.shape}")
    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only buffers
        arr = arr.copy()
    t = torch.from_numpy(arr)
    if arr.ndim == 3:
        t = t.permute(2, 0, 1)
    out = imresize(t, scale=1.0 / int(scale), kernel="cubic", antialias=True, quantize=True)
    if arr.ndim == 3:
        out = out.permute(1, 2, 0)
    return np.ascontiguousarray(out.numpy())


def resize_float(img: torch.Tensor, size: tuple[int, int], kernel: str = "cubic") -> torch.Tensor:
    """High-quality resize of a C×H×W or N×C×H×W image in [0, 1] to ``size`` = (h, w).

    For arbitrary output scales in the engine: MATLAB kernel, antialiased when shrinking, no rounding.
    Results are NOT clamped: cubic/lanczos overshoot slightly at edges, and the caller clamps once at
    the end rather than us hiding it at every intermediate step.
    """
    if img.dim() not in (3, 4):
        raise ValueError(f"resize_float expects C×H×W or N×C×H×W, got shape {tuple(img.shape)}")
    return imresize(img, size=size, kernel=kernel, antialias=True, quantize=False)
