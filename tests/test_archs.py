"""Architectures: parameter counts, shapes, sectioning, auxiliary heads, detection and feature taps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jdsr_cli.archs import (
    REGISTRY,
    ArchConfig,
    LabelGenerator,
    SectionHeads,
    capture_features,
    section_boundaries,
)
from jdsr_cli.checkpoints.recipe import matching_scales
from jdsr_cli.errors import UnknownArchitectureError

SCALES = (2, 3, 4)
X = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(0))

# (arch, preset, overrides) cheap enough to run on the CPU in tests
RUNNABLE = [
    ("imdn", "default", {}),
    ("pan", "default", {}),
    ("edsr", "baseline", {}),
    ("edsr", "tiny", {}),
    ("rcan", "tiny", {}),
    ("fsrcnn", "fsrcnn", {}),
    ("fsrcnn", "fsrcnn-s", {}),
    ("span", "small", {}),
    ("srvgg", "animevideo-v3", {"num_conv": 4}),
]
RUNNABLE_IDS = [f"{a}-{p}" for a, p, _ in RUNNABLE]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(arch: str, preset: str, scale: int, meta: bool = False, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    if meta:
        with torch.device("meta"):
            return REGISTRY.build_preset(arch, preset, scale, **overrides)
    return REGISTRY.build_preset(arch, preset, scale, **overrides).eval()


def shapes(state_dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


# --- parameter counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "preset", "scale", "expected"),
    [
        ("imdn", "default", 4, 715_176),  # official IMDN x4
        ("pan", "default", 4, 272_419),  # official PAN x4
        ("pan", "default", 2, 261_403),
        ("pan", "default", 3, 261_403),
        ("edsr", "tiny", 2, 193_356),  # JDSR peer, jdsr-method.md §3.1
        ("edsr", "tiny", 3, 202_011),
        ("edsr", "tiny", 4, 214_128),
        ("edsr", "baseline", 4, 1_517_571),  # published: 1.5M
        ("rcan", "full", 4, 15_592_355),  # published: 15.59M
        ("rcan", "small", 4, 5_171_315),  # 5.17M in FAKD/DUKD
    ],
)
def test_parameter_counts(arch, preset, scale, expected):
    assert n_params(build(arch, preset, scale, meta=True)) == expected


def test_parameter_counts_near_published():
    assert abs(n_params(build("edsr", "baseline", 4, meta=True)) - 1.5e6) / 1.5e6 < 0.02
    assert abs(n_params(build("rcan", "full", 4, meta=True)) - 15.59e6) / 15.59e6 < 0.01
    assert abs(n_params(build("edsr", "large", 4, meta=True)) - 43e6) / 43e6 < 0.02


def test_specs_are_complete():
    assert set(REGISTRY.names()) == {"fsrcnn", "edsr", "rcan", "imdn", "pan", "slr-encoder", "span", "srvgg",
                                     "rrdbnet"}
    for spec in REGISTRY.specs():
        assert spec.scales == ((2, 4) if spec.name == "rrdbnet" else SCALES)  # RRDBNet: ×4 trunk, ×2 unshuffles
        assert spec.family
        assert spec.presets and spec.summary and spec.reference
        # SR networks allow bf16; the superior-LR encoder rounds to 8-bit levels, where bf16 could flip one
        assert spec.supports_bf16 == (spec.direction == "up")
    assert not REGISTRY.get("rcan").supports_fp16
    assert REGISTRY.get("pan").supports_fp16 and REGISTRY.get("imdn").supports_fp16


# --- forward and sections -------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "preset", "overrides"), RUNNABLE, ids=RUNNABLE_IDS)
@pytest.mark.parametrize("scale", SCALES)
def test_forward_shape_and_trace_bitwise(arch, preset, overrides, scale):
    model = build(arch, preset, scale, **overrides)
    with torch.no_grad():
        y = model(X)
        assert y.shape == (1, 3, 13 * scale, 17 * scale)
        assert y.dtype == torch.float32 and torch.isfinite(y).all()
        for k in sorted({1, min(4, model.num_body_units), model.num_body_units}):
            trace = model.section_trace(X, k)
            assert torch.equal(trace.output, y)
            assert len(trace.sections) == k
            channels = getattr(model, "section_channels", model.feature_channels)
            assert trace.head.shape == (1, channels, 13, 17)
            assert all(f.shape == trace.head.shape for f in trace.sections)
            if arch == "pan":
                ilr = F.interpolate(X, scale_factor=scale, mode="bilinear", align_corners=False)
                assert torch.equal(trace.base, ilr)
            elif arch == "srvgg":
                assert torch.equal(trace.base, F.interpolate(X, scale_factor=scale, mode="nearest"))
            else:
                assert trace.base is None


def test_one_channel_models():
    x = X[:, :1]
    for arch, preset in [("edsr", "baseline"), ("rcan", "tiny"), ("imdn", "default"), ("pan", "default"),
                         ("fsrcnn", "fsrcnn")]:
        model = build(arch, preset, 2, num_in_ch=1, num_out_ch=1)
        with torch.no_grad():
            assert model(x).shape == (1, 1, 26, 34)
        assert REGISTRY.detect(model.state_dict()).kwargs["num_in_ch"] == 1


def test_trace_sections_are_block_outputs():
    model = build("imdn", "default", 4)
    with torch.no_grad():
        trace = model.section_trace(X, 4)
        ends = section_boundaries(6, 4)
        assert ends == [1, 3, 5, 6]
        f = model.fea_conv(X)
        assert torch.equal(trace.head, f)
        outs = []
        for block in model.blocks():
            f = block(f)
            outs.append(f)
        for i, end in enumerate(ends[:-1]):
            assert torch.equal(trace.sections[i], outs[end - 1])
        # the fusion runs as a sum of per-block 1x1 convolutions (no concatenation): equal up to float rounding
        torch.testing.assert_close(trace.sections[-1], model.LR_conv(model.c(torch.cat(outs, 1))), rtol=1e-5, atol=1e-5)


# --- auxiliary heads and label generator ----------------------------------------------------------


@pytest.mark.parametrize(("arch", "preset", "overrides"), RUNNABLE, ids=RUNNABLE_IDS)
def test_section_heads_shapes_and_state_dict_untouched(arch, preset, overrides):
    scale = 3
    model = build(arch, preset, scale, **overrides)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    heads = SectionHeads(model)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(k.startswith("heads.") for k in heads.state_dict())
    assert heads.num_sections == min(4, model.num_body_units)
    with torch.no_grad():
        outs = heads(X)
        assert len(outs) == heads.num_sections
        assert all(o.shape == (1, 3, 39, 51) for o in outs)
        assert torch.equal(outs[-1], model(X))
        labels = LabelGenerator.for_model(model, heads.num_sections)(model.section_trace(X, heads.num_sections)) \
            if heads.num_sections > 1 else []
        assert len(labels) == heads.num_sections - 1
        assert all(y.shape == (1, 3, 39, 51) for y in labels)


@pytest.mark.parametrize(("scale", "heads_params", "generator_params"),
                         [(2, 56_316, 61_236), (3, 72_561, 77_481), (4, 95_304, 100_224)])
def test_pan_heads_and_generator_parameter_counts(scale, heads_params, generator_params):
    model = build("pan", "default", scale, meta=True)
    assert n_params(SectionHeads(model, 4)) == heads_params
    assert n_params(LabelGenerator(40, scale, 4)) == generator_params
    assert n_params(LabelGenerator.for_model(model, 4)) == generator_params


def test_head_loss_reaches_body_and_generator_is_trainable():
    model = build("pan", "default", 2).train()
    heads = SectionHeads(model, 4)
    generator = LabelGenerator.for_model(model, 4)
    trace = model.section_trace(X, 4)
    outs = heads(trace)
    labels = generator(trace)
    loss = outs[0].abs().mean() + sum(y.abs().mean() for y in labels)
    loss.backward()
    assert model.SCPA_trunk[0].conv1_a.weight.grad.abs().sum() > 0  # in section 1
    assert model.SCPA_trunk[15].conv1_a.weight.grad.abs().sum() > 0  # deepest block, via the generator
    assert model.conv_first.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in heads.heads[0].parameters())
    assert all(p.grad is not None for p in generator.parameters())
    assert model.conv_last.weight.grad is None  # the final tail takes no part


def test_edsr_heads_undo_the_mean_shift():
    model = build("edsr", "baseline", 2)
    heads = SectionHeads(model, 4)
    for head in heads.heads:
        torch.nn.init.zeros_(head[1].weight)
        torch.nn.init.zeros_(head[1].bias)
    with torch.no_grad():
        out = heads(X)[0]
    assert torch.allclose(out, model.mean_out.expand_as(out))


def test_bad_section_counts():
    model = build("edsr", "tiny", 2)
    assert SectionHeads(model).num_sections == 2
    with pytest.raises(ValueError):
        SectionHeads(model, 3)
    with pytest.raises(ValueError):
        model.section_trace(X, 0)


# --- detection ------------------------------------------------------------------------------------

ALL_PRESETS = [(spec.name, preset) for spec in REGISTRY.specs() for preset in spec.presets]


@pytest.mark.parametrize(("arch", "preset"), ALL_PRESETS, ids=[f"{a}-{p}" for a, p in ALL_PRESETS])
@pytest.mark.parametrize("scale", SCALES)
def test_detection_round_trip_presets(arch, preset, scale):
    if scale not in REGISTRY.get(arch).scales:
        pytest.skip(f"{arch} has no ×{scale}")
    model = build(arch, preset, scale, meta=True)
    config = REGISTRY.detect(model.state_dict())
    assert config.arch == arch
    assert scale in matching_scales(REGISTRY, config, model.state_dict())
    if len(matching_scales(REGISTRY, config, model.state_dict())) == 1:
        assert config.scale == scale
    config = ArchConfig.from_dict(config.to_dict())
    with torch.device("meta"):
        rebuilt = REGISTRY.build(config)
    assert shapes(rebuilt.state_dict()) == shapes(model.state_dict())
    assert list(rebuilt.state_dict()) == list(model.state_dict())


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("edsr", {"num_feat": 32, "num_block": 3, "num_out_ch": 1}),
        ("edsr", {"num_feat": 48, "num_block": 4, "tail": "peer", "num_in_ch": 1, "num_out_ch": 1}),
        ("rcan", {"num_feat": 32, "num_group": 3, "num_block": 2, "reduction": 8}),
        ("imdn", {"nf": 32, "num_modules": 4, "distillation_rate": 0.25}),
        ("imdn", {"nf": 48, "num_modules": 2, "distillation_rate": 0.5, "cca_reduction": 8}),
        ("imdn", {"nf": 32, "num_modules": 3, "distillation_rate": 0.25, "cca": "static"}),  # frozen statistics
        ("pan", {"nf": 16, "unf": 8, "nb": 3}),
        ("fsrcnn", {"d": 32, "s": 5, "m": 2, "num_in_ch": 1}),
    ],
)
@pytest.mark.parametrize("scale", SCALES)
def test_detection_round_trip_loads_strictly(arch, kwargs, scale):
    torch.manual_seed(0)
    model = REGISTRY.build(ArchConfig(arch, scale, kwargs)).eval()
    config = REGISTRY.detect(model.state_dict())
    assert config.arch == arch and scale in matching_scales(REGISTRY, config, model.state_dict())
    if config.scale != scale:  # an undetectable scale: the caller supplies it
        config = ArchConfig(config.arch, scale, config.kwargs)
    rebuilt = REGISTRY.build(config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt(X[:, : model.in_channels]), model(X[:, : model.in_channels]))


def test_unrelated_state_dict_is_rejected_with_its_tensor_names():
    state = {"encoder.conv.weight": torch.zeros(8, 3, 3, 3), "encoder.conv.bias": torch.zeros(8)}
    with pytest.raises(UnknownArchitectureError) as info:
        REGISTRY.detect(state)
    assert "encoder.conv.weight (8, 3, 3, 3)" in str(info.value)
    assert "edsr" in str(info.value)


@pytest.mark.parametrize(("arch", "preset"), [("edsr", "tiny"), ("imdn", "default"), ("pan", "default")])
def test_near_miss_state_dicts_are_rejected(arch, preset):
    state = dict(build(arch, preset, 4, meta=True).state_dict())
    extra = dict(state, **{"extra.weight": torch.zeros(1)})
    with pytest.raises(UnknownArchitectureError):
        REGISTRY.detect(extra)
    missing = dict(state)
    missing.pop(next(k for k in state if k.endswith("bias")))
    with pytest.raises(UnknownArchitectureError):
        REGISTRY.detect(missing)


def test_mean_shift_is_not_in_the_state_dict():
    model = build("edsr", "tiny", 2)
    assert not any("mean" in k for k in model.state_dict())
    assert model.mean_in.shape == (1, 3, 1, 1)


# --- feature taps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "preset", "overrides"), RUNNABLE, ids=RUNNABLE_IDS)
def test_capture_features(arch, preset, overrides):
    model = build(arch, preset, 2, **overrides)
    taps = model.feature_taps()
    n = model.num_body_units
    assert list(taps) == ["head", *(f"body.{i}" for i in range(n)), "body_tail"]
    names = ["head", f"body.{n - 1}", "body_tail"]
    with capture_features(model, names) as feats:
        with torch.no_grad():
            model(X)
    assert set(feats) == set(names)
    expected_body = getattr(model, "section_channels", model.feature_channels)
    assert feats["head"].shape == (1, model.feature_channels, 13, 17)
    assert feats[f"body.{n - 1}"].shape == (1, expected_body, 13, 17)
    assert feats["body_tail"].shape == (1, model.feature_channels, 13, 17)
    assert all(not m._forward_hooks for m in model.modules())
    if arch != "fsrcnn":  # FSRCNN's sections live in the shrunk space; the others end at body_tail
        with torch.no_grad():
            assert torch.equal(model.section_trace(X, 1).sections[-1], feats["body_tail"])


def test_capture_features_unknown_tap_lists_available():
    model = build("rcan", "tiny", 2)
    with pytest.raises(ValueError, match=r"body\.7.*available: head, body\.0, body\.1, body_tail"):
        with capture_features(model, ["head", "body.7"]):
            pass
    assert all(not m._forward_hooks for m in model.modules())


def test_captured_student_features_keep_their_graph():
    model = build("imdn", "default", 2).train()
    with capture_features(model, ["body.2"]) as feats:
        model(X)
    feats["body.2"].pow(2).mean().backward()
    assert model.IMDB1.c1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["imdn", "pan"])
def test_small_student_presets_cost_about_a_third_of_imdn(arch: str) -> None:
    """The distillation student presets: about a third of imdn-x4's multiply-adds per output pixel."""
    from torch.utils.flop_counter import FlopCounterMode

    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig

    def macs(name: str, kwargs: dict) -> float:
        net = REGISTRY.build(ArchConfig(name, 4, kwargs)).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.rand(1, 3, 16, 16))
        return counter.get_total_flops() / 2

    ratio = macs(arch, REGISTRY.get(arch).presets["small"]) / macs("imdn", REGISTRY.get("imdn").presets["default"])
    assert 0.28 < ratio < 0.36, ratio
