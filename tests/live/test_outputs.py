"""Live outputs fed directly (no pacer): one-file and segmented recording, HLS, bad destinations."""
import itertools
import os
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from streamden.errors import OutputError
from streamden.io.live import Backoff
from streamden.io.live_sink import FileRecorder, HLSOutput, SegmentRecorder, StreamOutput, open_output


def frames(count: int, size=(64, 48)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(count)]


def feed(output, count: int, fps: int = 10) -> None:
    output.start()
    for slot, image in enumerate(frames(count)):
        output.offer(image, slot)
        time.sleep(0.3 / fps)   # faster than real time, slower than the writer
    output.close()


def count_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_segments_rotate_with_wall_clock_names(tmp_path):
    rec = SegmentRecorder(str(tmp_path / "cam-%Y%m%d-%H%M%S.ts"), fps=10, size=(64, 48),
                          segment_seconds=0.5, keep=2, queue_size=64)
    feed(rec, 23)
    assert rec.written == 23 and rec.dropped == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.startswith("cam-2") and f.endswith(".ts") for f in files)
    assert sorted(p.name for p in rec.segments) == files    # the oldest three were rotated out
    assert [count_frames(p) for p in rec.segments] == [5, 3]  # 5 frames per segment, the last one short
    with av.open(str(rec.segments[0])) as c:
        first = next(c.demux(video=0))
        assert first.is_keyframe                            # each segment starts with a keyframe


def test_plain_ts_name_is_one_file_at_exactly_that_path(tmp_path):
    rec = open_output(str(tmp_path / "rec.ts"), fps=10, size=(64, 48), segment_seconds=0.5, queue_size=64)
    assert isinstance(rec, FileRecorder)
    assert os.listdir(tmp_path) == []                      # checking the destination writes nothing
    feed(rec, 23)                                          # longer than segment_seconds: no rotation
    assert rec.written == 23 and rec.dropped == 0 and rec.recorded == tmp_path / "rec.ts"
    assert os.listdir(tmp_path) == ["rec.ts"]              # the partial file was renamed, nothing else
    assert count_frames(tmp_path / "rec.ts") == 23


def test_strftime_pattern_and_folder_still_segment(tmp_path):
    assert isinstance(open_output(str(tmp_path / "cam-%Y%m%d-%H%M%S.ts"), fps=10, size=(64, 48)), SegmentRecorder)
    (tmp_path / "rec").mkdir()
    for target in (f"{tmp_path / 'rec'}{os.sep}", str(tmp_path / "rec")):
        rec = open_output(target, fps=10, size=(64, 48), segment_seconds=0.5, queue_size=64)
        assert isinstance(rec, SegmentRecorder)
    feed(rec, 12)
    assert len(rec.segments) == 3 and sorted(os.listdir(tmp_path / "rec")) == sorted(p.name for p in rec.segments)


def test_one_file_recording_never_overwrites(tmp_path):
    (tmp_path / "rec.ts").write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        open_output(str(tmp_path / "rec.ts"), fps=10, size=(64, 48))
    (tmp_path / ".cam.partial.ts").write_bytes(b"an interrupted recording")
    with pytest.raises(OutputError, match=r"\.cam\.partial\.ts is left from an interrupted recording"):
        open_output(str(tmp_path / "cam.ts"), fps=10, size=(64, 48))
    with pytest.raises(OutputError, match="does not exist"):
        open_output(str(tmp_path / "missing" / "rec.ts"), fps=10, size=(64, 48))
    assert (tmp_path / "rec.ts").read_bytes() == b"keep me"
    assert (tmp_path / ".cam.partial.ts").read_bytes() == b"an interrupted recording"


class FullDiskOnce(FileRecorder):
    """Fails one frame the way a full disk does."""

    def _before_frame(self, slot: int) -> None:
        if slot == 10 and not self.errors:
            raise OSError(28, "No space left on device")
        super()._before_frame(slot)


def test_one_file_recording_appends_after_a_write_error(tmp_path):
    rec = FullDiskOnce(str(tmp_path / "rec.ts"), fps=10, size=(64, 48), queue_size=64,
                       backoff=Backoff(0.001, 0.001))
    feed(rec, 20)
    assert rec.errors == 1 and rec.reopens == 1 and rec.written == 19
    assert os.listdir(tmp_path) == ["rec.ts"]
    with av.open(str(tmp_path / "rec.ts")) as container:
        pts = [f.pts for f in container.decode(video=0)]
    assert len(pts) == 19                                   # what came before the error is kept
    assert all(b > a for a, b in itertools.pairwise(pts))  # one timeline across the re-open


KILLED_WRITER = """
import sys, time
import numpy as np
from streamden.io.live_sink import open_output
out = open_output(sys.argv[1], fps=10, size=(64, 48), queue_size=64)
out.start()
for slot in range(12):
    out.offer(np.full((48, 64, 3), 20 * slot, np.uint8), slot)
while out.written < 12:
    time.sleep(0.01)
print("written", flush=True)
time.sleep(60)
"""


def test_kill_9_leaves_a_playable_partial_file_that_blocks_the_name(tmp_path):
    from tests.live.conftest import REPO

    target = tmp_path / "rec.ts"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert os.listdir(tmp_path) == [".rec.partial.ts"]     # no rec.ts: it was never finished
    assert count_frames(tmp_path / ".rec.partial.ts") == 12  # every frame encoded reached the file
    with pytest.raises(OutputError, match="interrupted"):
        open_output(str(target), fps=10, size=(64, 48))


def test_hls_playlist_and_segments(tmp_path):
    hls = HLSOutput(str(tmp_path / "live.m3u8"), fps=10, size=(64, 48), segment_seconds=1.0, queue_size=64)
    feed(hls, 35)
    playlist = (tmp_path / "live.m3u8").read_text()
    assert playlist.startswith("#EXTM3U") and "#EXT-X-TARGETDURATION" in playlist
    segments = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert len(segments) >= 3 and all((tmp_path / s).exists() for s in segments)


def test_bad_destinations_are_refused_up_front(tmp_path):
    with pytest.raises(OutputError, match="unknown output scheme"):
        open_output("ftp://host/x", fps=10, size=(64, 48))
    with pytest.raises(OutputError, match="does not exist"):
        open_output(str(tmp_path / "missing" / "live.m3u8"), fps=10, size=(64, 48))
    with pytest.raises(OutputError, match="live output is"):
        open_output(str(tmp_path / "out.mp4"), fps=10, size=(64, 48))
    assert isinstance(open_output(f"{tmp_path}{os.sep}", fps=10, size=(64, 48)), SegmentRecorder)
    assert open_output("rtmp://127.0.0.1/live/cam", fps=10, size=(64, 48)).format == "flv"


def test_unreachable_receiver_is_retried_not_fatal():
    out = StreamOutput("tcp://127.0.0.1:9", fps=10, size=(64, 48), write_timeout=0.5)  # nobody listens
    feed(out, 5)
    assert out.written == 0 and out.errors >= 1 and out.dropped == 5


def test_rtmp_push_reaches_a_loopback_server():
    import subprocess
    import sys

    from tests.live.conftest import REPO, free_port

    url = f"rtmp://127.0.0.1:{free_port()}/live/cam"
    server = subprocess.Popen([sys.executable, "-m", "tests.live.receiver", url], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.0)   # the server starts listening; an early push would be retried anyway
        out = StreamOutput(url, fps=10, size=(64, 48), queue_size=64)
        out.start()
        for slot, image in enumerate(frames(40)):
            out.offer(image, slot)
            time.sleep(0.1)
        out.close()
        stdout, _ = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert out.format == "flv" and out.written >= 30
    assert int(stdout.split()[-1]) >= 30
