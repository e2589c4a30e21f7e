"""VideoFileSink and ImageSequenceSink, driven directly: open(), process(frame)..., outcome, close()."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamden.errors import OutputError
from streamden.io import (ImageSequenceSink, ImageSequenceSource, VideoFileSink, VideoFileSource,
                          open_sink, probe)
from streamden.io.atomic import partial_path
from streamden.io.frame import ColorInfo, Frame
from tests.media import (frame_times, make_image_sequence, make_video, packet_stats, read_frames, rows_close,
                         synthetic_frame)

FAST = dict(preset="ultrafast", crf=18)


def _run(source, sink, outcome="complete", limit=None):
    """Push the source's frames through the sink the way the graph runner would."""
    source.open()
    sink.open()
    try:
        for i, frame in enumerate(source.generate()):
            if limit is not None and i >= limit:
                break
            sink.process(frame)
    finally:
        source.close()
    sink.outcome = outcome
    sink.close()
    return sink


def _sink_for(source, out, **kw):
    opts = dict(fps=source.fps, width=source.width, height=source.height,
                bit_depth=source.bit_depth, color=source.color, **FAST)
    opts.update(kw)
    return VideoFileSink(out, **opts)


def _images(path) -> list[np.ndarray]:
    return [f.image for f in VideoFileSource(path).generate()]


def _assert_close(a: np.ndarray, b: np.ndarray, mean: float = 6.0, bias: float = 0.5) -> None:
    """Images agree within ``mean`` levels on average and drift by under ``bias`` (8-bit levels)."""
    scale = 257.0 if a.dtype == np.uint16 else 1.0
    diff = (a.astype(float) - b.astype(float)) / scale
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.abs(diff).mean() < mean
    assert np.abs(diff.mean(axis=(0, 1))).max() < bias


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("ext,audio", [(".mp4", "aac"), (".mkv", "opus")])
def test_round_trip_keeps_frames_timestamps_and_audio(tmp_path, ext, audio):
    src_path = make_video(tmp_path / f"in{ext}", frames=12, fps=25, audio=audio)
    out = tmp_path / f"out{ext}"
    source = VideoFileSource(src_path)
    sink = _run(source, _sink_for(source, out, remux_from=str(src_path)))
    assert out.is_file() and not partial_path(out).exists()
    assert sink.frames_written == 12 and sink.frames_dropped == 0 and sink.frames_repeated == 0
    info = probe(out)
    assert info.video.fps == Fraction(25)
    assert frame_times(out) == pytest.approx(frame_times(src_path), abs=1e-6)
    before, after = packet_stats(src_path), packet_stats(out)
    assert len(after["video"]) == 12
    # Audio copied packet for packet: same count, timestamps, durations and sizes.
    assert len(after["audio"]) == len(before["audio"])
    assert rows_close(sorted(after["audio"]), sorted(before["audio"]), 1e-3)
    assert info.audio_streams[0].codec == audio


def test_subtitles_copied_into_mkv(tmp_path):
    src_path = make_video(tmp_path / "in.mkv", frames=10, audio="opus", subtitles=True)
    out = tmp_path / "out.mkv"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out, remux_from=str(src_path)))
    assert [s.type for s in probe(out).streams] == ["video", "audio", "subtitle"]
    before, after = packet_stats(src_path), packet_stats(out)
    assert after["subtitle"] == before["subtitle"]
    assert len(after["audio"]) == len(before["audio"])


def test_mov_text_copied_into_mp4(tmp_path):
    src_path = make_video(tmp_path / "in.mp4", frames=10, subtitles=True)
    out = tmp_path / "out.mp4"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out, remux_from=str(src_path)))
    cues = lambda p: [x for x in packet_stats(p)["subtitle"] if x[2] > 2]  # noqa: E731
    assert cues(out) == cues(src_path)


def test_subtitles_that_mp4_cannot_hold_are_refused_up_front(tmp_path):
    src_path = make_video(tmp_path / "in.mkv", frames=4, subtitles=True)
    source = VideoFileSource(src_path)
    with pytest.raises(OutputError, match="subrip.*mkv"):
        _sink_for(source, tmp_path / "out.mp4", remux_from=str(src_path))
    assert _leftovers(tmp_path) == ["in.mkv"]


@pytest.mark.parametrize("codec,ext,pix_fmt", [("h264", ".mp4", "yuv444p"), ("av1", ".mkv", "yuv420p"),
                                               ("ffv1", ".mkv", "yuv444p")])
def test_odd_sizes(tmp_path, codec, ext, pix_fmt):
    src_path = make_video(tmp_path / "in.mkv", frames=5, size=(63, 47), codec="ffv1")
    out = tmp_path / f"out{ext}"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out, codec=codec, crf=10))
    info = probe(out).video
    assert (info.width, info.height, info.pix_fmt) == (63, 47, pix_fmt)
    decoded = read_frames(out)
    assert len(decoded) == 5
    ref = synthetic_frame(3, (63, 47)).astype(float)
    assert np.abs(decoded[3].astype(float) - ref).mean() < 12  # 4:2:0 chroma costs the most here


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_ten_bit_reencodes_ten_bit(tmp_path, codec):
    src_path = make_video(tmp_path / "in.mkv", frames=4, pix_fmt="yuv420p10le")
    out = tmp_path / "out.mkv"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out, codec=codec))
    info = probe(out).video
    assert info.bit_depth == 10 and info.pix_fmt == "yuv420p10le"
    frames = list(VideoFileSource(out).generate())
    assert len(frames) == 4 and frames[0].image.dtype == np.uint16
    _assert_close(frames[1].image, _images(src_path)[1], bias=1.0)


def test_colour_metadata_written(tmp_path):
    src_path = make_video(tmp_path / "in.mp4", frames=3, color=dict(range="pc", matrix=1, primaries=1, transfer=1))
    out = tmp_path / "out.mkv"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out))
    assert probe(out).video.color == ColorInfo("pc", 1, 1, 1)
    # Same matrix and range both ways; swscale's full-range RGB->YUV is ~0.5 level off in chroma.
    _assert_close(_images(out)[2], _images(src_path)[2], bias=1.5)


def test_eight_bit_round_trip_is_unbiased(tmp_path):
    src_path = make_video(tmp_path / "in.mkv", frames=3)
    out = tmp_path / "out.mkv"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out, codec="ffv1"))
    _assert_close(_images(out)[1], _images(src_path)[1], mean=1.0, bias=0.3)


def _frame(i, pts, tb=Fraction(1, 1000), size=(32, 24)):
    return Frame(synthetic_frame(i, size), pts=pts, time_base=tb, index=i)


def test_constant_frame_rate_rule(tmp_path):
    out = tmp_path / "cfr.mkv"
    sink = VideoFileSink(out, fps=25, width=32, height=24, **FAST)
    sink.open()
    # 0, 40 ms, a duplicate slot (50 ms rounds to slot 1), a 3-slot gap to 200 ms, one without pts.
    for i, pts in enumerate([0, 40, 50, 200]):
        sink.process(_frame(i, pts))
    sink.process(Frame(synthetic_frame(9, (32, 24)), pts=None, time_base=None, index=4))
    sink.outcome = "complete"
    sink.close()
    assert (sink.frames_dropped, sink.frames_repeated, sink.frames_written) == (1, 3, 7)
    assert frame_times(out) == pytest.approx([i / 25 for i in range(7)], abs=1e-6)


def test_first_frame_time_is_the_origin(tmp_path):
    out = tmp_path / "late.mp4"
    sink = VideoFileSink(out, fps=Fraction(30000, 1001), width=32, height=24, **FAST)
    sink.open()
    for i in range(4):
        sink.process(_frame(i, 5_000_000 + i * 1001, tb=Fraction(1, 30000)))
    sink.outcome = "complete"
    sink.close()
    assert frame_times(out) == pytest.approx([i * 1001 / 30000 for i in range(4)], abs=1e-6)
    assert probe(out).video.fps == Fraction(30000, 1001)


def test_refuses_output_equal_to_input(tmp_path):
    src_path = make_video(tmp_path / "in.mp4", frames=2)
    link = tmp_path / "link.mp4"
    link.symlink_to(src_path)
    before = src_path.read_bytes()
    for target in (src_path, link):
        with pytest.raises(OutputError, match="same file as the input"):
            VideoFileSink(target, fps=25, width=64, height=48, remux_from=str(src_path), overwrite=True)
    assert src_path.read_bytes() == before
    assert _leftovers(tmp_path) == ["in.mp4", "link.mp4"]


def test_refuses_existing_output_without_overwrite(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        VideoFileSink(out, fps=25, width=32, height=24)
    assert out.read_bytes() == b"keep me"
    sink = VideoFileSink(out, fps=25, width=32, height=24, overwrite=True, **FAST)
    sink.open()
    sink.process(_frame(0, 0))
    sink.outcome = "complete"
    sink.close()
    assert len(read_frames(out)) == 1


def test_refuses_missing_or_unusable_directory(tmp_path):
    with pytest.raises(OutputError, match="does not exist") as err:
        VideoFileSink(tmp_path / "no" / "out.mp4", fps=25, width=32, height=24)
    assert str(tmp_path / "no") in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        VideoFileSink(tmp_path / "file" / "out.mp4", fps=25, width=32, height=24)
    assert _leftovers(tmp_path) == ["file"]


def test_refuses_unwritable_directory_simulated(tmp_path, monkeypatch):
    import streamden.io.atomic as atomic

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="not writable") as err:
        VideoFileSink(tmp_path / "out.mp4", fps=25, width=32, height=24)
    assert str(tmp_path) in str(err.value)
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_refuses_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            VideoFileSink(locked / "out.mp4", fps=25, width=32, height=24)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name,kw,match", [
    ("out.avi", {}, "unknown output extension"),
    ("out.mp4", {"codec": "mpeg9"}, "unknown video codec"),
    ("out.webm", {"codec": "h264"}, "cannot hold h264"),
    ("out.mkv", {"codec": "png"}, "image sequences"),
])
def test_refuses_unknown_extension_or_codec(tmp_path, name, kw, match):
    with pytest.raises(OutputError, match=match):
        VideoFileSink(tmp_path / name, fps=25, width=32, height=24, **kw)
    assert _leftovers(tmp_path) == []


def test_error_outcome_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    sink = VideoFileSink(out, fps=25, width=32, height=24, **FAST)
    sink.open()
    for i in range(5):
        sink.process(_frame(i, i * 40))
    assert partial_path(out).exists() and not out.exists()
    sink.outcome = "error"
    sink.close()
    assert _leftovers(tmp_path) == []


def test_error_outcome_keeps_an_existing_target(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    sink = VideoFileSink(out, fps=25, width=32, height=24, overwrite=True, **FAST)
    sink.open()
    sink.process(_frame(0, 0))
    sink.outcome = "error"
    sink.close()
    assert out.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == ["out.mp4"]


def test_cancelled_outcome_leaves_a_playable_file_with_the_frames_so_far(tmp_path):
    src_path = make_video(tmp_path / "in.mp4", frames=12, audio="aac")
    out = tmp_path / "out.mp4"
    source = VideoFileSource(src_path)
    _run(source, _sink_for(source, out, remux_from=str(src_path)), outcome="cancelled", limit=5)
    assert _leftovers(tmp_path) == ["in.mp4", "out.mp4"]
    assert frame_times(out) == pytest.approx([i / 25 for i in range(5)], abs=1e-6)
    audio = packet_stats(out)["audio"]
    assert 0 < len(audio) < len(packet_stats(src_path)["audio"])
    assert max(p for p, _, _ in audio) <= 5 / 25 + 1e-6


def test_cancelled_before_any_frame_leaves_nothing(tmp_path):
    out = tmp_path / "out.mkv"
    sink = VideoFileSink(out, fps=25, width=32, height=24)
    sink.open()
    sink.outcome = "cancelled"
    sink.close()
    assert _leftovers(tmp_path) == []


def test_context_manager(tmp_path):
    out = tmp_path / "cm.mkv"
    with VideoFileSink(out, fps=25, width=32, height=24, codec="ffv1") as sink:
        for i in range(3):
            sink.process(_frame(i, i * 40))
    assert len(read_frames(out)) == 3
    with pytest.raises(RuntimeError):
        with VideoFileSink(tmp_path / "boom.mkv", fps=25, width=32, height=24) as sink:
            sink.process(_frame(0, 0))
            raise RuntimeError("boom")
    assert _leftovers(tmp_path) == ["cm.mkv"]


def test_float_and_tensor_images_are_accepted(tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "f.mkv"
    img = synthetic_frame(0, (32, 24))
    with VideoFileSink(out, fps=25, width=32, height=24, codec="ffv1") as sink:
        sink.process(Frame(img.astype(np.float32) / 255, pts=0, time_base=Fraction(1, 25), index=0))
        tensor = torch.from_numpy(img).permute(2, 0, 1).float() / 255
        sink.process(Frame(tensor, pts=1, time_base=Fraction(1, 25), index=1))
    a, b = read_frames(out)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.abs(a.astype(float) - img).mean() < 3


@pytest.mark.parametrize("ext,bit_depth", [("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16)])
def test_image_sequence_round_trip(tmp_path, ext, bit_depth):
    make_image_sequence(tmp_path / "in", frames=3, size=(17, 9), ext=ext, bit_depth=bit_depth)
    source = ImageSequenceSource(tmp_path / "in")
    pattern = str(tmp_path / "out" / f"%04d.{ext}")
    (tmp_path / "out").mkdir()
    sink = _run(source, ImageSequenceSink(pattern, bit_depth=source.bit_depth))
    assert _leftovers(tmp_path / "out") == [f"{i:04d}.{ext}" for i in range(3)]
    back = list(ImageSequenceSource(pattern).generate())
    assert [f.bit_depth for f in back] == [bit_depth] * 3
    for i, f in enumerate(back):
        np.testing.assert_array_equal(f.image, synthetic_frame(i, (17, 9), bit_depth))
    assert len(sink.written) == 3


def test_video_to_sixteen_bit_tiffs(tmp_path):
    src_path = make_video(tmp_path / "deep.mkv", frames=3, pix_fmt="yuv420p10le")
    source = VideoFileSource(src_path)
    sink = open_sink(str(tmp_path / "frames") + "/", codec="tiff", bit_depth=source.bit_depth,
                     fps=source.fps, width=source.width, height=source.height)
    assert isinstance(sink, ImageSequenceSink)
    _run(source, sink)
    names = _leftovers(tmp_path / "frames")
    assert names == ["frame_00000.tiff", "frame_00001.tiff", "frame_00002.tiff"]
    back = list(ImageSequenceSource(tmp_path / "frames").generate())
    assert back[0].image.dtype == np.uint16 and back[0].bit_depth == 16


def test_image_sink_refusals_and_error_cleanup(tmp_path):
    make_image_sequence(tmp_path, frames=1, name="%03d")  # 000.png exists
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        ImageSequenceSink(str(tmp_path / "%03d.png"))
    with pytest.raises(OutputError, match="does not exist"):
        ImageSequenceSink(str(tmp_path / "missing" / "%03d.png"))
    sink = ImageSequenceSink(str(tmp_path / "new_%03d.png"))
    sink.open()
    sink.process(_frame(0, 0))
    sink.process(_frame(1, 1))
    sink.outcome = "error"
    sink.close()
    assert _leftovers(tmp_path) == ["000.png"]


def test_single_image_target(tmp_path):
    sink = open_sink(tmp_path / "night.tiff", bit_depth=16, codec="tiff", fps=25, width=32, height=24)
    sink.open()
    sink.process(_frame(0, 0))
    with pytest.raises(OutputError, match="more than one frame"):
        sink.process(_frame(1, 1))
    sink.outcome = "complete"
    sink.close()
    back = list(ImageSequenceSource(tmp_path / "night.tiff").generate())
    assert len(back) == 1 and back[0].image.dtype == np.uint16


def test_open_sink_dispatch(tmp_path):
    assert isinstance(open_sink(tmp_path / "a.mkv", fps=25, width=32, height=24), VideoFileSink)
    assert isinstance(open_sink(str(tmp_path / "%05d.png")), ImageSequenceSink)
    assert isinstance(open_sink(tmp_path, codec="png"), ImageSequenceSink)
    with pytest.raises(OutputError, match="image sequences"):
        open_sink(tmp_path / "a.mp4", codec="tiff", fps=25, width=32, height=24)
