"""Night-mode burst speed: wall time per stage for N frames of a given size on this machine.

    python benchmarks/burst_speed.py --size 4000x3000 --frames 8

A corpus photo is resized to the size asked, shaken into a burst (streamden.burst.synth)
and given Poisson-Gaussian noise; ``fuse_burst`` then runs once (sharpest reference,
estimated noise, the default ``network`` method) and its per-stage timings, the total and
the peak resident memory are printed. Decoding and writing files are not included.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import cv2
import torch

from streamden.burst.core import fuse_burst
from streamden.burst.synth import make_night_burst
from streamden.config import make_config
from streamden.engine import Engine

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT (default 12 MP)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--photo", default="mate_nature/Elephants_3840x2160.jpg")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    image = cv2.resize(cv2.cvtColor(cv2.imread(str(IMAGES / args.photo)), cv2.COLOR_BGR2RGB), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    burst = make_night_burst(image, args.frames, sigma=30.0, seed=0)
    frames = torch.from_numpy(burst.noisy).permute(0, 3, 1, 2)
    del burst
    model = Engine(make_config("night_burst", device=args.device))
    start = time.perf_counter()
    result = fuse_burst(frames, engine=model)
    total = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"{args.frames} frames of {width}x{height} ({width * height / 1e6:.1f} MP) on {args.device}, "
          f"{torch.get_num_threads()} torch threads")
    for stage, seconds in result.timings.items():
        print(f"  {stage:16s} {seconds:7.1f} s")
    print(f"  {'total':16s} {total:7.1f} s   peak RSS {peak_gib:.1f} GiB (frames included)")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": [width, height], "frames": args.frames,
                                               "timings": result.timings, "total": total,
                                               "peak_rss_gib": peak_gib}, indent=1))


if __name__ == "__main__":
    main()
