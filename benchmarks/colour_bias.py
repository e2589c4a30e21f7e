"""Colour bias of realistic networks on natural footage: mean error per channel (0-255) of the
network alone, given the effective noise level, on the centre frame of a 5-frame window.

A network that adds a bias where the input carries none learned it from its training data
(stages 1-11 of fastdvdnet-real brightened compressed footage after training on PyAV's default,
darkening YUV conversion; benchmarks/training/fastdvdnet_real12/RESULTS.md):

    python benchmarks/colour_bias.py benchmarks/training/fastdvdnet_real8/fastdvdnet_real8.safetensors \\
        benchmarks/training/fastdvdnet_real12/fastdvdnet_real12.safetensors

(about 30 s on two cores.)
"""
from __future__ import annotations

import argparse

import torch

from streamden.evaluate import read_clean
from streamden.models.registry import load_model
from streamden.noise.degrade import degrade, effective_level, parse_degradation
from streamden.train.data import find_clips


def bias(x: torch.Tensor, clean: torch.Tensor, border: int) -> str:
    """Mean error per channel in levels, away from the borders, as "R / G / B"."""
    mean = ((x - clean) * 255)[:, border:-border, border:-border].mean(dim=(1, 2))
    return " / ".join(f"{float(v):+.1f}" for v in mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="registry names or .safetensors paths")
    parser.add_argument("--clips", default="../shared/data/val/videos")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--degradations", default="compressed s10 x264 crf23,compressed s15 x264 crf28,gaussian s10")
    args = parser.parse_args()
    torch.set_num_threads(2)
    models = [load_model(w) for w in args.weights]
    print("| clip, noise | noisy input | " + " | ".join(args.weights) + " |")
    print("|---" * (len(models) + 2) + "|")
    for path in find_clips([args.clips]):
        clean = read_clean(path, 5, args.crop)
        for label in args.degradations.split(","):
            noisy = degrade(clean, parse_degradation(label), seed=3)
            level = torch.full((1, 1, args.crop, args.crop), effective_level(noisy, clean) / 255)
            row = [bias(noisy[2], clean[2], 16)]
            with torch.no_grad():
                row += [bias(m(noisy.unsqueeze(0), level).clamp(0, 1)[0], clean[2], 16) for m in models]
            print(f"| {path.name}, {label} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
