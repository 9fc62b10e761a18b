"""Feature distillation terms: one module per method, holding the adapters it trains with the student.

Each term is called with the student's and the (detached) teachers' features at matching taps, all at LR
resolution, and returns one scalar in fp32. Adapters (regressors, transforms) are sized from the tap shapes
found by a probe forward (``FeatureShapes``) and are dropped at export: the student's checkpoint is the plain
network. Formulas: docs/design/distillation-methods.md §2 (FitNet), §3 (SRKD), §4 (FAKD), §6 (LSFD), §8 (FEED).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

Features = Sequence[torch.Tensor]  # one map per tap, B×C×H×W


def _fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class FeatureTerm(nn.Module):
    """Base: ``forward(student, teachers)`` with ``teachers[n][l]`` teacher n's map at tap l."""

    def forward(self, student: Features, teachers: Sequence[Features]) -> torch.Tensor:
        losses = [self.pair(i, n, _fp32(s), _fp32(t).detach())
                  for n, features in enumerate(teachers) for i, (s, t) in enumerate(zip(student, features,
                                                                                      strict=True))]
        return torch.stack(losses).sum()

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _regressors(student: Sequence[int], teachers: Sequence[Sequence[int]], kernel: int) -> nn.ModuleList:
    """One conv student→teacher channels per (teacher, tap), kernel×kernel, bias, no activation."""
    return nn.ModuleList(nn.ModuleList(nn.Conv2d(cs, ct, kernel, padding=kernel // 2) for cs, ct in
                                       zip(student, channels, strict=True)) for channels in teachers)


def _teacher_scale(t: torch.Tensor) -> torch.Tensor:
    """Each sample's RMS of the teacher map (B×1×1×1, detached): dividing by it makes a regression term free of
    the teacher's feature scale (EDSR works on 0..255, IMDN on 0..1)."""
    return t.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().detach() + 1e-6


class FitNet(FeatureTerm):
    """L1(r(F_S), F_T) / RMS(F_T), r a 1×1 conv C_S → C_T (FitNet as SR-KD papers use it)."""

    def __init__(self, student: Sequence[int], teachers: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.regressors = _regressors(student, teachers, 1)

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale = _teacher_scale(t)
        return nn.functional.l1_loss(_fp32(self.regressors[teacher][tap](s)) / scale, t / scale)


class LSFD(FeatureTerm):
    """[reconstruction] D(p) = mean_c |F_T − R(F_S)| / RMS(F_T) with R a k×k conv; a = N·softmax_p(sg(D)/τ) per
    sample; loss = mean_p a·D, so the pixels where the student lags weigh more."""

    def __init__(self, student: Sequence[int], teachers: Sequence[Sequence[int]], kernel: int, tau: float) -> None:
        super().__init__()
        self.regressors = _regressors(student, teachers, kernel)
        self.tau = tau

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        diff = ((t - _fp32(self.regressors[teacher][tap](s))) / _teacher_scale(t)).abs().mean(dim=1).flatten(1)
        if self.tau <= 0:
            return diff.mean()
        attention = torch.softmax(diff.detach() / self.tau, dim=1) * diff.shape[1]
        return (attention * diff).mean()


def channel_statistic(f: torch.Tensor, stat: str) -> torch.Tensor:
    """A B×(H·W) map of a statistic across channels, L2-normalised per sample (so scale-free)."""
    if stat == "energy":
        m = f.square().mean(dim=1)
    elif stat == "mean":
        m = f.mean(dim=1)
    elif stat == "max":
        m = f.abs().amax(dim=1)
    else:
        m = f.std(dim=1)
    m = m.flatten(1)
    return m / (m.norm(dim=1, keepdim=True) + 1e-6)


class SRKD(FeatureTerm):
    """[reconstruction] L1 between per-sample normalised channel-statistic maps, scaled by √N so the term does
    not shrink with the patch size (a unit vector's entries are ~1/√N)."""

    def __init__(self, stat: str) -> None:
        super().__init__()
        self.stat = stat

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ms, mt = channel_statistic(s, self.stat), channel_statistic(t, self.stat)
        return nn.functional.l1_loss(ms, mt) * ms.shape[1] ** 0.5


def _unit_columns(f: torch.Tensor) -> torch.Tensor:
    """B×C×N with every pixel's channel vector divided by its L2 norm (FAKD adds 1e-8 after the root)."""
    flat = f.flatten(2)
    return flat / (flat.norm(dim=1, keepdim=True) + 1e-8)


def _affinity_rows_l1(fs: torch.Tensor, ft: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    rows_s = fs[:, :, start:stop].transpose(1, 2) @ fs  # B×rows×N
    rows_t = ft[:, :, start:stop].transpose(1, 2) @ ft
    return (rows_s - rows_t).abs().sum()


def spatial_affinity_l1(s: torch.Tensor, t: torch.Tensor, chunk: int, pool: int = 1) -> torch.Tensor:
    """mean |A_S − A_T| over the B×N×N affinities A = F̂ᵀF̂, computed in row chunks that are recomputed in the
    backward pass, so memory stays B×chunk×N instead of B×N×N (FAKD at ×2 would otherwise need GBs)."""
    if pool > 1:
        s, t = nn.functional.avg_pool2d(s, pool), nn.functional.avg_pool2d(t, pool)
    fs, ft = _unit_columns(s), _unit_columns(t)
    n = fs.shape[2]
    total = fs.new_zeros(())
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if torch.is_grad_enabled() and (fs.requires_grad or ft.requires_grad):
            total = total + checkpoint(_affinity_rows_l1, fs, ft, start, stop, use_reentrant=False)
        else:
            total = total + _affinity_rows_l1(fs, ft, start, stop)
    return total / (fs.shape[0] * n * n)


class FAKD(FeatureTerm):
    """L1 between the spatial affinity matrices of student and teacher (channel counts may differ)."""

    def __init__(self, chunk: int, pool: int) -> None:
        super().__init__()
        self.chunk, self.pool = chunk, pool

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(s.device.type, enabled=False):  # cosines of cosines: keep fp32 under bf16 runs
            return spatial_affinity_l1(s, t, self.chunk, self.pool)


class FEED(FeatureTerm):
    """[reconstruction] Σ_n d(NTL_n(F_S), F_T^n), NTL_n = 3 × conv3×3 (ReLU between), d the L1 distance of
    the per-sample L2-normalised maps (Factor Transfer), divided by √n so it does not grow with the patch."""

    def __init__(self, student: Sequence[int], teachers: Sequence[Sequence[int]]) -> None:
        super().__init__()

        def transform(cs: int, ct: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cs, ct, 3, padding=1), nn.ReLU(), nn.Conv2d(ct, ct, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(ct, ct, 3, padding=1))

        self.transforms = nn.ModuleList(nn.ModuleList(transform(cs, ct) for cs, ct in zip(student, channels,
                                                                                           strict=True))
                                        for channels in teachers)

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u = _fp32(self.transforms[teacher][tap](s)).flatten(1)
        v = t.flatten(1)
        u = u / (u.norm(dim=1, keepdim=True) + 1e-8)
        v = v / (v.norm(dim=1, keepdim=True) + 1e-8)
        return ((u - v).abs().sum(dim=1) / u.shape[1] ** 0.5).mean()  # ‖û − v̂‖₁ / √n: O(1) at any size


class VID(FeatureTerm):
    """PISR's variational information distillation: the Laplace negative log-likelihood of the teacher map t
    under a student prediction μ(s) with scale b(s): ``log(2b') + |t − μ|/b'``, b' = 0.1·b + 1e-8, mean over
    elements; μ and b are 1×1 conv → PReLU → 1×1 conv (b through Softplus). t is divided by its RMS first,
    as for the regression terms."""

    def __init__(self, student: Sequence[int], teachers: Sequence[Sequence[int]]) -> None:
        super().__init__()

        def head(cs: int, ct: int, positive: bool) -> nn.Sequential:
            layers = [nn.Conv2d(cs, ct, 1), nn.PReLU(), nn.Conv2d(ct, ct, 1)]
            return nn.Sequential(*layers, *([nn.Softplus()] if positive else []))

        self.means = nn.ModuleList(nn.ModuleList(head(cs, ct, False) for cs, ct in zip(student, channels,
                                                                                        strict=True))
                                   for channels in teachers)
        self.scales = nn.ModuleList(nn.ModuleList(head(cs, ct, True) for cs, ct in zip(student, channels,
                                                                                        strict=True))
                                    for channels in teachers)

    def pair(self, tap: int, teacher: int, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t / _teacher_scale(t)
        mean = _fp32(self.means[teacher][tap](s))
        scale = 0.1 * _fp32(self.scales[teacher][tap](s)) + 1e-8
        return (torch.log(2 * scale) + (t - mean).abs() / scale).mean()
