"""Models users bring: SPAN, Real-ESRGAN's SRVGGNetCompact and ESRGAN's RRDBNet, recognised from state dicts
laid out as the official ``.pth`` files are (names written out here from the official code, not from ours),
run end to end through ``jdsr upscale``, and named by ``jdsr models inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY, ArchConfig
from jdsr_cli.archs.span import fold_span
from jdsr_cli.cli.main import app


def _conv(out: int, inp: int, k: int) -> dict[str, torch.Tensor]:
    return {"weight": torch.randn(out, inp, k, k) * (1.0 / (inp * k * k)) ** 0.5, "bias": torch.zeros(out)}


def _add(state: dict[str, torch.Tensor], prefix: str, tensors: dict[str, torch.Tensor]) -> None:
    state.update({f"{prefix}.{k}": v for k, v in tensors.items()})


def official_srvgg(num_feat: int, num_conv: int, scale: int) -> dict[str, torch.Tensor]:
    """realesrgan/archs/srvgg_arch.py: body = [conv, prelu, (conv, prelu) × num_conv, conv]."""
    state: dict[str, torch.Tensor] = {}
    _add(state, "body.0", _conv(num_feat, 3, 3))
    state["body.1.weight"] = torch.full((num_feat,), 0.25)
    for i in range(num_conv):
        _add(state, f"body.{2 * i + 2}", _conv(num_feat, num_feat, 3))
        state[f"body.{2 * i + 3}.weight"] = torch.full((num_feat,), 0.25)
    _add(state, f"body.{2 * num_conv + 2}", _conv(3 * scale * scale, num_feat, 3))
    return state


def official_rrdbnet(num_feat: int, num_block: int, grow: int, scale: int) -> dict[str, torch.Tensor]:
    """basicsr/archs/rrdbnet_arch.py: conv_first (3·4 inputs at ×2), body.i.rdbj.convk, conv_body, conv_up1/2,
    conv_hr, conv_last."""
    state: dict[str, torch.Tensor] = {}
    _add(state, "conv_first", _conv(num_feat, 3 * (16 // scale**2), 3))
    for b in range(num_block):
        for r in (1, 2, 3):
            for k in range(1, 6):
                inputs = num_feat + (k - 1) * grow
                _add(state, f"body.{b}.rdb{r}.conv{k}", _conv(num_feat if k == 5 else grow, inputs, 3))
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _add(state, name, _conv(num_feat, num_feat, 3))
    _add(state, "conv_last", _conv(3, num_feat, 3))
    return state


def official_span(channels: int, scale: int, folded: bool = False) -> dict[str, torch.Tensor]:
    """hongyuanyu/SPAN span_arch.py: every Conv3XC holds sk, conv.0-2 (gain 2) and eval_conv."""
    state: dict[str, torch.Tensor] = {}

    def conv3xc(prefix: str, c_in: int, c_out: int) -> None:
        if not folded:
            _add(state, f"{prefix}.sk", _conv(c_out, c_in, 1))
            _add(state, f"{prefix}.conv.0", _conv(2 * c_in, c_in, 1))
            _add(state, f"{prefix}.conv.1", _conv(2 * c_out, 2 * c_in, 3))
            _add(state, f"{prefix}.conv.2", _conv(c_out, 2 * c_out, 1))
        _add(state, f"{prefix}.eval_conv", _conv(c_out, c_in, 3))  # stale in a training checkpoint

    conv3xc("conv_1", 3, channels)
    for b in range(1, 7):
        for c in ("c1_r", "c2_r", "c3_r"):
            conv3xc(f"block_{b}.{c}", channels, channels)
    _add(state, "conv_cat", _conv(channels, 4 * channels, 1))
    conv3xc("conv_2", channels, channels)
    _add(state, "upsampler.0", _conv(3 * scale * scale, channels, 3))
    return state


CASES = {
    "srvgg-x4": (official_srvgg(8, 3, 4), ArchConfig("srvgg", 4, {"num_feat": 8, "num_conv": 3, "act_type": "prelu",
                                                                   "num_in_ch": 3, "num_out_ch": 3})),
    "rrdbnet-x4": (official_rrdbnet(8, 2, 4, 4), ArchConfig("rrdbnet", 4, {"num_feat": 8, "num_block": 2,
                                                                          "num_grow_ch": 4, "num_in_ch": 3,
                                                                          "num_out_ch": 3})),
    "rrdbnet-x2": (official_rrdbnet(8, 1, 4, 2), ArchConfig("rrdbnet", 2, {"num_feat": 8, "num_block": 1,
                                                                          "num_grow_ch": 4, "num_in_ch": 3,
                                                                          "num_out_ch": 3})),
    "span-x4": (official_span(8, 4), ArchConfig("span", 4, {"feature_channels": 8, "num_in_ch": 3, "num_out_ch": 3,
                                                            "folded": False})),
    "span-x3-folded": (official_span(8, 3, folded=True), ArchConfig("span", 3, {"feature_channels": 8, "num_in_ch": 3,
                                                                               "num_out_ch": 3, "folded": True})),
}


@pytest.mark.parametrize("case", CASES)
def test_official_layouts_are_detected_exactly(case: str) -> None:
    state, expected = CASES[case]
    assert REGISTRY.detect(state) == expected
    model = REGISTRY.build(expected)
    model.load_state_dict(state, strict=True)


def test_real_world_sizes_match_the_published_parameter_counts() -> None:
    """realesr-general-x4v3 1.21M, RealESRGAN_x4plus 16.7M, SPAN-48 folded 426K (the published figures)."""
    counts = {name: sum(p.numel() for p in REGISTRY.build_preset(*name, 4).parameters())
              for name in (("srvgg", "general-v3"), ("rrdbnet", "esrgan"))}
    folded = sum(p.numel() for p in REGISTRY.build(ArchConfig("span", 4, {"folded": True})).parameters())
    assert counts == {("srvgg", "general-v3"): 1_213_296, ("rrdbnet", "esrgan"): 16_697_987}
    assert folded == 426_288


def test_span_folds_exactly_and_ignores_a_stale_stored_eval_conv() -> None:
    state, config = CASES["span-x4"]
    model = REGISTRY.build(config)
    model.load_state_dict(state)  # its eval_conv tensors are random, not the fold of the branches
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        chain = model.train()(x)  # training runs the differentiable fold (the chain itself: test below)
        eval_out = model.eval()(x)
        folded = fold_span(model).eval()(x)
    torch.testing.assert_close(eval_out, chain, rtol=1e-4, atol=1e-5 * float(chain.abs().max()))  # fp32 sums
    torch.testing.assert_close(folded, eval_out, rtol=0, atol=0)
    assert REGISTRY.detect(fold_span(model).state_dict()).kwargs["folded"] is True
    with torch.no_grad():  # a weight changed in place is refolded before the next eval forward
        model.conv_1.sk.weight.add_(0.1)
        changed = model(x)
    assert not torch.equal(changed, eval_out)


def test_rrdbnet_x2_takes_odd_sizes() -> None:
    model = REGISTRY.build(CASES["rrdbnet-x2"][1]).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 7, 5)).shape == (1, 3, 14, 10)


@pytest.mark.parametrize("case, wrapper", [("srvgg-x4", "params"), ("rrdbnet-x2", "params_ema"),
                                           ("span-x4", "params")])
def test_upscale_runs_an_official_pth_and_inspect_names_its_family(tmp_path: Path, case: str, wrapper: str) -> None:
    """`jdsr upscale photo --model X.pth` just works with a Real-ESRGAN / SPAN style file (BasicSR wrappers)."""
    from PIL import Image

    state, config = CASES[case]
    weights = tmp_path / f"{case}.pth"
    torch.save({wrapper: state}, weights)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (13, 11), (120, 80, 40)).save(photo)
    result = CliRunner().invoke(app, ["upscale", str(photo), "--model", str(weights), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / f"photo_x{config.scale}.png").size == (13 * config.scale, 11 * config.scale)
    inspected = CliRunner().invoke(app, ["models", "inspect", str(weights)])
    assert inspected.exit_code == 0
    assert REGISTRY.get(config.arch).family.split(" (")[0] in inspected.output


def test_inspect_reports_the_family_as_data(tmp_path: Path) -> None:
    from jdsr_cli.checkpoints.inspection import inspect_checkpoint

    weights = tmp_path / "realesr-general-x4v3.pth"
    torch.save({"params": CASES["srvgg-x4"][0]}, weights)
    facts = inspect_checkpoint(weights)
    assert facts["arch"] == "srvgg" and "SRVGGNetCompact" in facts["family"]
    json.dumps(facts)


def test_span_trains_and_saves_a_consistent_fold(tmp_path: Path, data_dir: Path) -> None:
    """Training-form SPAN learns through its branches (the derived eval_conv gets no gradient) and a saved
    checkpoint's eval_conv is the fold of its saved branches."""
    from jdsr_cli.archs.span import fold_chain
    from jdsr_cli.checkpoints.resolve import resolve_model

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((data_dir / "train" / "BSD200").glob("*.png"))[:3]:
        (photos / path.name).write_bytes(path.read_bytes())
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(photos), "-s", "2", "--arch", "span", "--preset", "small", "--steps",
                                      "2", "--batch-size", "2", "--patch-size", "16", "--val-every", "2", "--save-every",
                                      "2", "--ema-decay", "0.9", "--workers", "0", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    model = resolve_model(str(run / "last"), scale=None).model
    conv = model.block_3.c2_r
    weight, bias = fold_chain(conv.conv, conv.sk)
    torch.testing.assert_close(conv.eval_conv.weight, weight)
    torch.testing.assert_close(conv.eval_conv.bias, bias)


def test_span_training_forward_is_the_chain_in_value_and_gradient() -> None:
    """Training runs the differentiable fold: its output and the gradient of every branch parameter equal
    those of the official chain (1×1 → 3×3 on the zero-padded input → 1×1, plus the 1×1 skip), borders included."""
    import torch.nn.functional as F

    from jdsr_cli.archs.span import Conv3XC

    torch.manual_seed(0)
    conv = Conv3XC(5, 7).train()
    for p in conv.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(2, 5, 9, 11)
    target = torch.rand(2, 7, 9, 11)
    branch = [p for p in conv.parameters() if p.requires_grad]
    fused = conv(x)
    fused_grads = torch.autograd.grad(F.mse_loss(fused, target), branch)
    chain = conv.conv(F.pad(x, (1, 1, 1, 1))) + conv.sk(x)  # the official training forward
    chain_grads = torch.autograd.grad(F.mse_loss(chain, target), branch)
    torch.testing.assert_close(fused, chain, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused_grads, chain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert conv.eval_conv.weight.grad is None  # the derived eval_conv stays out of training
