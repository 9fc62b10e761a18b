"""The texture term of ``--method adversarial`` (``texture_weight``): match *how much* detail each neighbourhood
holds, not *where* each stroke falls.

A small student cannot place a GAN teacher's fur and grain stroke for stroke; under L1 alone the cheapest answer
to detail it cannot place is none, so it paints flat. This term compares the local energy of the fine detail
(the mean absolute difference between the image and its Gaussian blur, over windows of 8×8 output pixels) of
the network's output with the target's: flat where the target is flat, textured as strongly as the target
where it is not, whatever the phase. It needs no second network and has no game to lose (docs/training.md).

Energy alone is cheapest to buy with a grid: a pattern repeating every ``scale`` pixels (the period of the
pixel-shuffle upsampler) adds detail everywhere at a small L1 cost, and a first run drew exactly that in dark
fur. So the term also matches the *grid signal*: per window, how far the mean of each of the period × period
pixel phases sits from their common mean. Natural images have little of it and the target's is matched.
"""

from __future__ import annotations

import math

import torch
from torch.nn.functional import avg_pool2d, conv2d, l1_loss, pad

SIGMAS = (1.0, 2.0)  # two bands of detail: pixel-scale grain and the strokes a few pixels wide
WINDOW = 8


def _gaussian_1d(sigma: float, device: torch.device) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    g = torch.exp(-x**2 / (2 * sigma**2))
    return g / g.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel, edges reflected (the output has the input's size)."""
    g, channels = _gaussian_1d(sigma, image.device), image.shape[1]
    radius = g.numel() // 2
    padded = pad(image, (radius,) * 4, mode="reflect")
    rows = conv2d(padded, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return conv2d(rows, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def detail_energy(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean |image − blur(image)| per channel over WINDOW × WINDOW windows (stride WINDOW / 2)."""
    return avg_pool2d((image - gaussian_blur(image, sigma)).abs(), WINDOW, WINDOW // 2)


def grid_signal(image: torch.Tensor, period: int) -> torch.Tensor:
    """Per window of WINDOW × WINDOW cells of period × period pixels: each pixel phase's mean minus the mean of
    all phases, shape (N, C, period², windows)."""
    n, c, h, w = image.shape
    h, w = h - h % period, w - w % period
    cells = image[..., :h, :w].reshape(n, c, h // period, period, w // period, period)
    phases = cells.permute(0, 1, 3, 5, 2, 4).reshape(n, c * period * period, h // period, w // period)
    means = avg_pool2d(phases, WINDOW, WINDOW // 2).reshape(n, c, period * period, -1)
    return means - means.mean(dim=2, keepdim=True)


def texture_loss(output: torch.Tensor, target: torch.Tensor, period: int) -> torch.Tensor:
    """L1 between the two images' local detail energies (averaged over the bands) plus L1 between their grid
    signals at ``period`` (the network's scale); float32 throughout."""
    output, target = output.float(), target.float()
    energy = sum(l1_loss(detail_energy(output, s), detail_energy(target, s)) for s in SIGMAS) / len(SIGMAS)
    if period < 2:
        return energy
    return energy + l1_loss(grid_signal(output, period), grid_signal(target, period))
