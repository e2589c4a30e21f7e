"""What the default path's mean error per colour channel costs on the gate's degradations.

For every row (the gate's seeds, crop and frames, ``--sigma auto`` with the Wiener pass) and
clip: the mean error per channel (0-255) of the input and of our output, PSNR as it is, PSNR
with each output frame's mean error per channel removed (an oracle: it needs the clean frame),
and PSNR with the noisy input's mean per channel put back, measured where no channel of the
output lies within ``3 x level`` of black or white (a rule that needs no clean frame). The
rule would remove the network's brightening of white and x264 noise; it is wrong wherever the
noisy mean is itself biased: camera noise (its gamma darkens the mean) and clipped channels.

    python benchmarks/mean_error.py --degradations "compressed s10 x264 crf23;camera iso800"

(about 3 s a row on two cores.)
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import auto_denoise, degraded_clips, score
from streamden.noise.degrade import degradation_grid, parse_degradation

GATE = ";".join(d.label for d in degradation_grid(["compressed", "camera"], crfs=[23, 28]))


def mean_error(x: torch.Tensor, clean: torch.Tensor) -> str:
    """Mean error per channel over a clip, 0-255, as "R / G / B"."""
    return " / ".join(f"{float(v):+.2f}" for v in ((x - clean) * 255).mean(dim=(0, 2, 3)))


def noisy_mean_rule(noisy: torch.Tensor, out: torch.Tensor, levels: list, margin: float = 3.0) -> torch.Tensor:
    """Each output frame shifted per channel by the mean of ``noisy - out`` over the pixels
    whose every channel lies more than ``margin x level`` from black and white."""
    frames = []
    for frame, (n, o) in enumerate(zip(noisy, out)):
        edge = margin * float(levels[frame]) / 255.0
        safe = ((o > edge) & (o < 1.0 - edge)).all(dim=0)
        shift = (n - o)[:, safe].mean(dim=1) if int(safe.sum()) >= 16 else torch.zeros(3)
        frames.append((o + shift[:, None, None]).clamp(0, 1))
    return torch.stack(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="../shared/data/val/videos")
    parser.add_argument("--degradations", default=GATE, help="labels separated by ';' (default: the gate's)")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--model", default=None, help="weights (default: the default path's)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    engine = Engine(make_config(None, model=args.model, sigma="auto", device="cpu"))
    print("| degradation | clip | input mean error | output mean error | PSNR | mean removed (oracle) | "
          "noisy mean put back |")
    print("|---" * 7 + "|")
    specs = [parse_degradation(label.strip()) for label in args.degradations.split(";")]
    for spec, inputs in degraded_clips([args.clips], specs, args.frames, args.crop):
        scores = []
        for name, clean, noisy in inputs:
            out, levels = auto_denoise(engine, noisy)
            debiased = (out - (out - clean).mean(dim=(2, 3), keepdim=True)).clamp(0, 1)
            scores.append([score(clean, x)[0] for x in (out, debiased, noisy_mean_rule(noisy, out, levels))])
            print(f"| {spec.label} | {name} | {mean_error(noisy, clean)} | {mean_error(out, clean)} | "
                  + " | ".join(f"{v:.2f}" for v in scores[-1]) + " |", flush=True)
        print(f"| {spec.label} | mean | | | " + " | ".join(f"{v:.2f}" for v in np.mean(scores, axis=0)) + " |",
              flush=True)


if __name__ == "__main__":
    main()
