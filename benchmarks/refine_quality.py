"""The Wiener pass over the network's output (``model.refine``): PSNR of the network alone and
with the pass at several noise-variance scales and block strides, per degradation.

The network runs as ``--sigma auto`` runs it (``fastdvdnet-real``; Gaussian rows: the network
of a known sigma, ``fastdvdnet-aligned``, at the true sigma) with the pass off; each variant then refines the same network output, so the columns differ only by the pass.
Tune on training clips, report on the validation clips:

    python benchmarks/refine_quality.py --clips ../shared/data/train/videos --count 4 --crop 160 --frames 8
    python benchmarks/refine_quality.py --clips ../shared/data/val/videos --crop 96 --frames 5
    python benchmarks/refine_quality.py --kinds gaussian --sigmas 10,25,50

(about 4, 1 and 1 minutes on two cores.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from streamden.align.flow import make_flow_estimator
from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import auto_denoise, degrade_clip, read_clean, score
from streamden.models.refine import SCALE, STRIDE, WienerRefiner
from streamden.noise.degrade import degradation_grid


def refined(noisy: torch.Tensor, pilot: torch.Tensor, scale: float, stride: int, frames: int) -> torch.Tensor:
    """The pass over a whole clip's network output, frame by frame as a stream runs it."""
    refiner = WienerRefiner(make_flow_estimator("dis", "cpu"), scale=scale, stride=stride, frames=frames)
    return torch.stack([refiner.push(i, n, p) for i, (n, p) in enumerate(zip(noisy, pilot))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="../shared/data/val/videos")
    parser.add_argument("--count", type=int, default=0, help="first N clips (0 = all)")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--kinds", default="compressed,camera")
    parser.add_argument("--sigmas", default="10,15,25")
    parser.add_argument("--variants", default=f"2:{STRIDE}:3,{SCALE:g}:{STRIDE}:3,3:{STRIDE}:3,{SCALE:g}:2:3,{SCALE:g}:4:3,{SCALE:g}:{STRIDE}:5",
                        help="scale:stride:frames, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(2)
    engine = Engine(make_config(None, device="cpu", refine=False))                  # --sigma auto's network
    known = Engine(make_config(None, device="cpu", sigma=20, refine=False))         # a known sigma's
    grid = degradation_grid(args.kinds.split(","), [float(s) for s in args.sigmas.split(",")], crfs=(23, 28))
    variants = [tuple(float(x) for x in v.split(":")) for v in args.variants.split(",")]
    names = ["network"] + [f"s{s:g} st{int(st)} f{int(f)}" for s, st, f in variants]
    clips = sorted(p for p in Path(args.clips).iterdir() if p.is_dir() or p.suffix)
    clips = clips[:args.count] if args.count else clips
    rows: dict[str, list[list[float]]] = {}
    for path in clips:
        clean = read_clean(path, args.frames, args.crop)
        for spec in grid:
            noisy = degrade_clip(clean, path.name, spec)
            pilot = known.denoise_clip(noisy, spec.sigma) if spec.kind == "gaussian" else auto_denoise(engine, noisy)[0]
            values = [score(clean, pilot)[0]]
            values += [score(clean, refined(noisy, pilot, s, int(st), int(f)))[0] for s, st, f in variants]
            rows.setdefault(spec.label, []).append(values)
            print(path.name, spec.label, " ".join(f"{v:.2f}" for v in values), flush=True)
    print(f"\nmean PSNR (dB) over {len(clips)} clips, {args.frames} frames, {args.crop} px crops "
          f"(scale: noise variance multiplier, st: block stride, f: frames)\n")
    print("| degradation | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    every = []
    for label, values in rows.items():
        mean = np.mean(values, axis=0)
        every.append(mean)
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in mean) + " |")
    print("| all rows | " + " | ".join(f"{v:.2f}" for v in np.mean(every, axis=0)) + " |")


if __name__ == "__main__":
    main()
