"""Cost of decoding in a child process: decode fps in-process against isolated.

Makes a synthetic H.264 clip (default 1280x720, 96 frames, keyframe every 24) and decodes it
to RGB frames with :class:`streamden.io.VideoFileSource` (in this process) and with
:class:`streamden.io.isolated.IsolatedVideoSource` (a child process; frames come back
through shared memory), best of ``--repeat`` runs each. Also reports the time to the first
frame, which includes starting the child (the fork server starts once per process, on the
first use, and is not counted here: it is warmed up first).

    python benchmarks/decode_isolation.py --size 1280x720 --frames 96 --repeat 3
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamden.io import VideoFileSource  # noqa: E402
from streamden.io.isolated import IsolatedVideoSource  # noqa: E402
from tests.media import make_video  # noqa: E402


def timed(make_source) -> tuple[float, float, int]:
    """(seconds to the first frame, seconds for all, frames)."""
    started = time.perf_counter()
    source = make_source()
    frames = source.generate()
    next(frames)
    first = time.perf_counter() - started
    count = 1 + sum(1 for _ in frames)
    return first, time.perf_counter() - started, count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_video(Path(tmp) / "clip.mp4", frames=args.frames, size=(width, height), gop=24, crf=23)
        timed(lambda: IsolatedVideoSource(clip))  # start the fork server
        rows = []
        for label, make in (("in-process", lambda: VideoFileSource(clip)),
                            ("isolated", lambda: IsolatedVideoSource(clip))):
            runs = [timed(make) for _ in range(args.repeat)]
            first = min(r[0] for r in runs)
            total = min(r[1] for r in runs)
            rows.append((label, runs[0][2] / total, first * 1000))
    print(f"decode {args.size}, {args.frames} frames of H.264 to RGB, best of {args.repeat}")
    print("| decoding | fps | first frame (ms) |")
    print("|---|---:|---:|")
    for label, fps, first in rows:
        print(f"| {label} | {fps:.1f} | {first:.0f} |")
    print(f"isolated / in-process: {rows[1][1] / rows[0][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
