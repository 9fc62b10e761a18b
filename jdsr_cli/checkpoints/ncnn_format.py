"""ncnn model files: the ``.param`` text graph and the ``.bin`` weights beside it, read defensively.

``.param``: the magic ``7767517``, a ``layer_count blob_count`` line, then one layer a line:
``Type name n_in n_out in... out... key=value ...``. A key below -23300 is an array (key ``-23300 - id``,
value ``count,v1,v2...``). ``.bin``: for each layer with weights, in graph order, what that layer reads:
a Convolution's weights behind a 4-byte tag (0: fp32; 0x01306B47: fp16, padded to 4 bytes) and its bias as
raw fp32; a PReLU's slopes as raw fp32.

Both files may be hostile: sizes are bounded before reading, every count is checked against what is left in
the ``.bin``, and the whole ``.bin`` must be consumed exactly. Any problem is one ModelLoadError line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jdsr_cli.errors import ModelLoadError

MAGIC = "7767517"
FP16_TAG = 0x01306B47
FP32_TAG = 0
#: bounds for a file we are willing to parse (Real-ESRGAN x4plus: 116 KB, 999 layers; its .bin 33 MB)
MAX_PARAM_BYTES = 8 * 2**20
MAX_LAYERS = 100_000
MAX_BIN_BYTES = 2 * 2**30
ARRAY_KEY_BASE = -23300


@dataclass(frozen=True)
class Layer:
    """One line of a ``.param`` graph; ``params`` maps ids to a number or (arrays) a tuple of numbers."""

    kind: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, float | tuple[float, ...]] = field(default_factory=dict)
    line: int = 0

    def get(self, key: int, default: float) -> float:
        value = self.params.get(key, default)
        if isinstance(value, tuple):
            raise ModelLoadError(f"layer {self.name} ({self.kind}): parameter {key} is an array, expected a number")
        return value

    def array(self, key: int) -> tuple[float, ...]:
        value = self.params.get(key, ())
        return value if isinstance(value, tuple) else (value,)

    def describe(self) -> str:
        return f"layer {self.name} ({self.kind}, line {self.line})"


def bin_path_for(param: Path) -> Path:
    """The ``.bin`` that belongs to ``x.param`` (ncnn's convention: same stem, side by side)."""
    return param.with_suffix(".bin")


def read_param(path: Path) -> list[Layer]:
    """Parse a ``.param`` file into layers; a malformed line is named by its number."""
    try:
        size = path.stat().st_size
        if size > MAX_PARAM_BYTES:
            raise ModelLoadError(f"{path}: {size} bytes is too large for an ncnn .param graph")
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path}: not an ncnn .param graph (not plain text)") from None
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read ({error.strerror or error})") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != MAGIC:
        raise ModelLoadError(f"{path}: not an ncnn .param graph (the first line is not the magic {MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise ModelLoadError(f"{path}: line 2 should be 'layer_count blob_count'") from None
    if not 0 < layer_count <= MAX_LAYERS:
        raise ModelLoadError(f"{path}: {layer_count} layers is outside 1..{MAX_LAYERS}")
    layers = [_parse_layer(path, number, line) for number, line in enumerate(lines[2:], start=3) if line.strip()]
    if len(layers) != layer_count:
        raise ModelLoadError(f"{path}: line 2 announces {layer_count} layers, the file has {len(layers)}")
    return layers


def _parse_layer(path: Path, number: int, line: str) -> Layer:
    fields = line.split()
    try:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        if n_in < 0 or n_out < 0 or 4 + n_in + n_out > len(fields):
            raise ValueError("blob counts do not match the line")
        inputs = tuple(fields[4 : 4 + n_in])
        outputs = tuple(fields[4 + n_in : 4 + n_in + n_out])
        params = dict(_parse_param(item) for item in fields[4 + n_in + n_out :])
    except (IndexError, ValueError) as error:
        raise ModelLoadError(f"{path}: line {number} is not a layer ({error})") from None
    return Layer(kind, name, inputs, outputs, params, number)


def _parse_param(item: str) -> tuple[int, float | tuple[float, ...]]:
    key_text, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"{item!r} is not key=value")
    key = int(key_text)
    if key <= ARRAY_KEY_BASE:
        count_text, *values = value.split(",")
        if int(count_text) != len(values):
            raise ValueError(f"array {item!r} announces {count_text} values, has {len(values)}")
        return ARRAY_KEY_BASE - key, tuple(float(v) for v in values)
    return key, float(value)


class BinReader:
    """Sequential reads from a ``.bin``, each checked against the bytes left."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            size = path.stat().st_size
            if size > MAX_BIN_BYTES:
                raise ModelLoadError(f"{path}: {size} bytes is more than an ncnn weights file we read ({MAX_BIN_BYTES})")
            self.data = path.read_bytes()
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: no such file (an ncnn .param needs its .bin beside it)") from None
        except OSError as error:
            raise ModelLoadError(f"{path}: cannot read ({error.strerror or error})") from None
        self.offset = 0

    def _take(self, size: int, what: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise ModelLoadError(
                f"{self.path}: ends before {what} ({size} bytes wanted at offset {self.offset}, "
                f"{len(self.data) - self.offset} left): the .bin does not belong to this .param or is truncated"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``count`` weights behind a storage tag (fp32 or fp16), as float32."""
        (tag,) = struct.unpack("<I", self._take(4, f"the storage tag of {what}"))
        if tag == FP32_TAG:
            return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)
        if tag == FP16_TAG:
            values = np.frombuffer(self._take(2 * count, what), dtype="<f2").astype(np.float32)
            self._take((-2 * count) % 4, f"the padding after {what}")
            return values
        raise ModelLoadError(
            f"{self.path}: {what} is stored with tag 0x{tag:08X}; only fp32 (0) and fp16 (0x{FP16_TAG:08X}) "
            "weights are supported (int8-quantised models are not)"
        )

    def raw(self, count: int, what: str) -> np.ndarray:
        """``count`` untagged fp32 values (biases, PReLU slopes)."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def finish(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise ModelLoadError(
                f"{self.path}: {left} bytes are left after the last weights: the .bin does not belong to this .param"
            )
