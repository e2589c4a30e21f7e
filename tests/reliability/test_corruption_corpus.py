"""Issue 7, case 1: over 200 seeded corruptions (byte flips and bursts) of H.264, HEVC and
MPEG-4 part 2 clips in MP4, Matroska and MPEG-TS. Every case must end, within the decoder's
stall limit, in either one clean InputError naming the file or a playable output whose
frame count is the count the decoder delivered. Run with ``-s`` to see the tallies."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import av
import pytest

from streamden.errors import InputError
from streamden.io import VideoFileSink
from streamden.io.isolated import IsolatedVideoSource
from tests.media import corrupt_copy, has_codec, make_video

CODECS = [c for c in ("libx264", "libx265", "mpeg4") if has_codec(c)]
CONTAINERS = (".mp4", ".mkv", ".ts")
SEEDS = range(23)  # 3 codecs x 3 containers x 23 seeds = 207 cases
TALLY: Counter = Counter()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """One tiny clean clip per codec and container, made once for the module."""
    folder = tmp_path_factory.mktemp("corpus")
    return {(codec, ext): make_video(folder / f"{codec}{ext}", frames=10, size=(64, 64), codec=codec, gop=5)
            for codec in CODECS for ext in CONTAINERS}


def run_case(path: Path, out: Path) -> tuple[str, int]:
    """Decode (isolated, the job's default damage limit) and encode what comes out.

    Returns ("refused", 0) for a clean InputError, else ("played", frames).
    """
    try:
        source = IsolatedVideoSource(path, max_corrupt_fraction=0.1, stall_seconds=10)
        sink = VideoFileSink(out, fps=source.fps, width=source.width, height=source.height, codec="ffv1",
                             overwrite=True)
        with sink:
            for frame in source.generate():
                sink.process(frame)
    except InputError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message.split("raised in")[0].strip(), message
        assert not out.exists()
        return "refused", 0
    if source.problems.counts.get("crashed"):
        TALLY["decoder crashes survived"] += 1
    with av.open(str(out)) as container:
        played = sum(1 for _ in container.decode(video=0))
    assert played == sink.frames_written >= 1
    return "played", source.problems.frames


@pytest.mark.parametrize("ext", CONTAINERS)
@pytest.mark.parametrize("codec", CODECS)
def test_seeded_corruptions_end_cleanly(tmp_path, clips, codec, ext):
    clean = clips[(codec, ext)]
    for seed in SEEDS:
        damaged = corrupt_copy(clean, tmp_path / f"bad-{seed}{ext}", seed=seed, flips=4, bursts=1,
                               burst_bytes=32)
        outcome, frames = run_case(damaged, tmp_path / f"out-{seed}.mkv")
        TALLY["cases"] += 1
        TALLY[outcome] += 1
        TALLY["frames delivered"] += frames
        damaged.unlink()


def test_tally_covers_two_hundred_cases():
    if TALLY["cases"] == 0:
        pytest.skip("run together with test_seeded_corruptions_end_cleanly")
    print("\ncorruption corpus:", dict(TALLY))
    assert TALLY["cases"] >= 200 or len(CODECS) < 3
    assert TALLY["played"] + TALLY["refused"] == TALLY["cases"]
