"""Super-resolution architectures and the immutable registry that builds and detects them.

Detection tries the specs in ``REGISTRY`` order. Every detector checks the complete set of tensor names
and shapes against a model built on the meta device, so at most one spec can match a state dict; the
order (most distinctive layouts first) only matters for speed and for ``names()`` listings.
"""

from __future__ import annotations

from jdsr_cli.archs import edsr, fsrcnn, imdn, pan, rcan, rrdbnet, slr_encoder, span, srvgg
from jdsr_cli.archs.base import SectionTrace, SRNet, section_boundaries
from jdsr_cli.archs.registry import (
    ArchConfig,
    ArchRegistry,
    ArchSpec,
    SizeRequirement,
    describe_state_dict,
)
from jdsr_cli.archs.sections import LabelGenerator, SectionHeads
from jdsr_cli.archs.taps import available_taps, capture_features

REGISTRY = ArchRegistry((imdn.SPEC, pan.SPEC, rcan.SPEC, edsr.SPEC, fsrcnn.SPEC, span.SPEC, srvgg.SPEC, rrdbnet.SPEC,
                         slr_encoder.SPEC))

__all__ = [
    "REGISTRY",
    "ArchConfig",
    "ArchRegistry",
    "ArchSpec",
    "LabelGenerator",
    "SRNet",
    "SectionHeads",
    "SectionTrace",
    "SizeRequirement",
    "available_taps",
    "capture_features",
    "describe_state_dict",
    "section_boundaries",
]
