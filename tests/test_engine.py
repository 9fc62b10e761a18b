"""Engine: tile planning and blending, OOM retry, non-finite fallback, TTA, devices and precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from jdsr_cli.archs.registry import SizeRequirement
from jdsr_cli.engine.device import Precision, resolve_device, resolve_precision
from jdsr_cli.engine.tiling import TileAccumulator, plan_tiles
from jdsr_cli.engine.upscaler import Upscaler
from jdsr_cli.errors import DeviceError, is_out_of_memory

FP32 = Precision("fp32", torch.float32)


class Nearest(nn.Module):
    """A pointwise 'network': output pixel depends on one input pixel, so tiling must be exact."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest") * 0.5 + 0.25


def _image(h: int = 70, w: int = 93, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


@pytest.mark.parametrize("length,tile,overlap", [(1200, 512, 16), (100, 100, 8), (101, 32, 8), (37, 64, 16)])
def test_plan_covers_image_with_equal_tiles(length: int, tile: int, overlap: int) -> None:
    tiles = plan_tiles(length, length + 7, tile, overlap)
    assert len({(t.height, t.width) for t in tiles}) == 1, "tiles must be equal for batching"
    assert all(t.height <= max(tile, 1) or t.height == length for t in tiles)
    covered = np.zeros((length, length + 7), bool)
    for t in tiles:
        covered[t.y : t.y + t.height, t.x : t.x + t.width] = True
    assert covered.all()
    for t in tiles:
        for o in (t.overlap_top, t.overlap_bottom, t.overlap_left, t.overlap_right):
            assert o == 0 or o >= min(overlap, tile // 2)


def test_even_split_not_remainder_tile() -> None:
    sizes = {t.width for t in plan_tiles(64, 1200, 512, 16)}
    assert sizes == {411}  # three ~equal tiles, not 512 + 512 + 176


def test_blend_weights_sum_to_one() -> None:
    acc = TileAccumulator(301, 257, 1, 3)
    for t in plan_tiles(301, 257, 64, 16):
        acc.add(t, np.ones((t.height * 3, t.width * 3, 1), np.float32))
    np.testing.assert_allclose(acc.result(), 1.0, atol=1e-5)


def _whole_buffer_blend(plan, outputs, shape, scale):  # the oracle: one float32 sum and weight for the image
    from jdsr_cli.engine.tiling import blend_weights

    total, weight = np.zeros(shape, np.float32), np.zeros(shape[:2] + (1,), np.float32)
    for t, out in zip(plan, outputs, strict=True):
        w = blend_weights(t, scale)[:, :, None]
        region = (slice(t.y * scale, (t.y + t.height) * scale), slice(t.x * scale, (t.x + t.width) * scale))
        total[region] += out * w
        weight[region] += w
    return np.clip(total / np.maximum(weight, 1e-12), 0, 1)


def test_streamed_blend_equals_the_whole_buffer_blend_and_holds_only_overlaps() -> None:
    """Pixels are finished as soon as no later tile reaches them: same pixels as one whole-image buffer, while
    the float32 held beside the output is the overlap strips only, not tile rows; quantized output is the one
    rounding rule applied to it."""
    from jdsr_cli.io.quantize import quantize

    rng = np.random.default_rng(0)
    plan = plan_tiles(150, 97, 40, 12)
    scale = 2
    outputs = [rng.random((t.height * scale, t.width * scale, 3), dtype=np.float32) * 1.2 - 0.1 for t in plan]
    expected = _whole_buffer_blend(plan, outputs, (300, 194, 3), scale)
    floats = TileAccumulator(150, 97, 3, scale)
    quantized = TileAccumulator(150, 97, 3, scale, out=np.empty((300, 194, 3), np.uint16),
                                finish=lambda rows: quantize(rows, 16))
    held = 0
    for t, out in zip(plan, outputs, strict=True):
        floats.add(t, out)
        quantized.add(t, out)
        held = max(held, floats.held_rows)
    np.testing.assert_allclose(floats.result(), expected, atol=1e-6)
    assert np.abs(quantized.result().astype(int) - quantize(expected, 16).astype(int)).max() <= 1
    assert 0 < held <= 2 * max(t.overlap_bottom for t in plan) * scale < plan[0].height * scale
    with pytest.raises(ValueError, match="plan order"):
        floats.add(plan[0], outputs[0])


@pytest.mark.parametrize("seed", range(6))
def test_streamed_blend_matches_the_oracle_on_any_plan(seed: int) -> None:
    """Random geometries (one tile, one row, one column, tiny tiles, rounding to a multiple): the oracle holds."""
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 90, 2))
    tile, overlap, multiple, scale = int(rng.integers(4, 60)), int(rng.integers(0, 20)), int(rng.choice([1, 4])), 3
    plan = plan_tiles(height, width, tile, overlap, multiple)
    outputs = [rng.random((t.height * scale, t.width * scale, 1), dtype=np.float32) for t in plan]
    acc = TileAccumulator(height, width, 1, scale)
    for t, out in zip(plan, outputs, strict=True):
        acc.add(t, out)
    np.testing.assert_allclose(acc.result(), _whole_buffer_blend(plan, outputs, (height * scale, width * scale, 1),
                                                                 scale), atol=1e-6)


@pytest.mark.parametrize("tile,overlap", [(200, 16), (20, 0)])
def test_tiles_no_other_tile_reaches_are_finished_as_they_are(tile: int, overlap: int) -> None:
    """The whole image (one tile) and abutting tiles (overlap 0) skip the weights: same pixels as the oracle,
    and the tile handed in is not modified (the float path clips straight into the output)."""
    from jdsr_cli.io.quantize import quantize

    rng = np.random.default_rng(1)
    plan = plan_tiles(60, 45, tile, overlap)
    assert all(t.alone for t in plan)
    outputs = [rng.random((t.height * 2, t.width * 2, 3), dtype=np.float32) * 1.4 - 0.2 for t in plan]
    copies = [out.copy() for out in outputs]
    floats = TileAccumulator(60, 45, 3, 2)
    codes = TileAccumulator(60, 45, 3, 2, out=np.empty((120, 90, 3), np.uint8), finish=lambda rows: quantize(rows, 8))
    for t, out in zip(plan, outputs, strict=True):
        floats.add(t, out)
        codes.add(t, out)
    expected = _whole_buffer_blend(plan, outputs, (120, 90, 3), 2)
    assert np.array_equal(floats.result(), expected)
    assert np.array_equal(codes.result(), quantize(expected, 8))
    assert all(np.array_equal(out, copy) for out, copy in zip(outputs, copies, strict=True))


def test_the_finite_check_is_exact_when_the_sum_overflows() -> None:
    from jdsr_cli.engine.upscaler import _all_finite

    huge = torch.full((1, 3, 8, 8), 3e38)
    assert _all_finite(huge) and _all_finite(torch.rand(2, 3, 16, 16))
    for bad in (float("nan"), float("inf"), float("-inf")):
        values = torch.rand(1, 3, 8, 8)
        values[0, 1, 2, 3] = bad
        assert not _all_finite(values)
    mixed = torch.zeros(4)
    mixed[0], mixed[1] = float("inf"), float("-inf")  # sums to NaN, and is not finite either
    assert not _all_finite(mixed)


def test_a_missing_tile_is_an_error_not_a_hole() -> None:
    plan = plan_tiles(60, 60, 32, 8)
    acc = TileAccumulator(60, 60, 1, 2)
    for t in plan[:-1]:
        acc.add(t, np.ones((t.height * 2, t.width * 2, 1), np.float32))
    with pytest.raises(ValueError, match="missing"):
        acc.result()


class Stretch(nn.Module):
    """Nearest ×2 mapped onto [-0.3, 1.3], with exact half codes: outputs outside [0, 1] and on rounding ties."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=2, mode="nearest") * 1.6 - 0.3
        up[..., 0, :] = (torch.arange(up.shape[-1], dtype=torch.float32) % 256 + 0.5) / 255
        return up


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("tile,overlap", [(32, 8), (0, 8), (30, 0)])
def test_upscaler_quantizes_as_the_writer_would(tile: int, overlap: int, on_device: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Blended tiles are rounded on the host; on a GPU, tiles nothing overlaps (the whole image, abutting tiles)
    are rounded on the device (forced here on the CPU): both give the writer's integers."""
    from jdsr_cli.engine import upscaler as engine
    from jdsr_cli.io.quantize import to_uint8

    monkeypatch.setattr(engine, "_rounds_on_device", lambda device: on_device)

    image = _image(90, 70)
    upscaler = Upscaler(Stretch(), scale=2, device=torch.device("cpu"), precision=FP32, tile=tile, overlap=overlap)
    floats = upscaler.upscale(image)
    uint8 = upscaler.upscale(image, depth=8)
    assert uint8.pixels.dtype == np.uint8 and np.array_equal(uint8.pixels, to_uint8(floats.pixels))


@pytest.mark.parametrize("tile", [0, 32, 40, 64])
def test_pointwise_model_tiling_is_exact(tile: int) -> None:
    image = _image()
    up = Upscaler(Nearest(2), scale=2, device=torch.device("cpu"), precision=FP32, tile=tile, overlap=8)
    whole = Upscaler(Nearest(2), scale=2, device=torch.device("cpu"), precision=FP32, tile=0).upscale(image)
    tiled = up.upscale(image)
    np.testing.assert_allclose(tiled.pixels, whole.pixels, atol=1e-6)
    assert tiled.tile == (None if tile == 0 else tile)
    assert whole.tile is None and whole.tiles == 1


class FailsAbove(nn.Module):
    """Raises a CUDA-style OOM for inputs above ``limit`` pixels: an injected out-of-memory."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.calls: list[tuple[int, int]] = []
        self.inner = Nearest(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape[-2:]))
        if x.shape[-1] * x.shape[-2] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_oom_halves_tile_and_retries() -> None:
    image = _image(200, 180)
    model = FailsAbove(60 * 60)
    result = Upscaler(model, scale=2, device=torch.device("cpu"), precision=FP32, tile=0, overlap=8).upscale(image)
    expected = Nearest(2)(torch.from_numpy(image.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(result.pixels, np.clip(expected, 0, 1), atol=1e-6)
    assert result.tile == 50  # 200 -> 100 -> 50
    assert max(h * w for h, w in model.calls[-result.tiles :]) <= 60 * 60


def test_oom_below_minimum_tile_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match="out of memory"):
        Upscaler(FailsAbove(10), scale=2, device=torch.device("cpu"), precision=FP32, tile=64).upscale(_image(80, 80))


def test_other_errors_are_not_treated_as_oom() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        Upscaler(Broken(), scale=2, device=torch.device("cpu"), precision=FP32, tile=0).upscale(_image(8, 8))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert not is_out_of_memory(ValueError("out of memory"))
    assert is_out_of_memory(MemoryError()) and is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))


class NanInHalf(nn.Module):
    """Produces NaN under reduced-precision autocast, a finite result in fp32 (like an fp16 overflow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        if torch.is_autocast_enabled("cpu"):
            return out * float("nan")
        return out


def test_non_finite_reduced_precision_output_reruns_in_fp32() -> None:
    image = _image(40, 40)
    bf16 = Precision("bf16", torch.bfloat16)
    result = Upscaler(NanInHalf(), scale=2, device=torch.device("cpu"), precision=bf16, tile=32, overlap=8).upscale(image)
    assert np.isfinite(result.pixels).all()
    assert result.fp32_fallbacks == result.tiles == 4


def test_tta_of_equivariant_model_is_identity_and_of_conv_is_average() -> None:
    image = _image(24, 31)
    plain = Upscaler(Nearest(2), scale=2, device=torch.device("cpu"), precision=FP32, tile=0).upscale(image)
    tta = Upscaler(Nearest(2), scale=2, device=torch.device("cpu"), precision=FP32, tile=0, tta=True).upscale(image)
    np.testing.assert_allclose(tta.pixels, plain.pixels, atol=1e-6)

    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    x = torch.from_numpy(image.transpose(2, 0, 1))[None]
    views = []
    for flip in (False, True):
        v = x.flip(-1) if flip else x
        for k in range(4):
            o = torch.rot90(conv(torch.rot90(v, k, (-2, -1))), -k, (-2, -1))
            views.append(o.flip(-1) if flip else o)
    expected = torch.stack(views).mean(0)[0].detach().numpy().transpose(1, 2, 0)
    got = Upscaler(conv, scale=2, device=torch.device("cpu"), precision=FP32, tile=0, tta=True).upscale(image)
    np.testing.assert_allclose(got.pixels, np.clip(expected, 0, 1), atol=1e-5)


def test_size_requirement_pads_and_crops() -> None:
    seen: list[tuple[int, int]] = []

    class NeedsMultipleOf8(Nearest):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape[-2:]))
            assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0
            return super().forward(x)

    image = _image(21, 30)
    result = Upscaler(
        NeedsMultipleOf8(2), scale=2, device=torch.device("cpu"), precision=FP32, tile=0,
        size_requirement=SizeRequirement(minimum=16, multiple_of=8),
    ).upscale(image)
    assert result.pixels.shape == (42, 60, 3)
    assert seen == [(24, 32)]


def test_auto_tile_on_cpu_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from jdsr_cli.engine import upscaler as engine
    from jdsr_cli.engine.upscaler import CPU_TILE_CAP, MIN_TILE

    # the tile follows the free memory the machine reports, so the test sets it (CI machines differ)
    monkeypatch.setattr(engine, "free_memory_bytes", lambda device: 64 * 1024**3)
    up = Upscaler(Nearest(2), scale=2, device=torch.device("cpu"), precision=FP32, tile="auto")
    result = up.upscale(_image(50, 60))
    assert result.tile is None  # a small image fits in one pass
    assert up.upscale(_image(CPU_TILE_CAP + 40, 30)).tile == CPU_TILE_CAP  # larger ones in cache-sized tiles

    monkeypatch.setattr(engine, "free_memory_bytes", lambda device: 256 * 1024**2)  # a busy machine
    tight = up.upscale(_image(CPU_TILE_CAP + 40, 30)).tile
    assert tight is not None and MIN_TILE <= tight < CPU_TILE_CAP and tight % 8 == 0


def test_device_validation() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(DeviceError, match="not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(DeviceError):
        resolve_device("cuda:99")


def test_precision_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from jdsr_cli.engine import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_bf16_is_native", lambda: False)
    assert resolve_precision("auto", cpu, supports_fp16=True, supports_bf16=True).name == "fp32"
    monkeypatch.setattr(device, "cpu_bf16_is_native", lambda: True)  # AVX512-BF16 / AMX: bf16 where it is safe
    assert resolve_precision("auto", cpu, supports_fp16=True, supports_bf16=True).name == "bf16"
    assert resolve_precision("auto", cpu, supports_fp16=True, supports_bf16=False).name == "fp32"
    # a model measured to lose more than 0.02 dB in bf16: auto keeps fp32, an explicit bf16 still runs
    assert resolve_precision("auto", cpu, supports_fp16=True, supports_bf16=True, auto_bf16=False).name == "fp32"
    assert resolve_precision("bf16", cpu, supports_fp16=True, supports_bf16=True, auto_bf16=False).name == "bf16"
    with pytest.raises(DeviceError, match="CPU"):
        resolve_precision("fp16", cpu, supports_fp16=True, supports_bf16=True)
    assert resolve_precision("bf16", cpu, supports_fp16=True, supports_bf16=True).dtype == torch.bfloat16
    with pytest.raises(DeviceError, match="not bf16-safe"):
        resolve_precision("bf16", cpu, supports_fp16=True, supports_bf16=False)
    with pytest.raises(DeviceError, match="choose one"):
        resolve_precision("int8", cpu, supports_fp16=True, supports_bf16=True)


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from jdsr_cli.engine import device

    cases = (({"avx2", "fma"}, []), ({"avx512f", "avx512_bf16"}, ["AVX512-BF16"]),
             ({"amx_bf16", "avx512_bf16", "amx_tile"}, ["AMX-BF16", "AVX512-BF16"]))
    for flags, features in cases:
        monkeypatch.setattr(device, "_cpu_flags", lambda flags=flags: flags)
        assert device.cpu_bf16_features() == features  # what `jdsr doctor` names
        assert device.cpu_bf16_is_native() is bool(features)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_auto_precision_and_tiles_match() -> None:
    dev = torch.device("cuda")
    precision = resolve_precision("auto", dev, supports_fp16=True, supports_bf16=True)
    assert precision.is_reduced
    image = _image(300, 260)
    gpu = Upscaler(Nearest(2), scale=2, device=dev, precision=precision, tile="auto").upscale(image)
    cpu = Upscaler(Nearest(2), scale=2, device=torch.device("cpu"), precision=FP32, tile=0).upscale(image)
    np.testing.assert_allclose(gpu.pixels, cpu.pixels, atol=1e-2)


def test_auto_keeps_fp32_for_a_model_measured_to_lose_in_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest entry recording a bf16 loss over 0.02 dB (``bf16_delta_db``, experiments/bf16_quality.py) keeps auto on
    fp32 on a CPU with native bf16; the bundled imdn-x4 (measured +0.005 dB) gets bf16."""
    import dataclasses

    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.upscale import create_upscaler
    from jdsr_cli.engine import device

    monkeypatch.setattr(device, "cpu_bf16_is_native", lambda: True)
    x4 = resolve_model("imdn-x4", scale=None)
    assert x4.entry is not None and x4.entry.bf16_fits_auto
    assert create_upscaler(x4, device="cpu").precision.name == "bf16"
    lossy = dataclasses.replace(x4, entry=dataclasses.replace(x4.entry, bf16_delta_db=-0.031))
    assert not lossy.entry.bf16_fits_auto
    assert create_upscaler(lossy, device="cpu").precision.name == "fp32"
    assert create_upscaler(lossy, device="cpu", precision="bf16").precision.name == "bf16"
