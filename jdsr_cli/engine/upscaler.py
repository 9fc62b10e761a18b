"""Run a super-resolution network over an image of any size on any device.

The image stays in host memory; only batches of equal tiles travel to the device. A batch whose
reduced-precision output is not finite is run again in fp32; one still not finite in fp32 fails the
image (``NonFiniteOutputError``) rather than turning into black pixels. An out-of-memory error halves the tile
size and restarts the image, down to ``MIN_TILE``. Nothing about a run is stored on the object: each
``upscale`` call returns everything it produced, so one ``Upscaler`` can serve many threads or images.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from jdsr_cli.archs.registry import SizeRequirement
from jdsr_cli.engine.device import Precision, free_memory_bytes
from jdsr_cli.engine.tiling import Tile, TileAccumulator, plan_tiles
from jdsr_cli.errors import DeviceError, NonFiniteOutputError, is_out_of_memory
from jdsr_cli.io.quantize import quantize, quantize_tensor

MIN_TILE = 32
#: ``tile`` values: an int (max tile side in input pixels), 0 for the whole image, or "auto".
TileSetting = int | Literal["auto"]

ProgressCallback = Callable[[int, int], None]


#: Largest automatic tile on a CPU (MPS: 1024, CUDA: 2048). Not a memory limit: on the CPU a whole 1024² image
#: runs slower per output pixel than the same image in 256–512 px tiles (`python bench/bench_speed.py --tiling-only
#: --size 1024 --tile 512`: tiled/whole time 0.73 with the system allocator, whose fresh pages were most of the
#: difference; 0.88 with the jdsr command's allocator settings, 0.90–0.92 at 256 and 384 px).
CPU_TILE_CAP = 512


@dataclass(frozen=True)
class UpscaleResult:
    pixels: np.ndarray  # H·s × W·s × C float32 clamped to [0, 1], or uint8/uint16 when ``depth`` was asked
    tile: int | None  # tile side actually used (None: the whole image in one pass)
    tiles: int  # number of tiles run
    fp32_fallbacks: int  # tile batches re-run in fp32 because the output was not finite
    precision: str


class _OutOfMemory(Exception):
    """Internal: raised out of a pass so the caller can retry with smaller tiles."""


class Upscaler:
    """Applies ``model`` (N×C×kH×kW in [0,1] → N×C×sH×sW, k = ``input_stride``) to whole images.

    Tiles are planned on a grid of k×k input cells, each giving s×s output pixels: k = 1 for
    super-resolution networks, k = the factor (and s = 1) for learned downscalers such as the
    superior-LR encoder, which then tile and blend exactly like upscalers.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        scale: int,
        device: torch.device,
        precision: Precision,
        tile: TileSetting = "auto",
        overlap: int = 16,
        batch_size: int | None = None,
        tta: bool = False,
        size_requirement: SizeRequirement = SizeRequirement(),
        feature_channels: int = 64,
        input_stride: int = 1,
        channels_last: bool = True,
    ) -> None:
        # NHWC convolutions: 1.23× the NCHW speed of IMDN on a 2-core AVX2 CPU (oneDNN); not on MPS
        self.channels_last = channels_last and device.type in ("cpu", "cuda")
        self.model = model.eval().requires_grad_(False).to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scale = scale
        self.device = device
        self.precision = precision
        self.tile = tile
        self.overlap = overlap
        self.batch_size = batch_size or (4 if device.type == "cuda" else 1)
        self.tta = tta
        self.size_requirement = size_requirement
        self.feature_channels = feature_channels
        self.input_stride = input_stride

    # ---- public -----------------------------------------------------------------------------
    def upscale(self, pixels: np.ndarray, progress: ProgressCallback | None = None, *,
                depth: int | None = None) -> UpscaleResult:
        """Upscale an H×W×C float32 image in [0, 1]; C must equal the model's input channels.

        H and W must be multiples of ``input_stride`` (the caller crops or pads by its own rule). ``depth`` 8 or
        16 returns the samples quantized (``jdsr_cli.io.quantize``) tile by tile as pixels finish, so no float32
        copy of the whole output is ever held (a 12 MP ×4 photo: 0.58 GB of uint8 instead of 2.3 GB of float).
        """
        k = self.input_stride
        if pixels.shape[0] % k or pixels.shape[1] % k:
            raise ValueError(f"image sides {pixels.shape[1]}x{pixels.shape[0]} are not multiples of {k}")
        height, width = pixels.shape[0] // k, pixels.shape[1] // k
        tile = self._initial_tile(height, width)
        while True:
            try:
                out, tiles, fallbacks = self._run_image(pixels, tile, progress, depth)
                used = None if tile >= max(height, width) else tile
                return UpscaleResult(out, used, tiles, fallbacks, self.precision.name)
            except _OutOfMemory:
                smaller = min(tile, max(height, width)) // 2
                if smaller < MIN_TILE:
                    raise DeviceError(
                        f"out of memory on {self.device} even with {MIN_TILE} px tiles; "
                        "try --device cpu or a smaller model"
                    ) from None
                tile = smaller

    def upscale_frames(self, frames: np.ndarray, *, depth: int | None = 8) -> np.ndarray:
        """Upscale N frames of one size (N×H×W×C float32 in [0, 1]) to N×sH×sW×C samples of ``depth`` bits
        (None: float32 clamped to [0, 1]).

        Frames that fit one tile go through the network ``batch_size`` at a time, as one NHWC batch (a
        channels-last view: no transpose copy); larger ones, a batch that runs out of memory, or a downscaler
        grid go frame by frame through :meth:`upscale`, which tiles. Both give the same samples as :meth:`upscale`.
        """
        height, width = frames.shape[1:3]
        whole = self.input_stride == 1 and self._initial_tile(height, width) >= max(height, width)
        if whole:
            try:
                return np.concatenate([self._whole_frames(frames[i : i + self.batch_size], depth)
                                       for i in range(0, len(frames), self.batch_size)])
            except _OutOfMemory:
                pass
        return np.stack([self.upscale(frame, depth=depth).pixels for frame in frames])

    def _whole_frames(self, frames: np.ndarray, depth: int | None) -> np.ndarray:
        inputs = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        outputs, _ = self._run_batch(inputs, 8 if depth == 8 and _rounds_on_device(self.device) else None)
        samples = outputs.permute(0, 2, 3, 1).numpy()
        return np.clip(samples, 0.0, 1.0) if depth is None else quantize(samples, depth)

    # ---- tiling -------------------------------------------------------------------------------
    def _initial_tile(self, height: int, width: int) -> int:
        whole = max(height, width)
        if self.tile == "auto":
            return min(whole, self._auto_tile())
        tile = int(self.tile)
        if tile <= 0:
            return whole
        return max(MIN_TILE, tile)

    def _auto_tile(self) -> int:
        """The largest tile side whose activations fit comfortably in free memory."""
        if self.device.type == "cuda":
            per_pixel = self._probe_bytes_per_pixel()
            budget = 0.6 * (free_memory_bytes(self.device) or 0)
        else:
            # Rough CPU/MPS estimate: a dozen live feature maps plus the output, in fp32.
            per_pixel = 4 * (16 * self.feature_channels + 4 * 3 * self.scale**2)
            free = free_memory_bytes(self.device)
            budget = 0.25 * free if free else 2 * 1024**3
        tile = int(math.sqrt(max(budget, 1) / (per_pixel * self.batch_size * (2 if self.tta else 1))))
        cap = {"cuda": 2048, "cpu": CPU_TILE_CAP}.get(self.device.type, 1024)
        return max(MIN_TILE, min(cap, tile // 8 * 8))

    def _probe_bytes_per_pixel(self, side: int = 128) -> float:
        """Measure peak CUDA memory of one probe tile (the chaiNNer estimate guesses; we measure)."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        k = self.input_stride  # per grid cell: k×k input pixels
        probe = torch.rand(1, self.in_channels, side * k, side * k)
        with torch.inference_mode(), self._autocast(self.precision):
            self.model(probe.to(self.device))
        peak = torch.cuda.max_memory_allocated(self.device) - base
        return max(peak, 1) / (side * side)

    def _run_image(
        self, pixels: np.ndarray, tile: int, progress: ProgressCallback | None, depth: int | None = None
    ) -> tuple[np.ndarray, int, int]:
        k = self.input_stride
        height, width, channels = pixels.shape[0] // k, pixels.shape[1] // k, pixels.shape[2]
        req = self.size_requirement
        plan = plan_tiles(height, width, tile, self.overlap, req.multiple_of)
        accumulator = _accumulator(height, width, channels, self.scale, depth)
        fallbacks = 0
        done = 0
        for batch in _chunks(plan, self.batch_size):
            inputs = torch.stack([_tile_input(pixels, t, k) for t in batch])
            # tiles no other tile overlaps go into the output as they are: on CUDA round those there (a quarter
            # of the bytes to move, no host pass); the accumulator's quantize leaves uint8 samples alone
            device_depth = 8 if depth == 8 and _rounds_on_device(self.device) and all(t.alone for t in batch) else None
            outputs, fell_back = self._run_batch(inputs, device_depth)
            fallbacks += fell_back
            for t, out in zip(batch, outputs.numpy(), strict=True):
                accumulator.add(t, out.transpose(1, 2, 0))
            done += len(batch)
            if progress is not None:
                progress(done, len(plan))
        return accumulator.result(), len(plan), fallbacks

    # ---- device work --------------------------------------------------------------------------
    def _run_batch(self, inputs: torch.Tensor, depth: int | None = None) -> tuple[torch.Tensor, int]:
        """Run one CPU batch on the device; returns a CPU batch (float32, or uint8 rounded on the device when
        ``depth`` is 8) and 1 if fp32 was needed."""
        try:
            out, fell_back = self._forward(inputs, self.precision), 0
            finite = _all_finite(out)
            if self.precision.is_reduced and not finite:
                out, fell_back = self._forward(inputs, Precision("fp32", torch.float32)), 1
                finite = _all_finite(out)
            if finite and depth is not None:
                out = quantize_tensor(out, depth)
            out = out.cpu()
        except Exception as error:  # noqa: BLE001 - OOM detection needs the broad catch
            if is_out_of_memory(error):
                self._release_cache()
                raise _OutOfMemory from None
            raise
        if not finite:
            raise NonFiniteOutputError(
                "the model produced non-finite values (NaN or infinity) even in fp32; its weights are broken"
            )
        return out, fell_back

    def _forward(self, inputs: torch.Tensor, precision: Precision) -> torch.Tensor:
        padded, crop = _pad_to_requirement(inputs, self.size_requirement)
        x = padded.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast(precision):
            out = _self_ensemble(self.model, x) if self.tta else self.model(x)
        k = self.input_stride
        return out.float()[..., : crop[0] // k * self.scale, : crop[1] // k * self.scale]

    def _autocast(self, precision: Precision) -> contextlib.AbstractContextManager[None]:
        if not precision.is_reduced:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=precision.dtype)

    @property
    def in_channels(self) -> int:
        """Channels the network expects (3 for RGB models, 1 for Y-only ones)."""
        return int(getattr(self.model, "in_channels", 3))

    def _release_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()


def _accumulator(height: int, width: int, channels: int, scale: int, depth: int | None) -> TileAccumulator:
    """Float32 output clipped to [0, 1], or samples quantized to ``depth`` bits as pixels finish."""
    if depth is None:
        return TileAccumulator(height, width, channels, scale)

    dtype = {8: np.uint8, 16: np.uint16}[depth]
    out = np.empty((height * scale, width * scale, channels), dtype=dtype)
    return TileAccumulator(height, width, channels, scale, out=out, finish=lambda rows: quantize(rows, depth))


def _tile_input(pixels: np.ndarray, tile: Tile, k: int) -> torch.Tensor:
    """One tile of the H×W×C input as a C×h×w tensor: cut per tile, so no channels-first copy of the whole input
    is held (a 12 MP photo's would be 144 MB)."""
    patch = pixels[tile.y * k : (tile.y + tile.height) * k, tile.x * k : (tile.x + tile.width) * k]
    return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))


def _rounds_on_device(device: torch.device) -> bool:
    """Round finished output on the device itself? On CUDA only: on the CPU there is nothing to move and numpy's
    rounding is 2.3× faster than torch's (page faults on its fresh float32 buffer); MPS shares the host's memory
    and is not tested here."""
    return device.type == "cuda"


def _all_finite(values: torch.Tensor) -> bool:
    """Whether every value is finite. A finite sum proves it (any NaN or infinity makes the sum non-finite) in one
    vectorised pass, ~40× faster than ``isfinite().all()`` on a CPU; only a non-finite sum, which finite but huge
    values can also give, is checked value by value."""
    return bool(torch.isfinite(values.sum())) or bool(torch.isfinite(values).all())


def _chunks(items: list[Tile], size: int) -> Iterator[list[Tile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pad_to_requirement(x: torch.Tensor, req: SizeRequirement) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the bottom/right so both sides meet the architecture's size requirement."""
    height, width = x.shape[-2:]

    def target(n: int) -> int:
        n = max(n, req.minimum)
        return math.ceil(n / req.multiple_of) * req.multiple_of

    pad_h, pad_w = target(height) - height, target(width) - width
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (height, width)


def _self_ensemble(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """×8 geometric self-ensemble: the mean of the inverse-transformed outputs of the 8 dihedral views."""
    total = None
    for flip in (False, True):
        view = x.flip(-1) if flip else x
        for turns in range(4):
            out = model(torch.rot90(view, turns, dims=(-2, -1))).float()
            out = torch.rot90(out, -turns, dims=(-2, -1))
            out = out.flip(-1) if flip else out
            total = out if total is None else total + out
    assert total is not None
    return total / 8
