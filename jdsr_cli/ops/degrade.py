"""The realistic degradation chain: HR → LR as a phone camera and the web make it (Real-ESRGAN's second-order
model, docs/design/realistic-degradations.md), on the CPU with OpenCV and a real JPEG encoder.

Two rounds of blur → random resize → Gaussian or Poisson noise (colour or gray) → JPEG, the second ending at
exactly HR/scale with a final sinc filter and JPEG in random order. Every random choice comes from the
generator passed in, so a sample is a function of its seed alone (``np.random.default_rng([seed, i])``).
``Degradation`` holds every probability and range under the names of Real-ESRGAN's option files (a ``2``
suffix for the second round); the defaults are its ``train_realesrnet_x4plus.yml`` values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from jdsr_cli.errors import UsageError
from jdsr_cli.io.quantize import to_uint8
from jdsr_cli.ops.kernels import FAMILIES, random_kernel, sinc

MODES = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)  # area, bilinear, bicubic: one at random per resize
SINC_SIZES = tuple(range(7, 22, 2))


@dataclass(frozen=True)
class Degradation:
    """Every setting of the chain (see the module docstring); ``from_table`` checks a ``[degradation]`` table."""

    kernel_size: tuple[int, int] = (7, 21)  # odd sizes, uniform
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # in FAMILIES order
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # σ on the 0–255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    # ours, not Real-ESRGAN's: the share of training samples that keep the clean MATLAB-bicubic pair instead of the
    # chain, so a photo model still handles inputs that have no blur, noise or JPEG (0: every sample degraded)
    clean_prob: float = 0.0
    # the HR target sharpened by an unsharp mask (Real-ESRGAN's gt_usm; our implementation of BasicSR's USMSharp)
    sharpen_hr: bool = False
    usm_radius: int = 50
    usm_weight: float = 0.5
    usm_threshold: float = 10.0  # on the 0–255 scale

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Degradation:
        """The defaults overlaid with ``table``; a wrong key, type or value is one UsageError naming it."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise UsageError(f"[degradation] {key}: unknown setting; known: {', '.join(known)}")
            values[key] = _typed(key, value, getattr(cls(), key))
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_prob", "_prob2")) and isinstance(value, float) and not 0 <= value <= 1:
                raise UsageError(f"[degradation] {f.name} = {value}: a probability between 0 and 1")
            if f.name.startswith(("kernel_prob", "resize_prob")) and (min(value) < 0 or sum(value) <= 0):
                raise UsageError(f"[degradation] {f.name}: weights of at least 0 with a positive sum")
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise UsageError(f"[degradation] {f.name} = {list(value)}: the low end is above the high end")
        if len(self.kernel_prob) != len(FAMILIES) or len(self.kernel_prob2) != len(FAMILIES):
            raise UsageError(f"[degradation] kernel_prob: one weight per family ({', '.join(FAMILIES)})")
        if self.kernel_size[0] < 3 or self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
            raise UsageError("[degradation] kernel_size: odd sizes of at least 3")

    def as_table(self) -> dict[str, Any]:
        """The settings as a TOML-ready table (what a run records)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


def _typed(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"[degradation] {key} = {value!r}: expected true or false")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or len(value) != len(default) or not all(_number(v) for v in value):
            raise UsageError(f"[degradation] {key} = {value!r}: expected a list of {len(default)} numbers")
        return tuple(type(d)(v) for d, v in zip(default, value, strict=True))
    if not _number(value):
        raise UsageError(f"[degradation] {key} = {value!r}: expected a number")
    return type(default)(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---- the chain ------------------------------------------------------------------------------------------
def degrade(hr: np.ndarray, scale: int, rng: np.random.Generator, settings: Degradation = Degradation()
            ) -> np.ndarray:
    """The realistic LR (uint8, exactly HR/scale) of an H×W×3 float32 RGB image in [0, 1] (H, W multiples of
    ``scale``)."""
    s = settings
    height, width = hr.shape[0] // scale, hr.shape[1] // scale
    out = _blur(hr, _kernel(rng, s, second=False))
    out = _resize(out, _scaled(out.shape, _factor(rng, s.resize_prob, s.resize_range)), rng)
    out = _noise(out, rng, s.gaussian_noise_prob, s.noise_range, s.poisson_scale_range, s.gray_noise_prob)
    out = _jpeg(out, rng, s.jpeg_range)
    if rng.random() < s.second_blur_prob:
        out = _blur(out, _kernel(rng, s, second=True))
    factor = _factor(rng, s.resize_prob2, s.resize_range2)
    out = _resize(out, (max(1, round(height * factor)), max(1, round(width * factor))), rng)
    out = _noise(out, rng, s.gaussian_noise_prob2, s.noise_range2, s.poisson_scale_range2, s.gray_noise_prob2)
    final = sinc(int(rng.choice(SINC_SIZES)), float(rng.uniform(math.pi / 3, math.pi))) \
        if rng.random() < s.final_sinc_prob else None
    if rng.random() < 0.5:  # resize + sinc, then JPEG; or JPEG, then resize + sinc (upstream's two orders)
        out = _jpeg(_blur(_resize(out, (height, width), rng), final), rng, s.jpeg_range2)
    else:
        out = _blur(_resize(_jpeg(out, rng, s.jpeg_range2), (height, width), rng), final)

    return to_uint8(out)


def sharpen(hr: np.ndarray, settings: Degradation = Degradation()) -> np.ndarray:
    """Unsharp mask of a float32 image in [0, 1]: residuals above ``usm_threshold`` (softened by a blurred mask)
    are added back ``usm_weight`` times."""
    radius = settings.usm_radius + (1 - settings.usm_radius % 2)  # an odd Gaussian size
    blurred = cv2.GaussianBlur(hr, (radius, radius), 0)
    residual = hr - blurred
    mask = (np.abs(residual) * 255 > settings.usm_threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (radius, radius), 0)
    soft = soft[:, :, None] if soft.ndim == 2 else soft
    sharp = np.clip(hr + settings.usm_weight * residual, 0, 1)
    return (soft * sharp + (1 - soft) * hr).astype(np.float32)


def _kernel(rng: np.random.Generator, s: Degradation, *, second: bool) -> np.ndarray:
    sizes = range(s.kernel_size[0], s.kernel_size[1] + 1, 2)
    return random_kernel(rng, sizes=sizes, families=dict(zip(FAMILIES, s.kernel_prob2 if second else s.kernel_prob,
                                                             strict=True)),
                         sigma=s.blur_sigma2 if second else s.blur_sigma,
                         beta_generalized=s.betag_range2 if second else s.betag_range,
                         beta_plateau=s.betap_range2 if second else s.betap_range,
                         sinc_probability=s.sinc_prob2 if second else s.sinc_prob)


def _blur(image: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    if kernel is None:
        return image
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def _factor(rng: np.random.Generator, probs: tuple[float, ...], bounds: tuple[float, float]) -> float:
    kind = int(rng.choice(3, p=np.asarray(probs, dtype=np.float64) / sum(probs)))
    if kind == 0:
        return float(rng.uniform(1.0, bounds[1]))
    if kind == 1:
        return float(rng.uniform(bounds[0], 1.0))
    return 1.0


def _scaled(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def _resize(image: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    mode = MODES[int(rng.integers(len(MODES)))]
    if image.shape[:2] == size:
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=mode)


def _noise(image: np.ndarray, rng: np.random.Generator, gaussian_prob: float, sigma: tuple[float, float],
           poisson_scale: tuple[float, float], gray_prob: float) -> np.ndarray:
    gray = rng.random() < gray_prob
    if rng.random() < gaussian_prob:
        std = float(rng.uniform(*sigma)) / 255.0
        shape = image.shape[:2] + ((1,) if gray else (image.shape[2],))
        noise = rng.standard_normal(shape).astype(np.float32) * std
    else:
        source = image.mean(axis=2, keepdims=True) if gray else image
        clipped = np.clip(source, 0, 1)
        levels = len(np.unique(np.round(clipped * 255)))
        vals = 2.0 ** math.ceil(math.log2(max(levels, 2)))  # photon count per unit intensity (upstream's rule)
        noise = (rng.poisson(clipped * vals) / vals - clipped).astype(np.float32) * float(rng.uniform(*poisson_scale))
    return image + noise


def _jpeg(image: np.ndarray, rng: np.random.Generator, quality: tuple[float, float]) -> np.ndarray:
    """A real JPEG round trip (OpenCV's libjpeg) at a uniform quality; clamps to [0, 1] first."""
    q = int(round(rng.uniform(*quality)))
    bgr = np.ascontiguousarray(to_uint8(np.clip(image, 0, 1))[:, :, ::-1])
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - OpenCV's encoder does not fail on a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / np.float32(255.0)
