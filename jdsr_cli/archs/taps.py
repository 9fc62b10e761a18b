"""Read named intermediate features of a network through forward hooks (distillation taps).

Tap names (docs/design/distillation-methods.md §0): ``head`` (first conv), ``body.i`` (block or group i),
``body_tail`` (the feature closing the body, before the global skip). Features are stored as produced,
not detached: a student's features keep their graph, a teacher run under ``no_grad`` has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from jdsr_cli.archs.base import SRNet


def available_taps(model: SRNet) -> list[str]:
    return list(model.feature_taps())


def resolve_taps(model: SRNet, tap_names: Iterable[str] | str) -> dict[str, nn.Module]:
    """Tap name -> module, or ValueError naming the unknown taps and listing the available ones."""
    names = [tap_names] if isinstance(tap_names, str) else list(tap_names)
    taps = model.feature_taps()
    unknown = [n for n in names if n not in taps]
    if unknown:
        raise ValueError(
            f"unknown feature tap(s) {', '.join(map(repr, unknown))} for {type(model).__name__}; "
            f"available: {', '.join(taps)}"
        )
    return {n: taps[n] for n in dict.fromkeys(names)}


@contextmanager
def capture_features(model: SRNet, tap_names: Iterable[str] | str) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward of ``model`` stores its tap outputs in the yielded dict.

    The dict is overwritten by each forward; the hooks are removed on exit (also on error).
    """
    modules = resolve_taps(model, tap_names)
    features: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            features[name] = output

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        yield features
    finally:
        for handle in handles:
            handle.remove()
