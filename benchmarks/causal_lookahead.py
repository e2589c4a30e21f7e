"""PSNR cost of the live (causal) look-ahead: 0 or 1 future frames against the full 2.

Each validation clip gets seeded 8-bit Gaussian noise (streamden.evaluate's noise), then the
streaming engine denoises it with look-ahead 2 (offline), 1 (the surveillance preset) and 0
(no waiting at all); the missing future frames of the causal modes are past frames
reflected about the newest one (streamden.models.streaming). PSNR is averaged over all
frames and over the interior frames (those whose full window exists at look-ahead 2).

    python benchmarks/causal_lookahead.py --frames 16 --crop 256 --sigma 30 --json runs/causal.json

prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from streamden.evaluate import clip_seed, read_clean
from streamden.metrics import psnr_per_image
from streamden.models.registry import load_model
from streamden.models.streaming import StreamingDenoiser
from streamden.noise.synth import noisy_8bit
from streamden.train.data import find_clips

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val" / "videos"


def denoise(model: torch.nn.Module, noisy: torch.Tensor, sigma: float, lookahead: int) -> torch.Tensor:
    """All frames of ``noisy`` ``(T, 3, H, W)`` through the streaming engine at ``lookahead``."""
    engine = StreamingDenoiser(model, lookahead=lookahead)
    out = [o for frame in noisy for _, o in engine.push(frame, sigma)]
    out += [o for _, o in engine.finish()]
    return torch.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--crop", type=int, default=256, help="centre crop (0 = whole frame)")
    p.add_argument("--sigma", type=float, default=30.0)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model = load_model()
    rows = []
    for clip in find_clips([args.data]):
        clean = read_clean(clip, args.frames, args.crop)
        noisy = noisy_8bit(clean, args.sigma, torch.Generator().manual_seed(clip_seed(0, clip.name, args.sigma)))
        row = {"clip": clip.name, "frames": len(clean), "size": f"{clean.shape[-1]}x{clean.shape[-2]}"}
        for lookahead in (2, 1, 0):
            start = time.perf_counter()
            scores = psnr_per_image(denoise(model, noisy, args.sigma, lookahead), clean)
            row[f"la{lookahead}_all"] = float(scores.mean())
            row[f"la{lookahead}_interior"] = float(scores[2:-2].mean())
            row[f"la{lookahead}_s_per_frame"] = (time.perf_counter() - start) / len(clean)
        rows.append(row)
    print(f"sigma {args.sigma:g}, first {args.frames} frames, crop {args.crop or 'none'}\n")
    print("| clip | size | frames | look-ahead 2 (dB) | 1 (dB) | 0 (dB) | 1 vs 2 | 0 vs 2 | s/frame 2 / 1 / 0 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for part in ("all", "interior"):
        for r in rows:
            a, b, c = (r[f"la{k}_{part}"] for k in (2, 1, 0))
            print(f"| {r['clip']} ({part}) | {r['size']} | {r['frames']} | {a:.2f} | {b:.2f} | {c:.2f} | "
                  f"{b - a:+.2f} | {c - a:+.2f} | {r['la2_s_per_frame']:.2f} / {r['la1_s_per_frame']:.2f} / "
                  f"{r['la0_s_per_frame']:.2f} |")
        mean = {k: sum(r[f"la{k}_{part}"] for r in rows) / len(rows) for k in (2, 1, 0)}
        print(f"| mean ({part}) | | | {mean[2]:.2f} | {mean[1]:.2f} | {mean[0]:.2f} | {mean[1] - mean[2]:+.2f} | "
              f"{mean[0] - mean[2]:+.2f} | |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
