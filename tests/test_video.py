"""Video in, video out (issue 31): frames, timing, audio, metadata kept; resume after a kill; bad clips, one line each.

The clips are tiny (64×48, 2 s) and made here; the model is an FSRCNN-s whose weights enlarge bilinearly (a real
network, deterministic, milliseconds a frame), run in fp32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jdsr_cli.cli.main import app
from jdsr_cli.errors import Interrupted, UsageError
from tests.helpers.videofiles import (
    bilinear_fsrcnn,
    clip_facts,
    frame_samples,
    make_clip,
    video_job,
    with_subtitles,
)

pytest.importorskip("av")
runner = CliRunner()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bilinear_fsrcnn(tmp_path_factory.mktemp("model") / "bilinear-x2")


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "cfr": make_clip(root / "cfr.mp4", rotation=90),
        "vfr": make_clip(root / "vfr.mkv", vfr=True),
        "deep": make_clip(root / "deep.mkv", pix_fmt="yuv420p10le", audio=False, frames=12),
    }


def _run(inputs: list[Path], out: Path, model: Path, **video):  # type: ignore[no-untyped-def]
    from jdsr_cli.commands.imagejob import run_image_job

    return run_image_job(video_job(inputs, out, model, **video))


def test_clip_keeps_frames_timing_audio_rotation_and_colour(clips: dict[str, Path], tiny_model: Path,
                                                            tmp_path: Path) -> None:
    outcome = _run([clips["cfr"]], tmp_path, tiny_model)
    report = outcome.reports[0]
    assert report.status == "done", report.error
    source, result = clip_facts(clips["cfr"]), clip_facts(Path(report.output))
    assert Path(report.output).name == "cfr_x2.mp4"
    assert result.frames == source.frames == 50
    assert result.times == source.times  # every frame at its time: 0.00, 0.04, ... 1.96
    assert result.size == (128, 96) and result.pix_fmt == "yuv420p"
    assert result.audio == source.audio and len(result.audio) > 90  # every AAC packet copied as it was
    assert result.rotation == source.rotation == 90
    assert result.color == source.color == (1, 1, 1, 1)
    assert report.details["frames"] == 50 and report.details["copied_streams"] == ["audio aac"]
    first_in, first_out = frame_samples(clips["cfr"])[0], frame_samples(Path(report.output))[0]
    shrunk = first_out.reshape(48, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - first_in)[2:-2, 2:-2].mean() < 5  # the picture, enlarged (the borders fade: bilinear)
    assert not list(tmp_path.glob(".*"))  # no work folder, no temp file left


def test_variable_frame_rate_is_kept(clips: dict[str, Path], tiny_model: Path, tmp_path: Path) -> None:
    outcome = _run([clips["vfr"]], tmp_path, tiny_model)
    result, source = clip_facts(tmp_path / "vfr_x2.mkv"), clip_facts(clips["vfr"])
    assert outcome.reports[0].status == "done"
    steps = set(np.round(np.diff(source.times), 3))
    assert steps == {0.04, 0.08}  # really variable
    assert result.times == source.times and result.frames == 50
    assert result.audio == source.audio
    assert result.times[-1] == pytest.approx(2.64)  # the duration: the last frame starts where it did


def test_subtitles_are_copied(clips: dict[str, Path], tiny_model: Path, tmp_path: Path) -> None:
    source = with_subtitles(clips["vfr"], tmp_path / "subs.mkv", ["Hello", "wörld", "<i>bye</i>"])
    report = _run([source], tmp_path / "out", tiny_model).reports[0]
    assert report.status == "done" and report.details["copied_streams"] == ["audio aac", "subtitle srt"]
    result, before = clip_facts(tmp_path / "out" / "subs_x2.mkv"), clip_facts(source)
    assert result.subtitles == before.subtitles and [t for _, t in result.subtitles][1] == "wörld".encode()
    assert result.audio == before.audio and result.times == before.times


def test_ten_bit_clip_is_read_at_16_bits_and_stays_ten_bit(clips: dict[str, Path], tiny_model: Path,
                                                           tmp_path: Path) -> None:
    _run([clips["deep"]], tmp_path, tiny_model)
    result = clip_facts(tmp_path / "deep_x2.mkv")
    assert result.pix_fmt == "yuv420p10le" and result.frames == 12
    samples = frame_samples(tmp_path / "deep_x2.mkv")[0]
    assert samples.dtype == np.uint16 and len(np.unique(samples % 64)) > 1  # not 8-bit values shifted up


def test_frames_match_the_image_path(tiny_model: Path) -> None:
    """The batched frame path gives the samples ``upscale`` gives one image at a time."""
    from jdsr_cli.checkpoints.load import load_checkpoint
    from jdsr_cli.commands.upscale import create_upscaler

    upscaler = create_upscaler(load_checkpoint(tiny_model), device="cpu", precision="fp32", batch_size=3)
    frames = np.random.default_rng(0).random((5, 24, 32, 3), dtype=np.float32)
    batched = upscaler.upscale_frames(frames, depth=8)
    one_by_one = np.stack([upscaler.upscale(f, depth=8).pixels for f in frames])
    assert np.array_equal(batched, one_by_one)


def test_resume_after_an_interruption_equals_a_straight_run(clips: dict[str, Path], tiny_model: Path,
                                                            tmp_path: Path) -> None:
    from jdsr_cli.commands.imagejob import run_image_job

    straight = tmp_path / "straight"
    _run([clips["cfr"]], straight, tiny_model, segment_frames=8, overlap=False)  # all in one thread
    resumed = tmp_path / "resumed"
    job = video_job([clips["cfr"]], resumed, tiny_model, segment_frames=8)

    def stop_at_frame_20(done: int, total: int) -> None:
        if done >= 20:
            raise Interrupted(15, "terminated (SIGTERM)")

    outcome = run_image_job(job, progress=stop_at_frame_20)
    assert outcome.interrupted is not None and not (resumed / "cfr_x2.mp4").exists()
    kept = sorted(p.name for p in (resumed / ".cfr_x2.mp4.jdsr-video").glob("seg-*"))
    assert kept[:2] == ["seg-000000.bin", "seg-000001.bin"]
    report = _run([clips["cfr"]], resumed, tiny_model, segment_frames=8).reports[0]
    assert report.status == "done" and report.details["resumed_at_frame"] == 8 * len(kept)
    a, b = clip_facts(straight / "cfr_x2.mp4"), clip_facts(resumed / "cfr_x2.mp4")
    assert a.video_packets == b.video_packets and a.times == b.times and a.audio == b.audio
    assert all(np.array_equal(x, y) for x, y in zip(frame_samples(straight / "cfr_x2.mp4"),
                                                     frame_samples(resumed / "cfr_x2.mp4"), strict=True))
    assert not (resumed / ".cfr_x2.mp4.jdsr-video").exists()


def test_other_settings_start_afresh_and_a_busy_work_folder_is_refused(clips: dict[str, Path], tiny_model: Path,
                                                                        tmp_path: Path) -> None:
    import fcntl

    from jdsr_cli.commands.imagejob import run_image_job

    job = video_job([clips["cfr"]], tmp_path, tiny_model, segment_frames=8)

    def stop(done: int, total: int) -> None:
        if done >= 20:
            raise Interrupted(2, "interrupted (Ctrl-C)")

    assert run_image_job(job, progress=stop).interrupted is not None
    work = tmp_path / ".cfr_x2.mp4.jdsr-video"
    with open(work / "lock", "w") as holder:  # another process at work on this output
        fcntl.flock(holder, fcntl.LOCK_EX)
        busy = _run([clips["cfr"]], tmp_path, tiny_model, segment_frames=8).reports[0]
    assert busy.status == "failed" and "another jdsr process is making this video" in busy.error
    report = _run([clips["cfr"]], tmp_path, tiny_model, segment_frames=8, crf=30).reports[0]
    assert report.status == "done" and report.details["resumed_at_frame"] is None  # a new crf: from the start
    assert clip_facts(tmp_path / "cfr_x2.mp4").frames == 50 and not work.exists()


def test_a_damaged_segment_is_encoded_again(clips: dict[str, Path], tiny_model: Path, tmp_path: Path) -> None:
    from jdsr_cli.commands.imagejob import run_image_job

    def stop(done: int, total: int) -> None:
        if done >= 20:
            raise Interrupted(2, "interrupted (Ctrl-C)")

    run_image_job(video_job([clips["cfr"]], tmp_path, tiny_model, segment_frames=8), progress=stop)
    segment = tmp_path / ".cfr_x2.mp4.jdsr-video" / "seg-000001.bin"
    segment.write_bytes(segment.read_bytes()[:-5])
    report = _run([clips["cfr"]], tmp_path, tiny_model, segment_frames=8).reports[0]
    assert report.status == "done" and report.details["resumed_at_frame"] == 8  # segment 0 kept, 1 made again
    straight = tmp_path / "straight"
    _run([clips["cfr"]], straight, tiny_model, segment_frames=8)
    assert clip_facts(tmp_path / "cfr_x2.mp4").video_packets == clip_facts(straight / "cfr_x2.mp4").video_packets


_KILLER = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.helpers.videofiles import video_job
from jdsr_cli.commands.imagejob import run_image_job
job = video_job([Path({clip!r})], Path({out!r}), Path({model!r}), segment_frames=8)
def kill(done, total):
    if done >= 30:
        os.kill(os.getpid(), signal.SIGKILL)
run_image_job(job, progress=kill)
"""


def test_a_killed_job_resumes_where_it_stopped(clips: dict[str, Path], tiny_model: Path, tmp_path: Path) -> None:
    """kill -9 mid-clip: nothing under the final name; the re-run keeps the finished segments; same file."""
    out = tmp_path / "out"
    script = _KILLER.format(root=str(Path(__file__).parents[1]), clip=str(clips["cfr"]), out=str(out),
                            model=str(tiny_model))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    assert not (out / "cfr_x2.mp4").exists()
    work = out / ".cfr_x2.mp4.jdsr-video"
    assert len(list(work.glob("seg-*.bin"))) >= 2
    report = _run([clips["cfr"]], out, tiny_model, segment_frames=8).reports[0]
    assert report.status == "done" and report.details["resumed_at_frame"] >= 16
    straight = tmp_path / "straight"
    _run([clips["cfr"]], straight, tiny_model, segment_frames=8)
    assert clip_facts(out / "cfr_x2.mp4").video_packets == clip_facts(straight / "cfr_x2.mp4").video_packets
    assert not work.exists()


@pytest.fixture()
def bad_clips(clips: dict[str, Path], tmp_path: Path) -> Path:
    """A folder of clips that cannot be upscaled, one reason each, plus a good one and a damaged-but-usable one."""
    import av

    root = tmp_path / "bad"
    root.mkdir()
    data = clips["vfr"].read_bytes()
    (root / "good.mkv").write_bytes(data)
    (root / "truncated.mkv").write_bytes(data[: len(data) // 2])
    (root / "unknown-codec.mkv").write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_JDSR/NOT/REAL", 1))
    mp4 = clips["cfr"].read_bytes()
    (root / "no-index.mp4").write_bytes(mp4[: len(mp4) // 2])  # an mp4 cut before its index
    (root / "empty.mov").write_bytes(b"")
    (root / "noise.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with av.open(str(root / "sound-only.mp4"), "w") as out:
        from tests.helpers.videofiles import tone

        tone(out, out.add_stream("aac", rate=48000), 0.5)
    with av.open(str(clips["cfr"])) as container:  # scramble one frame's data in the middle of the stream
        packet = [p for p in container.demux(video=0) if p.size][25]
    broken = bytearray(mp4)
    broken[packet.pos + 4 : packet.pos + packet.size] = bytes(packet.size - 4)
    (root / "broken-frame.mp4").write_bytes(bytes(broken))
    return root


def test_bad_clips_fail_with_one_line_each_and_the_batch_goes_on(bad_clips: Path, tiny_model: Path,
                                                                 tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["upscale", str(bad_clips), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                                 "--device", "cpu", "--precision", "fp32", "--json", str(report_path)])
    assert result.exit_code == 1, result.output
    records = {Path(r["input"]).name: r for r in json.loads(report_path.read_text())["files"]}
    expected = {"truncated.mkv": "truncated: the frames stop at", "unknown-codec.mkv": "codec is not one",
                "no-index.mp4": "not a readable video", "empty.mov": "empty file (0 bytes)",
                "noise.avi": "not a readable video", "sound-only.mp4": "has no video stream (it holds audio)"}
    for name, words in expected.items():
        record = records[name]
        assert record["status"] == "failed" and words in record["error"], record
        assert record["error"].startswith(str(bad_clips / name)) and "\n" not in record["error"]
    assert records["good.mkv"]["status"] == "done"
    damaged = records["broken-frame.mp4"]
    assert damaged["status"] == "done" and "cannot be decoded" in damaged["warnings"][0]
    assert 45 <= damaged["frames"] <= 49
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["broken-frame_x2.mp4", "good_x2.mkv"]
    strict = runner.invoke(app, ["upscale", str(bad_clips / "broken-frame.mp4"), "-o", str(tmp_path / "strict"),
                                 "--model", str(tiny_model), "--device", "cpu", "--strict"])
    assert strict.exit_code == 1 and "cannot be decoded" in strict.output
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())


def test_cli_output_name_codec_and_quality(clips: dict[str, Path], tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "big.mkv"
    result = runner.invoke(app, ["upscale", str(clips["cfr"]), "-o", str(out), "--model", str(tiny_model),
                                 "--device", "cpu", "--video-codec", "mpeg4", "--crf", "4"])
    assert result.exit_code == 0, result.output
    assert "50 frames, mpeg4" in result.output and out.is_file()
    result, source = clip_facts(out), clip_facts(clips["cfr"])
    assert result.frames == 50 and [data for _, data in result.audio] == [data for _, data in source.audio]
    # Matroska cannot store the AAC priming's negative time: the muxer moves every stream 21 ms later, together
    assert np.allclose(np.array(result.times) - source.times, 1024 / 48000, atol=1e-3)
    again = runner.invoke(app, ["upscale", str(clips["cfr"]), "-o", str(out), "--model", str(tiny_model)])
    assert again.exit_code == 0 and "skipped" in again.output  # an existing output is kept
    for args, words in ((["--video-codec", "nope"], "--video-codec nope: not available"),
                        (["--crf", "99"], "--crf 99"),
                        (["-o", str(tmp_path / "x.png")], "is a video; its output must be a video file")):
        bad = runner.invoke(app, ["upscale", str(clips["cfr"]), "--model", str(tiny_model), "-o",
                                  str(tmp_path / "o.mp4"), *args])
        assert bad.exit_code in (1, 2) and words in bad.output, bad.output
    with pytest.raises(UsageError):
        from jdsr_cli.commands.video_job import VideoOptions

        VideoOptions(segment_frames=0)


def test_a_folder_of_images_and_clips_with_live_bars(clips: dict[str, Path], tiny_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A mixed folder: the image follows --format, the clip keeps its container; on a terminal the second bar
    counts frames, with frames per second."""
    import io

    from PIL import Image as PILImage
    from rich.console import Console

    from jdsr_cli.cli import batch_cmd
    from jdsr_cli.cli import console as console_module
    from jdsr_cli.commands.imagejob import WriteOptions
    from jdsr_cli.commands.upscale_job import UpscaleRequest, prepare_upscale

    folder = tmp_path / "mixed"
    folder.mkdir()
    PILImage.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(folder / "still.png")
    (folder / "clip.mp4").write_bytes(clips["cfr"].read_bytes())

    job = prepare_upscale(UpscaleRequest(inputs=[str(folder)], output=tmp_path / "out", model=str(tiny_model),
                                         device="cpu", write=WriteOptions(fmt="jpg")))
    assert "1 image(s), 1 video(s)" in job.banner[0]
    monkeypatch.setattr(console_module.sys.stdout, "isatty", lambda: True, raising=False)
    screen = io.StringIO()
    outcome = batch_cmd._run_with_progress(Console(file=screen, force_terminal=True, width=140), job, False,
                                           lambda details: "", None)
    assert outcome.count("done") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_x2.mp4", "still_x2.jpg"]
    text = screen.getvalue()
    assert "frames" in text and "50/50" in text and " fps" in text


def test_folders_pick_up_videos_but_not_work_folders(clips: dict[str, Path], tmp_path: Path) -> None:
    from jdsr_cli.commands.inputs import collect_inputs

    (tmp_path / "clip.webm").write_bytes(b"x")
    (tmp_path / ".clip_x2.mp4.jdsr-video").mkdir()
    (tmp_path / "notes.txt").write_text("no")
    assert [i.path.name for i in collect_inputs([str(tmp_path)])] == ["clip.webm"]
    assert os.path.exists(clips["cfr"])
