"""Issue 7, case 6: the input is never at risk and nothing temporary outlives a run.

Output equal to the input is refused however it is spelled (symlink, hard link, ``..``);
an existing output needs --overwrite (resumable jobs too); and on every exit path
(success, damaged input, a failing callback, a decoder crash, a refused model) the
folder holds exactly what it held plus, on success only, the output."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamden.api import denoise_video
from streamden.errors import InputError, ModelError, OutputError
from tests.media import make_video

FAST = dict(sigma=20, encoder_preset="ultrafast", handle_signals=False)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("resume", [False, True], ids=["plain", "resumable"])
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_output_equal_to_input_is_refused(tmp_path, random_weights, spelling, resume):
    src = make_video(tmp_path / "in.mp4", frames=4)
    before = src.read_bytes()
    (tmp_path / "sub").mkdir()
    out = {"same": src, "dotdot": tmp_path / "sub" / ".." / "in.mp4", "symlink": tmp_path / "link.mp4",
           "hardlink": tmp_path / "hard.mp4"}[spelling]
    if spelling == "symlink":
        out.symlink_to(src)
    elif spelling == "hardlink":
        os.link(src, out)
    listing = _names(tmp_path)
    with pytest.raises(OutputError, match="same file as the input"):
        denoise_video(src, out, model=str(random_weights), overwrite=True, resume=resume, **FAST)
    assert src.read_bytes() == before and _names(tmp_path) == listing


@pytest.mark.parametrize("resume", [False, True], ids=["plain", "resumable"])
def test_existing_output_needs_overwrite(tmp_path, random_weights, resume):
    src = make_video(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.mkv"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="--overwrite"):
        denoise_video(src, out, model=str(random_weights), resume=resume, codec="ffv1", **FAST)
    assert out.read_bytes() == b"precious" and _names(tmp_path) == ["in.mp4", "out.mkv"]


def _damaged(tmp_path: Path) -> Path:
    clean = make_video(tmp_path / "clean.mkv", frames=16, size=(96, 64), pattern="noise", gop=1)
    data = bytearray(clean.read_bytes())
    for part in (0.3, 0.5, 0.7):  # three damaged frames of 16: past the 10% limit
        at = int(len(data) * part)
        data[at:at + 300] = bytes(300)
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    clean.unlink()
    return bad


@pytest.mark.parametrize("resume", [False, True], ids=["plain", "resumable"])
@pytest.mark.parametrize("path", ["damaged input", "failing callback", "decoder crash", "refused model"])
def test_temporary_files_are_removed_on_every_error_path(tmp_path, random_weights, monkeypatch, path, resume):
    src = _damaged(tmp_path) if path == "damaged input" else make_video(tmp_path / "in.mp4", frames=12, gop=4)
    kw = dict(model=str(random_weights), resume=resume, segment_frames=4, **FAST)
    if path == "failing callback":
        def on_frame(frame):
            if frame.index == 5:
                raise RuntimeError("callback failed")
        kw["on_frame"] = on_frame
        expected = RuntimeError
    elif path == "decoder crash":
        monkeypatch.setenv("STREAMDEN_TEST_DECODER_CRASH_AT", "5")
        kw["overrides"] = ["input.on_crash=stop"]
        expected = InputError
    elif path == "refused model":
        kw["model"] = str(tmp_path / "missing.safetensors")
        expected = (ModelError, InputError, OutputError)
    else:
        expected = InputError
    listing = _names(tmp_path)
    with pytest.raises(expected):
        denoise_video(src, tmp_path / "out.mp4", **kw)
    left = set(_names(tmp_path)) - set(listing)
    if resume and path != "refused model":
        # A resumable job keeps its finished segments for the next --resume, nothing else.
        assert left <= {".out.mp4.segments"}
        work = tmp_path / ".out.mp4.segments"
        if work.exists():
            assert not [p for p in work.iterdir() if "partial" in p.name or p.name.startswith(".manifest")]
    else:
        assert left == set()


@pytest.mark.parametrize("resume", [False, True], ids=["plain", "resumable"])
def test_success_leaves_only_the_output(tmp_path, random_weights, resume):
    src = make_video(tmp_path / "in.mp4", frames=8, gop=4, audio="aac")
    denoise_video(src, tmp_path / "out.mp4", model=str(random_weights), resume=resume, segment_frames=4, **FAST)
    assert _names(tmp_path) == ["in.mp4", "out.mp4"]
