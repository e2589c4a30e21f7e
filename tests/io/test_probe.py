"""probe() and format_info(): what a file holds, and one clear InputError for bad input."""
from __future__ import annotations

from fractions import Fraction

import pytest

from streamden.errors import InputError
from streamden.io import format_info, probe
from tests.media import (make_audio_only, make_image_sequence, make_text_file, make_video,
                         make_zero_byte_file)


def test_probe_video_with_audio_and_subtitles(tmp_path):
    path = make_video(tmp_path / "clip.mkv", frames=10, fps=25, audio="opus", subtitles=True)
    info = probe(path)
    assert info.path == str(path)
    assert "matroska" in info.format
    assert info.duration == pytest.approx(0.4, abs=0.05)
    assert [s.type for s in info.streams] == ["video", "audio", "subtitle"]
    v = info.video
    assert (v.index, v.codec, v.width, v.height, v.pix_fmt, v.bit_depth) == (0, "h264", 64, 48, "yuv420p", 8)
    assert v.fps == Fraction(25)
    assert isinstance(v.time_base, Fraction)
    a = info.audio_streams[0]
    assert (a.codec, a.sample_rate, a.channels) == ("opus", 48000, 2)
    assert info.subtitle_streams[0].codec == "subrip"


def test_probe_mp4_frame_count_and_ten_bit(tmp_path):
    info = probe(make_video(tmp_path / "a.mp4", frames=7))
    assert info.video.frame_count == 7
    deep = probe(make_video(tmp_path / "deep.mkv", frames=3, pix_fmt="yuv420p10le"))
    assert deep.video.bit_depth == 10 and deep.video.pix_fmt == "yuv420p10le"


def test_format_info_lists_every_stream(tmp_path):
    path = make_video(tmp_path / "clip.mp4", frames=5, fps=Fraction(30000, 1001), audio="aac")
    text = format_info(probe(path))
    assert str(path) in text
    assert "64x48" in text and "yuv420p" in text and "8-bit" in text
    assert "29.970 fps (30000/1001)" in text
    assert "#1 audio: aac 48000 Hz 2 ch" in text


def test_probe_image_sequence(tmp_path):
    make_image_sequence(tmp_path / "seq", frames=3, size=(20, 10), bit_depth=16)
    info = probe(tmp_path / "seq")
    assert info.format == "image_sequence"
    assert (info.video.width, info.video.height, info.video.bit_depth, info.video.frame_count) == (20, 10, 16, 3)


def _assert_input_error(path, *words, **kwargs):
    with pytest.raises(InputError) as err:
        probe(path, **kwargs)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    _assert_input_error(tmp_path / "nope.mp4", "no such file")


def test_zero_byte_file(tmp_path):
    _assert_input_error(make_zero_byte_file(tmp_path / "empty.mp4"), "empty")


def test_text_named_mp4(tmp_path):
    _assert_input_error(make_text_file(tmp_path / "fake.mp4"), "not a media file")


def test_audio_only(tmp_path):
    path = make_audio_only(tmp_path / "tone.m4a")
    _assert_input_error(path, "no video stream", "aac")
    assert probe(path, require_video=False).audio_streams[0].codec == "aac"


def test_absent_stream(tmp_path):
    path = make_video(tmp_path / "clip.mp4", frames=2)
    _assert_input_error(path, "no video stream #1", stream=1)


def test_empty_folder(tmp_path):
    (tmp_path / "nothing").mkdir()
    _assert_input_error(tmp_path / "nothing", "no images")
