"""Issue 7, case 3: SIGINT/SIGTERM finalise a playable output within 5 s; kill -9 leaves a
playable partial file; --resume continues from the last finished segment without redoing
it, and the result equals an uninterrupted run (compared frame by frame on decoded frames,
with the lossless FFV1 codec so that equality is exact)."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamden.api import denoise_video
from streamden.config import make_config
from streamden.errors import Cancelled
from streamden.io.atomic import partial_path
from streamden.io.isolated import CRASH_ENV
from streamden.segments import denoise_segmented, work_dir
from tests.media import make_dark_camera_clip, make_video, packet_stats, read_frames

REPO = Path(__file__).resolve().parents[2]
PROGRESS = re.compile(r"\|\s*(\d+)/\d+ |: (\d+)frame ")  # tqdm with and without a known total


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _playable_frames(path: Path) -> int:
    """Frames a player shows: a packet cut short by ``kill -9`` mid-write is skipped, as players do."""
    count = 0
    with av.open(str(path)) as container:
        packets = container.demux(video=0)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:   # the container itself is cut off here: a player stops
                break
            try:
                count += len(packet.decode())
            except av.error.InvalidDataError:
                continue
    return count


class Job:
    """`streamden denoise` in a subprocess, watching its progress bar on stderr."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "streamden", "denoise", *map(str, args)],
                                     cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        self.text: list[str] = []
        self.done = 0
        self.progress = threading.Condition()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:  # tqdm redraws with \r: read characters, not lines
        buffer = ""
        while ch := self.proc.stderr.read(1):
            buffer += ch
            if ch in "\r\n":
                self.text.append(buffer)
                found = PROGRESS.search(buffer)
                if found:
                    count = int(found.group(1) or found.group(2))
                    with self.progress:
                        self.done = max(self.done, count)
                        self.progress.notify_all()
                buffer = ""
        self.text.append(buffer)

    def wait_frames(self, count: int, timeout: float = 180) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.done >= count or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, "the job ended before it could be interrupted:\n" + self.log

    @property
    def log(self) -> str:
        return "".join(self.text)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_finalises_a_playable_output_within_five_seconds(tmp_path, random_weights, signum):
    src = make_video(tmp_path / "in.mp4", frames=16, size=(128, 128), audio="aac")
    out = tmp_path / "out.mp4"
    job = Job(src, "-o", out, "--model", random_weights, "--sigma", "20", "--encoder-preset", "ultrafast")
    job.wait_frames(3)
    sent = time.monotonic()
    job.proc.send_signal(signum)
    code = job.proc.wait(60)
    took = time.monotonic() - sent
    assert code == 130, job.log
    assert took < 5.0, f"took {took:.1f} s"
    assert 3 <= _frames(out) < 16
    assert packet_stats(out)["audio"]  # the audio up to the last frame is there too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_kill_9_leaves_a_playable_partial_file(tmp_path, random_weights, ext):
    # 5 fps: MP4 fragments and Matroska clusters close every second, i.e. every 5 frames.
    src = make_video(tmp_path / f"in{ext}", frames=16, size=(128, 128), fps=5)
    out = tmp_path / f"out{ext}"
    # The decoder child stops answering before frame 13 (test hook), so the job waits there for
    # the kill however fast or loaded the machine is: frames 0-10 can be denoised (10 needs 11
    # and 12). The kill comes once the partial file plays its first fragment (frames 0-4): what
    # a progress bar shows can lag behind, the file cannot.
    job = Job(src, "-o", out, "--model", random_weights, "--sigma", "20", "--encoder-preset", "ultrafast",
              "--codec", "h264", "--set", "input.stall_seconds=600", env={CRASH_ENV: "hang:13"})
    partial = partial_path(out)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and job.proc.poll() is None:
            with contextlib.suppress(av.error.FFmpegError):   # the header may not be written yet
                if partial.exists() and _playable_frames(partial) >= 5:
                    break
            time.sleep(0.2)
        assert job.proc.poll() is None, "the job ended before it could be killed:\n" + job.log
    finally:   # a failed wait must not leave the hung job behind
        job.proc.kill()
        job.proc.wait(30)
    assert not out.exists() and partial.exists()  # never renamed: the name says it is partial
    assert 5 <= _playable_frames(partial) <= 11


def _config(**kw):
    return make_config(None, codec="ffv1", segment_frames=4, **kw)


@pytest.mark.parametrize("sigma", ["20", "auto"])
def test_resume_continues_without_redoing_and_equals_an_uninterrupted_run(tmp_path, random_weights, sigma):
    src = make_video(tmp_path / "in.mp4", frames=16, size=(64, 48), gop=4, audio="aac")
    config = _config(model=str(random_weights), sigma=sigma)
    whole = tmp_path / "whole.mkv"  # the plain, unsegmented run
    denoise_video(src, whole, preset=None, model=str(random_weights), sigma=sigma, codec="ffv1",
                  handle_signals=False)
    out = tmp_path / "out.mkv"

    def stop_after_two(number: int) -> None:
        if number == 1:
            raise Cancelled("test interruption")
    with pytest.raises(Cancelled):
        denoise_segmented(src, out, config=config, handle_signals=False, after_segment=stop_after_two)
    folder = work_dir(out)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["segments"]) == ["0", "1"] and not out.exists()
    kept = {n: (folder / f"seg_0000{n}.mkv").stat().st_mtime_ns for n in (0, 1)}
    report = denoise_segmented(src, out, config=config, handle_signals=False,
                               after_segment=lambda n: kept.setdefault(n, None))
    assert (report.segments_skipped, report.segments_done) == (2, 2)
    assert not folder.exists()  # cleaned up after the join
    got, want = read_frames(out), read_frames(whole)
    assert len(got) == len(want) == 16
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    audio = [[(pts, size) for pts, _, size in packet_stats(path)["audio"]] for path in (out, whole)]
    assert audio[0] == audio[1]  # copied once, whole: same packets at the same times


def test_resume_keeps_a_clipped_channels_own_level_across_segments(tmp_path, random_weights):
    # The manifest carries the tracker's channel ratios and the tail frames' own levels, so a
    # resumed job on dark footage equals an uninterrupted one (without them: frames differ).
    from streamden.noise.estimate import channel_levels, estimate_level

    src = make_dark_camera_clip(tmp_path / "dark.mkv", frames=12)
    assert channel_levels(estimate_level(read_frames(src)[0])) is not None
    config = _config(model=str(random_weights), sigma="auto")
    whole = tmp_path / "whole.mkv"
    denoise_video(src, whole, preset=None, model=str(random_weights), sigma="auto", codec="ffv1", handle_signals=False)
    out = tmp_path / "out.mkv"

    def stop_after_one(number: int) -> None:
        if number == 0:
            raise Cancelled("test interruption")
    with pytest.raises(Cancelled):
        denoise_segmented(src, out, config=config, handle_signals=False, after_segment=stop_after_one)
    record = json.loads((work_dir(out) / "manifest.json").read_text())["segments"]["0"]
    assert len(record["tracker"]) == 4 and all(len(v) == 4 for v in record["tail_sigmas"])
    denoise_segmented(src, out, config=config, handle_signals=False)
    got, want = read_frames(out), read_frames(whole)
    assert len(got) == len(want) == 12
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_resume_writes_an_image_sequence_equal_to_a_plain_run_file_for_file(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=12, size=(64, 48), gop=4)
    plain, out = tmp_path / "plain", tmp_path / "out"
    plain.mkdir()
    out.mkdir()
    denoise_video(src, plain / "%05d.png", preset=None, model=str(random_weights), sigma="auto", handle_signals=False)
    config = _config(model=str(random_weights), sigma="auto")

    def stop(number: int) -> None:
        raise Cancelled("test interruption")
    with pytest.raises(Cancelled):
        denoise_segmented(src, out / "%05d.png", config=config, handle_signals=False, after_segment=stop)
    assert sorted(p.name for p in out.iterdir()) == [work_dir(out / "%05d.png").name]   # nothing in place yet
    report = denoise_segmented(src, out / "%05d.png", config=config, handle_signals=False)
    assert (report.segments_skipped, report.segments_done) == (1, 2)
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(files) == 12 and files == {p.name: p.read_bytes() for p in sorted(plain.iterdir())}


def test_damaged_segment_is_redone(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=12, size=(64, 48), gop=4)
    config = _config(model=str(random_weights), sigma="20")
    out = tmp_path / "out.mkv"

    def stop(number: int) -> None:
        if number == 1:
            raise Cancelled("test interruption")
    with pytest.raises(Cancelled):
        denoise_segmented(src, out, config=config, handle_signals=False, after_segment=stop)
    segment = work_dir(out) / "seg_00000.mkv"
    segment.write_bytes(segment.read_bytes()[:-10])  # checksum no longer matches
    report = denoise_segmented(src, out, config=config, handle_signals=False)
    assert (report.segments_skipped, report.segments_done) == (1, 2)
    assert _frames(out) == 12


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mkv", frames=16, size=(128, 96), gop=4, codec="libx264")
    common = ["--model", random_weights, "--sigma", "auto", "--codec", "ffv1", "--set", "job.segment_frames=4"]
    whole = tmp_path / "whole.mkv"
    done = subprocess.run([sys.executable, "-m", "streamden", "denoise", str(src), "-o", str(whole),
                           *map(str, common), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.mkv"
    job = Job(src, "-o", out, *common, "--resume")
    manifest = work_dir(out) / "manifest.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and job.proc.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["segments"]:
            break
        time.sleep(0.05)
    assert job.proc.poll() is None, job.log
    job.proc.kill()
    job.proc.wait(30)
    finished = json.loads(manifest.read_text())["segments"]
    assert 1 <= len(finished) < 4 and not out.exists()
    resumed = Job(src, "-o", out, *common, "--resume")
    assert resumed.proc.wait(300) == 0, resumed.log
    got, want = read_frames(out), read_frames(whole)
    assert len(got) == len(want) == 16
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "out.mkv", "whole.mkv"]


def test_ctrl_c_in_a_resumable_job_keeps_the_finished_segments(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=16, size=(128, 128), gop=4)
    out = tmp_path / "out.mkv"
    job = Job(src, "-o", out, "--model", random_weights, "--sigma", "20", "--codec", "ffv1",
              "--set", "job.segment_frames=4", "--resume")
    job.wait_frames(6)
    job.proc.send_signal(signal.SIGINT)
    assert job.proc.wait(60) == 130, job.log
    assert "--resume" in job.log and not out.exists()
    assert json.loads((work_dir(out) / "manifest.json").read_text())["segments"]
