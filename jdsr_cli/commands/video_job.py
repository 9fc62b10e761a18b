"""One video through the engine: probe, decode, upscale in batches of frames, encode in segments, mux.

The per-file work of ``jdsr upscale`` for a clip (:func:`video_processor` is a ``ProcessFn`` of the batch
runner, so planning, skipping, ``--overwrite``, the report and Ctrl-C behave as for images). Frames are
decoded in a thread ahead of the model and encoded in another behind it, so decoding and encoding overlap
the network. Every ``segment_frames`` frames the encoded packets are saved in the work folder
(:mod:`jdsr_cli.commands.video_work`); a killed or interrupted job run again skips the saved frames (decoded,
not upscaled) and goes on, and gives the same file as an uninterrupted run: segments and batches start at
the same frames. Nothing is ever written under the output's name but the finished file.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jdsr_cli.errors import ImageWriteError, UsageError

if TYPE_CHECKING:
    from jdsr_cli.commands.batch import ProcessFn
    from jdsr_cli.commands.imagejob import ReadOptions
    from jdsr_cli.commands.inputs import InputFile
    from jdsr_cli.commands.upscale import OutputSize
    from jdsr_cli.commands.video_work import WorkFolder
    from jdsr_cli.engine.upscaler import ProgressCallback, Upscaler
    from jdsr_cli.io.video import DecodedFrame, VideoInfo, VideoReader
    from jdsr_cli.io.video_encode import EncoderSettings

#: Default segment: this many seconds of frames (the most a kill can cost; each segment starts a key frame).
SEGMENT_SECONDS = 5
_QUEUE_BATCHES = 2  # decoded batches waiting for the model, upscaled ones waiting for the encoder


@dataclass(frozen=True)
class VideoOptions:
    """``--video-codec`` (None: the best this PyAV has for the container), ``--crf`` (None: the codec's default),
    the segment length in frames (None: about ``SEGMENT_SECONDS`` of video), and whether decoding and encoding
    run in threads beside the network (``overlap``; off only to measure what it buys)."""

    codec: str | None = None
    crf: int | None = None
    segment_frames: int | None = None
    overlap: bool = True

    def __post_init__(self) -> None:
        from jdsr_cli.io.video_encode import available_encoders

        if self.segment_frames is not None and self.segment_frames < 1:
            raise UsageError(f"segment_frames {self.segment_frames}: must be at least 1")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise UsageError(f"--crf {self.crf}: use 0 (best) to 51 (x264/x265) or 63 (VP9, AV1)")
        if self.codec is not None and self.codec not in available_encoders():
            raise UsageError(f"--video-codec {self.codec}: not available here "
                             f"(this PyAV has {', '.join(available_encoders())})")


@dataclass(frozen=True)
class FrameTransform:
    """The network applied to frames, in batches where it can: what ``UpscaleTransform`` is to images."""

    upscaler: Upscaler
    size: OutputSize
    _identity: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def batch_size(self) -> int:
        return self.upscaler.batch_size

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The frames' output size, made even (4:2:0 video needs even sides) by repeating the last row/column."""
        out_w, out_h = self.size.target(width, height, self.upscaler.scale)
        return out_w + out_w % 2, out_h + out_h % 2

    def identity(self) -> dict[str, Any]:
        """What decides the output pixels (a resumed job must match it): the weights, the sizes, the settings."""
        if not self._identity:
            u = self.upscaler
            self._identity.update(weights=_weights_digest(u.model), scale=u.scale, precision=u.precision.name,
                                  device=u.device.type, tile=str(u.tile), overlap=u.overlap, tta=u.tta,
                                  batch=u.batch_size, size=[self.size.outscale, self.size.width, self.size.height])
        return self._identity

    def __call__(self, frames: list[np.ndarray], depth: int) -> list[np.ndarray]:
        """Upscaled frames (H'×W'×3 uint8 or uint16 at ``depth`` bits) for H×W×3 uint8/uint16 frames."""
        top = np.float32(65535 if frames[0].dtype == np.uint16 else 255)
        batch = np.divide(np.stack(frames), top, dtype=np.float32)
        height, width = frames[0].shape[:2]
        out_w, out_h = self.size.target(width, height, self.upscaler.scale)
        s = self.upscaler.scale
        if self.upscaler.in_channels == 3:
            native = (out_w, out_h) == (width * s, height * s)
            results = list(self.upscaler.upscale_frames(batch, depth=depth if native else None))
            if not native:
                results = [_resized(r, out_w, out_h, depth) for r in results]
        else:
            results = [self._one(frame, depth) for frame in batch]
        return [_even(r) for r in results]

    def _one(self, pixels: np.ndarray, depth: int) -> np.ndarray:
        from jdsr_cli.commands.upscale import upscale_image
        from jdsr_cli.io.imagedata import Image
        from jdsr_cli.io.quantize import quantize

        image, _ = upscale_image(Image(pixels, bit_depth=depth), self.upscaler, size=self.size, alpha="discard")
        return quantize(image.pixels, depth)


def _weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    state = model.state_dict() if hasattr(model, "state_dict") else {}
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32] if state else repr(type(model))


def _resized(pixels: np.ndarray, width: int, height: int, depth: int) -> np.ndarray:
    import torch

    from jdsr_cli.io.quantize import quantize
    from jdsr_cli.ops.resize import resize_float

    tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
    return quantize(resize_float(tensor, size=(height, width)).numpy().transpose(1, 2, 0), depth)


def _even(pixels: np.ndarray) -> np.ndarray:
    pad_h, pad_w = pixels.shape[0] % 2, pixels.shape[1] % 2
    return np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else pixels


def video_processor(transform: FrameTransform, options: VideoOptions, read: ReadOptions,
                    progress: ProgressCallback | None = None) -> ProcessFn:
    """The per-file work for a clip: ``process(item, output)`` -> the details of its report record."""

    def process(item: InputFile, output: Path) -> dict[str, Any]:
        return upscale_video(item.path, output, transform, options, read, progress)

    return process


def upscale_video(path: Path, output: Path, transform: FrameTransform, options: VideoOptions, read: ReadOptions,
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Upscale the clip at ``path`` into ``output`` (resuming a job this output's work folder holds)."""
    from jdsr_cli.commands.imagejob import check_output_fits
    from jdsr_cli.commands.video_work import WorkFolder, input_identity
    from jdsr_cli.io.atomic import atomic_open
    from jdsr_cli.io.video import VideoReadError, is_video_path, probe_video
    from jdsr_cli.io.video_encode import encoder_settings, write_video

    if not is_video_path(output):
        raise ImageWriteError(f"{path}: is a video; its output must be a video file (-o NAME{path.suffix})")
    info = probe_video(path)
    out_w, out_h = transform.output_size(info.width, info.height)
    check_output_fits(str(path), out_w, out_h, 3 * transform.batch_size * 2, read)  # a batch made, one encoding
    settings = encoder_settings(info, out_w, out_h, output, options.codec, options.crf)
    per_segment = options.segment_frames or max(1, round(SEGMENT_SECONDS * float(info.rate or 25)))
    job = {"input": input_identity(path), "frames": info.frames, "segment_frames": per_segment,
           "encoder": settings.key(), "model": transform.identity()}
    with WorkFolder(output) as work:
        kept = work.resume(job)
        try:
            segments, frames, warnings = _encoded(work, info, transform, settings, per_segment, kept, read, options,
                                                  progress)
        except VideoReadError:
            work.remove()  # the input is bad: nothing here will ever be finished
            raise
        with atomic_open(output) as handle:
            copied, dropped = write_video(handle, output, info, settings, [work.segment(i) for i in range(segments)])
    work.remove()
    return {"size_in": [info.width, info.height], "size_out": [out_w, out_h], "frames": frames,
            "resumed_at_frame": kept * per_segment if kept else None, "video_codec": settings.codec,
            "pix_fmt": settings.pix_fmt, "copied_streams": copied, "rotation": info.rotation,
            "device": str(transform.upscaler.device), "precision": transform.upscaler.precision.name,
            "tile": None, "warnings": warnings + dropped}


def _encoded(work: WorkFolder, info: VideoInfo, transform: FrameTransform, settings: EncoderSettings,
             per_segment: int, kept: int, read: ReadOptions, options: VideoOptions,
             progress: ProgressCallback | None) -> tuple[int, int, list[str]]:
    """(segments, frames, warnings) once every frame is in a saved segment (at once if a run before finished)."""
    from jdsr_cli.io.video import VideoReader
    from jdsr_cli.io.video_encode import sample_depth

    finished = work.finished()
    if finished is not None:
        if progress is not None:
            progress(info.frames, info.frames)
        return finished
    reader = VideoReader(info, strict=read.strict)
    depth = 16 if info.depth == 16 and sample_depth(settings.pix_fmt) > 8 else 8
    _run(reader, transform, settings, work, per_segment, kept, depth, progress, options.overlap)
    frames = reader.decoded
    segments = -(-frames // per_segment)
    work.mark_finished(segments, frames, reader.warnings)
    return segments, frames, list(reader.warnings)


def _run(reader: VideoReader, transform: FrameTransform, settings: EncoderSettings, work: WorkFolder,
         per_segment: int, kept: int, depth: int, progress: ProgressCallback | None, overlap: bool = True) -> None:
    """Decode (thread) -> upscale (here) -> encode and save segments (thread); all here without ``overlap``."""
    total = reader.info.frames
    done = kept * per_segment
    if progress is not None:
        progress(min(done, total), total)
    encoder = _SegmentWriter(work, settings, per_segment, threaded=overlap)
    frames = _batches(reader.frames(done), per_segment, transform.batch_size)
    batches = _prefetched(frames) if overlap else frames
    try:
        for batch in batches:
            encoder.put(batch, transform([frame.pixels for frame in batch], depth))
            done += len(batch)
            if progress is not None:
                progress(min(done, total), total)
        encoder.close()
    finally:
        batches.close()
        encoder.abort()


def _batches(frames: Iterator[DecodedFrame], per_segment: int, size: int) -> Iterator[list[DecodedFrame]]:
    """Frames in batches of ``size`` that never cross a segment boundary (a resumed job batches as a straight one)."""
    batch: list[DecodedFrame] = []
    for frame in frames:
        if batch and (len(batch) == size or frame.index % per_segment == 0):
            yield batch
            batch = []
        batch.append(frame)
    if batch:
        yield batch


def _prefetched(items: Iterator[Any], depth: int = _QUEUE_BATCHES) -> Iterator[Any]:
    """``items`` produced by a thread ``depth`` ahead; its exception is raised here, and closing stops it."""
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _offer(slots, ("item", item), stop):
                    return
            _offer(slots, ("end", None), stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            _offer(slots, ("error", error), stop)

    worker = threading.Thread(target=produce, name="jdsr-decode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join(timeout=5)


def _offer(slots: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class _SegmentWriter:
    """Encodes upscaled frames (in a thread when ``threaded``) and saves each finished segment; a partial
    segment is never saved."""

    def __init__(self, work: WorkFolder, settings: EncoderSettings, per_segment: int, threaded: bool = True) -> None:
        self.work, self.settings, self.per_segment = work, settings, per_segment
        self._encoder: Any = None
        self._index = -1
        self._queue: queue.Queue[Any] = queue.Queue(_QUEUE_BATCHES)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="jdsr-encode", daemon=True) if threaded else None
        if self._thread is not None:
            self._thread.start()

    def put(self, frames: list[DecodedFrame], pixels: list[np.ndarray]) -> None:
        self._raise()
        if self._thread is None:
            self._encode(frames, pixels)
        elif not _offer(self._queue, (frames, pixels), self._stop):
            self._raise()

    def close(self) -> None:
        """Wait for the last segment to be saved."""
        if self._thread is not None:
            _offer(self._queue, None, self._stop)
            self._thread.join()
            self._raise()
        else:
            self._save_last()

    def abort(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    self._save_last()
                    return
                self._encode(*item)
            # stopped: the segment in progress is dropped
        except BaseException as error:  # noqa: BLE001 - raised in the caller's thread
            self._error = error
            self._stop.set()

    def _encode(self, frames: list[DecodedFrame], pixels: list[np.ndarray]) -> None:
        from jdsr_cli.io.video_encode import SegmentEncoder

        for frame, rgb in zip(frames, pixels, strict=True):
            self._encoder = self._encoder or SegmentEncoder(self.settings)
            self._encoder.encode(frame.pts, rgb)
            self._index = frame.index
            if (frame.index + 1) % self.per_segment == 0:
                self._save_last()

    def _save_last(self) -> None:
        from jdsr_cli.io.video_segments import segment_bytes

        if self._encoder is not None:
            data = segment_bytes(self._encoder.extradata, self._encoder.finish())
            self.work.save_segment(self._index // self.per_segment, data)
            self._encoder = None
