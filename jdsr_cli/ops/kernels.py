"""Random blur kernels of the realistic degradation chain (Real-ESRGAN's families, our implementation).

Every kernel is a normalised odd-sized 2-D array. Gaussian-like families share one quadratic form
q(x) = xᵀ Σ⁻¹ x with Σ = R(θ) diag(σx², σy²) R(θ)ᵀ (isotropic: σx = σy, θ = 0):
Gaussian exp(−q/2), generalised Gaussian exp(−q^β/2), plateau 1 / (1 + q^β). The sinc kernel is the
circular low-pass ω·J1(ω r) / (2π r) (ω² / 4π at r = 0), J1 from its integral form: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

FAMILIES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    half = size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    return np.meshgrid(ax, ax, indexing="xy")


def quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """q = xᵀ Σ⁻¹ x on the size×size grid for the rotated covariance diag(σx², σy²)."""
    xx, yy = _grid(size)
    cos, sin = math.cos(theta), math.sin(theta)
    u = cos * xx + sin * yy  # coordinates along the rotated axes
    v = -sin * xx + cos * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    return _normalised(np.exp(-0.5 * quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    return _normalised(np.exp(-0.5 * quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def plateau(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    return _normalised(1.0 / (1.0 + quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def bessel_j1(x: np.ndarray, steps: int = 200) -> np.ndarray:
    """J1(x) = (1/π) ∫₀^π cos(τ − x sin τ) dτ (midpoint rule; error < 1e-8 for |x| < 40)."""
    tau = (np.arange(steps) + 0.5) * (math.pi / steps)
    return np.cos(tau[None, :] - np.asarray(x, dtype=np.float64).reshape(-1, 1) * np.sin(tau)[None, :]).mean(
        axis=1).reshape(np.shape(x))


def sinc(size: int, cutoff: float) -> np.ndarray:
    """The circular low-pass filter of cut-off ``cutoff`` (radians per pixel), normalised."""
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    safe = np.where(r == 0, 1.0, r)
    kernel = np.where(r == 0, cutoff**2 / (4 * math.pi), cutoff * bessel_j1(cutoff * safe) / (2 * math.pi * safe))
    return _normalised(kernel)


def random_kernel(rng: np.random.Generator, *, sizes: Sequence[int], families: Mapping[str, float],
                  sigma: tuple[float, float], beta_generalized: tuple[float, float],
                  beta_plateau: tuple[float, float], sinc_probability: float) -> np.ndarray:
    """One kernel as Real-ESRGAN draws it: an odd size, then a sinc (its probability) or a family by weight."""
    size = int(rng.choice(list(sizes)))
    if rng.random() < sinc_probability:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc(size, float(rng.uniform(low, math.pi)))
    names = list(families)
    weights = np.asarray([families[n] for n in names], dtype=np.float64)
    family = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    sx = float(rng.uniform(*sigma))
    iso = family.endswith("iso") and not family.endswith("aniso")
    sy, theta = (sx, 0.0) if iso else (float(rng.uniform(*sigma)), float(rng.uniform(-math.pi, math.pi)))
    if family.startswith("generalized"):
        return generalized_gaussian(size, sx, sy, theta, float(rng.uniform(*beta_generalized)))
    if family.startswith("plateau"):
        return plateau(size, sx, sy, theta, float(rng.uniform(*beta_plateau)))
    return gaussian(size, sx, sy, theta)
