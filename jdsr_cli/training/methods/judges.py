"""The discriminators ("judges") of ``--method adversarial``: which one scores how much of the image.

- ``patch``: VGG-style, strided down to one score per 8×8 output pixels (ESRGAN's shape, made fully
  convolutional). With spectral norm it collapsed to a constant score in our short CPU runs once the network
  trained against it; with batch norm it overpowered the network into grid artifacts (docs/photo-results.md).
- ``unet``: down three times and back up with skips, one score per output pixel (Real-ESRGAN's choice of judge,
  spectral norm throughout). Each score sees both the local pixels and the surrounding patch, so the network is
  told *where* its output looks wrong instead of one verdict per patch (Real-ESRGAN's paper gives this per-pixel
  feedback as its reason; what it did for our students: docs/training.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import interpolate, leaky_relu

ARCHS = ("patch", "unet")
NORMS = ("spectral", "batch")


def _spectral(conv: nn.Conv2d) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(conv)


def patch_discriminator(width: int, in_channels: int = 3, norm: str = "spectral") -> nn.Sequential:
    """A VGG-style patch discriminator, one score per 8×8 output pixels. ``norm``: ``spectral`` (spectral norm on
    every conv but the last; a score depends on its patch alone) or ``batch`` (ESRGAN's batch norm)."""
    widths = [width, width, 2 * width, 2 * width, 4 * width, 4 * width]

    def conv(c_in: int, c_out: int, kernel: int, stride: int, normed: bool = True) -> list[nn.Module]:
        """One conv + LeakyReLU; with batch norm, ESRGAN leaves the first conv unnormalised."""
        if norm == "spectral":
            return [_spectral(nn.Conv2d(c_in, c_out, kernel, stride, 1)), nn.LeakyReLU(0.2)]
        if not normed:
            return [nn.Conv2d(c_in, c_out, kernel, stride, 1), nn.LeakyReLU(0.2)]
        return [nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]

    layers = conv(in_channels, width, 3, 1, normed=False)
    for i, (c_in, c_out) in enumerate(zip(widths, widths[1:], strict=False)):
        stride, kernel = (2, 4) if i % 2 == 0 else (1, 3)
        layers += conv(c_in, c_out, kernel, stride)
    layers += conv(4 * width, width, 4, 2) + [nn.Conv2d(width, 1, 3, 1, 1)]
    return nn.Sequential(*layers)


class UNetDiscriminator(nn.Module):
    """One realness score per pixel: three stride-2 convs down (×1, ×2, ×4, ×8 the width), bilinear back up with
    the skip of each level added, two refining convs and a 1-channel head. Spectral norm on every conv but the
    first and the head. Any input size works (each way up is resized to its skip's size)."""

    def __init__(self, width: int, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1)
        self.down = nn.ModuleList(_spectral(nn.Conv2d(width * 2**i, width * 2 ** (i + 1), 4, 2, 1, bias=False))
                                  for i in range(3))
        self.up = nn.ModuleList(_spectral(nn.Conv2d(width * 2 ** (i + 1), width * 2**i, 3, 1, 1, bias=False))
                                for i in reversed(range(3)))
        self.refine = nn.ModuleList(_spectral(nn.Conv2d(width, width, 3, 1, 1, bias=False)) for _ in range(2))
        self.head = nn.Conv2d(width, 1, 3, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = [leaky_relu(self.stem(image), 0.2)]
        for conv in self.down:
            skips.append(leaky_relu(conv(skips[-1]), 0.2))
        x = skips.pop()
        for conv in self.up:
            skip = skips.pop()
            x = interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = leaky_relu(conv(x), 0.2) + skip
        for conv in self.refine:
            x = leaky_relu(conv(x), 0.2)
        return self.head(x)


def build_judge(arch: str, width: int, in_channels: int, norm: str) -> nn.Module:
    """The ``[adversarial]`` table's judge; ``norm`` applies to the patch judge (the U-Net is spectral only)."""
    if arch == "unet":
        return UNetDiscriminator(width, in_channels)
    return patch_discriminator(width, in_channels, norm)
