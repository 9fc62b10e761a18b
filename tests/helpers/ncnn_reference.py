"""An independent reading of an ncnn graph for the tests: its own parser and forward, no jdsr code.

Handles exactly what Real-ESRGAN's exports use; the product's importer is checked against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _params(fields: list[str]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for item in fields:
        key, value = item.split("=")
        k = int(key)
        if k <= -23300:
            out[-23300 - k] = [float(v) for v in value.split(",")[1:]]
        else:
            out[k] = [float(value)]
    return out


def reference_forward(param: Path, x: torch.Tensor) -> torch.Tensor:
    lines = param.read_text().splitlines()[2:]
    data = param.with_suffix(".bin").read_bytes()
    offset = 0

    def take(count: int, dtype: str) -> np.ndarray:
        nonlocal offset
        size = np.dtype(dtype).itemsize * count
        values = np.frombuffer(data, dtype=dtype, count=count, offset=offset).astype(np.float32)
        offset += size + (-size) % 4
        return values

    blobs: dict[str, torch.Tensor] = {}
    out = x
    for line in lines:
        f = line.split()
        kind, n_in, n_out = f[0], int(f[2]), int(f[3])
        ins, outs = f[4 : 4 + n_in], f[4 + n_in : 4 + n_in + n_out]
        p = _params(f[4 + n_in + n_out :])
        a = [blobs[i] for i in ins]
        if kind == "Input":
            res = [x]
        elif kind == "Split":
            res = a * n_out
        elif kind == "Concat":
            res = [torch.cat(a, 1)]
        elif kind == "Convolution":
            o, k, count = int(p[0][0]), int(p[1][0]), int(p[6][0])
            tag = int(np.frombuffer(data, "<u4", 1, offset)[0])
            offset += 4
            w = take(count, "<f2" if tag == 0x01306B47 else "<f4")
            b = take(o, "<f4")
            weight = torch.from_numpy(w.copy()).view(o, count // (o * k * k), k, k)
            y = F.conv2d(a[0], weight, torch.from_numpy(b.copy()), padding=k // 2)
            if p.get(9, [0])[0] == 2:
                y = F.leaky_relu(y, p[10][0])
            res = [y]
        elif kind == "PReLU":
            res = [F.prelu(a[0], torch.from_numpy(take(int(p[0][0]), "<f4").copy()))]
        elif kind == "Eltwise":
            res = [sum(c * t for c, t in zip(p[1], a, strict=True))]
        elif kind == "BinaryOp":
            res = [a[0] + a[1]]
        elif kind == "Interp":
            res = [F.interpolate(a[0], scale_factor=int(p[1][0]), mode="nearest")]
        elif kind == "PixelShuffle":
            res = [F.pixel_shuffle(a[0], int(p[0][0]))]
        else:
            raise NotImplementedError(kind)
        for name, value in zip(outs, res, strict=True):
            blobs[name] = value
            out = value
    assert offset == len(data)
    return out
