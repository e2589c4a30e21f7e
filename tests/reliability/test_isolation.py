"""Issue 7, case 2: a decoder that dies from a signal (a real SIGSEGV in the child, through
the test hook) cannot take the job down: the parent names the file and the frame, then
finishes with the frames it got, or stops cleanly when asked to."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from streamden.api import denoise_video
from streamden.errors import InputError
from streamden.io import VideoFileSource
from streamden.io.isolated import CRASH_ENV, IsolatedVideoSource
from tests.media import make_video

REPO = Path(__file__).resolve().parents[2]


def test_isolated_frames_equal_in_process_frames(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=8, size=(63, 47), codec="ffv1", pix_fmt="yuv444p10le")
    plain = list(VideoFileSource(src).generate())
    isolated = IsolatedVideoSource(src)
    got = list(isolated.generate())
    assert len(got) == len(plain) == 8
    for a, b in zip(got, plain):
        assert (a.pts, a.time_base, a.index, a.color, a.bit_depth) == (b.pts, b.time_base, b.index, b.color, b.bit_depth)
        assert a.image.dtype == b.image.dtype == np.uint16 and np.array_equal(a.image, b.image)
    assert isolated.problems.count == 0 and isolated.crashed is None


def test_child_segfault_is_reported_and_the_frames_so_far_are_kept(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=12)
    source = IsolatedVideoSource(src, crash_at=5)
    frames = list(source.generate())
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert source.crashed == f"{src}: the video decoder crashed (SIGSEGV) at frame 5 (after 0.160 s)"
    assert source.problems.counts == {"crashed": 1}


def test_child_segfault_can_stop_the_job_cleanly(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=12)
    with pytest.raises(InputError, match=r"crashed \(SIGSEGV\) at frame 5"):
        list(IsolatedVideoSource(src, crash_at=5, on_crash="stop").generate())
    with pytest.raises(InputError, match="0 frames were decoded"):  # nothing at all: always an error
        list(IsolatedVideoSource(src, crash_at=0).generate())


def test_cli_survives_a_decoder_crash_with_a_playable_output(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=12, audio="aac")
    out = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO), **{CRASH_ENV: "7"})
    done = subprocess.run([sys.executable, "-m", "streamden", "denoise", str(src), "-o", str(out), "--model",
                           str(random_weights), "--sigma", "20", "--encoder-preset", "ultrafast", "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "in.mp4: the video decoder crashed (SIGSEGV) at frame 7" in done.stderr
    assert "1 decoder crash" in done.stderr
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_cli_stops_cleanly_on_a_decoder_crash_when_asked(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=12)
    out = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO), **{CRASH_ENV: "7"})
    done = subprocess.run([sys.executable, "-m", "streamden", "denoise", str(src), "-o", str(out), "--model",
                           str(random_weights), "--sigma", "20", "--set", "input.on_crash=stop", "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "crashed (SIGSEGV) at frame 7" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_in_process_decoding_is_available(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=6)
    report = denoise_video(src, tmp_path / "out.mp4", model=str(random_weights), sigma=20, isolate=False,
                           encoder_preset="ultrafast", handle_signals=False)
    assert report.nodes[0].items_out == 6 and report.input_problems.frames == 6


@pytest.mark.parametrize("ending", ["complete", "closed early", "crash"])
def test_shared_memory_and_child_are_released(tmp_path, ending):
    src = make_video(tmp_path / "in.mp4", frames=8)
    source = IsolatedVideoSource(src, crash_at=4 if ending == "crash" else None)
    frames = source.generate()
    next(frames)
    name, process = source._shm.name, source._process
    if ending == "closed early":
        frames.close()  # what the graph does on Ctrl-C
    else:
        list(frames)
    assert source._shm is None and not process.is_alive()
    assert not os.path.exists(f"/dev/shm/{name}")


def test_a_hung_decoder_is_stopped_after_the_stall_limit(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=12)
    source = IsolatedVideoSource(src, hang_at=4, stall_seconds=1.0)
    frames = list(source.generate())
    assert len(frames) == 4
    assert source.crashed == f"{src}: the video decoder stalled for 1 s and was stopped at frame 4 (after 0.120 s)"
    assert source.problems.counts == {"crashed": 1}
