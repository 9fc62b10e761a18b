"""A segment of encoded video on disk: the encoder's raw packets, with nothing in between to change them.

No container: a muxer would shift the timestamps of a segment that starts with negative decode times (B-frames)
or round them to its own time base, and segments must join exactly. The file is a header line, the encoder's
global header, one record per packet (pts, dts, duration, key flag, size, bytes) and a trailer with the count,
so a file cut short is never taken for a segment. Files are written atomically by the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Packet", "read_segment", "segment_bytes", "segment_complete"]

_SEGMENT_MAGIC = b"JDSR-VIDEO-SEGMENT-1\n"
_RECORD = struct.Struct("<qqqBI")  # pts, dts, duration, key frame, size
_NO_TS = -(2**63)


@dataclass(frozen=True)
class Packet:
    """One encoded packet as the encoder gave it (timestamps in the settings' time base; None: not set)."""

    pts: int | None
    dts: int | None
    duration: int
    key: bool
    data: bytes


def segment_bytes(extradata: bytes, packets: list[Packet]) -> bytes:
    """A segment file's content: header, the encoder's global header, the packets, a count that proves it whole."""
    parts = [_SEGMENT_MAGIC, struct.pack("<I", len(extradata)), extradata]
    for p in packets:
        pts = _NO_TS if p.pts is None else p.pts
        dts = _NO_TS if p.dts is None else p.dts
        parts += [_RECORD.pack(pts, dts, p.duration, int(p.key), len(p.data)), p.data]
    parts.append(b"END" + struct.pack("<I", len(packets)))
    return b"".join(parts)


def read_segment(path: Path) -> tuple[bytes, list[Packet]]:
    """(global header, packets) of a segment file; ValueError when it is not a whole segment."""
    data = path.read_bytes()
    if not data.startswith(_SEGMENT_MAGIC) or data[-7:-4] != b"END":
        raise ValueError(f"{path}: not a complete segment")
    at = len(_SEGMENT_MAGIC)
    (size,) = struct.unpack_from("<I", data, at)
    extradata = data[at + 4 : at + 4 + size]
    at += 4 + size
    packets = []
    while at < len(data) - 7:
        pts, dts, duration, key, length = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        packets.append(Packet(None if pts == _NO_TS else pts, None if dts == _NO_TS else dts, duration, bool(key),
                              data[at : at + length]))
        at += length
    if at != len(data) - 7 or struct.unpack_from("<I", data, at + 3)[0] != len(packets):
        raise ValueError(f"{path}: not a complete segment")
    return extradata, packets


def segment_complete(path: Path) -> bool:
    """Whether ``path`` starts and ends as a whole segment does (cheap: the packets are not read)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SEGMENT_MAGIC))
            handle.seek(-7, 2)
            tail = handle.read(3)
    except OSError:
        return False
    return head == _SEGMENT_MAGIC and tail == b"END"
