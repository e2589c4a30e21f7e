"""Sources: file decoding (pts, bit depth, colour, odd sizes, errors) and image sequences."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from streamden.errors import InputError
from streamden.io import ImageSequenceSource, VideoFileSource, open_source
from streamden.io.frame import ColorInfo
from tests.media import (make_image_sequence, make_truncated_copy, make_video, synthetic_frame)


def _decode(source):
    source.open()
    try:
        return list(source.generate())
    finally:
        source.close()


def test_file_source_frames_and_metadata(tmp_path):
    path = make_video(tmp_path / "clip.mp4", frames=9, fps=25)
    src = VideoFileSource(path)
    # Known before decoding, from probing.
    assert (src.width, src.height, src.fps, src.bit_depth, src.frame_count) == (64, 48, Fraction(25), 8, 9)
    assert src.path == str(path)
    assert isinstance(src.color, ColorInfo)
    frames = _decode(src)
    assert len(frames) == 9
    assert [f.index for f in frames] == list(range(9))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.time_base == src.time_base for f in frames)
    # pts straight from the container: 12800 ticks per second in MP4, 512 per frame.
    assert [f.pts for f in frames] == [i * 512 for i in range(9)]
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(9)])
    # Content survives the codec (crf 10 in the generator).
    ref = synthetic_frame(4, (64, 48)).astype(float)
    assert np.abs(frames[4].image.astype(float) - ref).mean() < 6
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_ten_bit_decodes_to_full_scale_uint16(tmp_path):
    path = make_video(tmp_path / "deep.mkv", frames=4, pix_fmt="yuv420p10le")
    src = VideoFileSource(path)
    assert src.bit_depth == 10
    frames = _decode(src)
    assert len(frames) == 4
    img = frames[2].image
    assert img.dtype == np.uint16 and img.shape == (48, 64, 3)
    assert all(f.bit_depth == 10 for f in frames)
    # Full-scale convention: the bright synthetic values come out above 10-bit range.
    assert img.max() > 4096
    ref = synthetic_frame(2, (64, 48), bit_depth=16).astype(float)
    assert np.abs(img.astype(float) - ref).mean() / 65535 < 0.03


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_odd_size(tmp_path, codec):
    path = make_video(tmp_path / "odd.mkv", frames=3, size=(63, 47), codec=codec)
    frames = _decode(VideoFileSource(path))
    assert [f.image.shape for f in frames] == [(47, 63, 3)] * 3


def test_colour_metadata(tmp_path):
    path = make_video(tmp_path / "c.mp4", frames=2, color=dict(range="pc", matrix=1, primaries=1, transfer=1))
    src = VideoFileSource(path)
    assert src.color == ColorInfo("pc", 1, 1, 1)
    frames = _decode(src)
    assert frames[0].color == ColorInfo("pc", 1, 1, 1)


def test_second_video_stream_absent(tmp_path):
    path = make_video(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(InputError, match="no video stream #1"):
        VideoFileSource(path, stream=1)


def test_truncated_file_names_file_and_position(tmp_path):
    full = make_video(tmp_path / "full.mkv", frames=16, size=(96, 64), pattern="noise")
    cut = make_truncated_copy(full, tmp_path / "cut.mkv", 0.6)
    src = VideoFileSource(cut)
    with pytest.raises(InputError) as err:
        _decode(src)
    message = str(err.value)
    assert str(cut) in message and "frame" in message and " s" in message


def test_corrupt_data_mid_stream(tmp_path):
    full = make_video(tmp_path / "full.mkv", frames=16, size=(96, 64), pattern="noise")
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(1)
    start = len(data) // 3
    data[start:start + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        _decode(VideoFileSource(bad))
    assert str(bad) in str(err.value)


@pytest.mark.parametrize("ext,bit_depth", [("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16)])
def test_image_sequence_source(tmp_path, ext, bit_depth):
    folder = make_image_sequence(tmp_path / "seq", frames=4, size=(21, 13), ext=ext, bit_depth=bit_depth)
    assert folder == tmp_path / "seq"
    src = ImageSequenceSource(folder / f"frame_%05d.{ext}", fps=Fraction(24))
    assert (src.width, src.height, src.bit_depth, src.frame_count) == (21, 13, bit_depth, 4)
    assert src.fps == Fraction(24) and src.time_base == Fraction(1, 24)
    frames = _decode(src)
    assert [f.pts for f in frames] == [0, 1, 2, 3]
    assert all(f.time_base == Fraction(1, 24) for f in frames)
    dtype = np.uint16 if bit_depth > 8 else np.uint8
    for i, f in enumerate(frames):
        assert f.image.dtype == dtype and f.bit_depth == bit_depth
        np.testing.assert_array_equal(f.image, synthetic_frame(i, (21, 13), bit_depth))
    assert [p.name for p in src.files] == [f"frame_{i:05d}.{ext}" for i in range(4)]


def test_image_sequence_folder_and_glob(tmp_path):
    make_image_sequence(tmp_path / "seq", frames=3, name="shot%d")  # shot0..shot2, natural order
    (tmp_path / "seq" / "notes.txt").write_text("ignored")
    by_folder = ImageSequenceSource(tmp_path / "seq")
    by_glob = ImageSequenceSource(str(tmp_path / "seq" / "shot*.png"))
    assert [p.name for p in by_folder.files] == ["shot0.png", "shot1.png", "shot2.png"]
    assert by_glob.files == by_folder.files


def test_image_sequence_size_mismatch(tmp_path):
    make_image_sequence(tmp_path / "seq", frames=2, size=(16, 16))
    make_image_sequence(tmp_path / "seq", frames=3, size=(8, 8), name="frame_%05d_x")
    src = ImageSequenceSource(tmp_path / "seq")
    with pytest.raises(InputError, match="differs"):
        _decode(src)


def test_open_source_dispatch(tmp_path):
    video = make_video(tmp_path / "clip.mp4", frames=2)
    make_image_sequence(tmp_path / "seq", frames=2)
    assert isinstance(open_source(video), VideoFileSource)
    assert isinstance(open_source(tmp_path / "seq", fps=30), ImageSequenceSource)
    assert open_source(tmp_path / "seq", fps=30).fps == Fraction(30)
    assert isinstance(open_source(str(tmp_path / "seq" / "frame_%05d.png")), ImageSequenceSource)
    assert isinstance(open_source(str(tmp_path / "seq" / "*.png")), ImageSequenceSource)
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
