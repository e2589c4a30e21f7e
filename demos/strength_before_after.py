"""The README's strength picture: one compressed noisy frame at --strength 0.5, 1 and 2, beside the input and the clean frame.

    python demos/strength_before_after.py ../shared/data/val/videos/da_demo1 demos/strength_before_after.png

Reads the first ``--frames`` frames of a held-out clip, adds camera-like degradation
(Gaussian noise of ``--sigma``, then x264 at ``--crf``: streamden.noise.degrade), and
denoises the clip as ``streamden denoise --sigma auto --strength K`` does (the default model,
the per-frame estimate smoothed over time, the noise map times K, the Wiener pass's noise
variance times K^2). Writes a 2x crop of the
middle frame of each, labelled with its strength and PSNR against the clean frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import auto_denoise, read_clean
from streamden.metrics import psnr
from streamden.noise.degrade import Degradation, degrade

from before_after import save_side_by_side   # demos/ is this script's folder: the same layout as the sample picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="a folder of clean consecutive frames")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--sigma", type=float, default=15.0)
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--crop", type=int, default=160, help="side of the square shown (before the 2x)")
    parser.add_argument("--strengths", default="0.5,1,2")
    args = parser.parse_args()

    clean = read_clean(args.clip, args.frames, args.crop)
    noisy = degrade(clean, Degradation("compressed", sigma=args.sigma, codec="x264", quality=args.crf), seed=0)
    middle = clean.shape[0] // 2
    to_image = lambda t: (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()   # noqa: E731
    panels = [(f"x264 CRF {args.crf}, {psnr(noisy[middle], clean[middle]):.2f} dB", to_image(noisy[middle]))]
    for k in (float(s) for s in args.strengths.split(",")):
        engine = Engine(make_config(None, strength=k))
        out, levels = auto_denoise(engine, noisy)
        panels.append((f"strength {k:g}, {psnr(out[middle], clean[middle]):.2f} dB", to_image(out[middle])))
        print(f"strength {k:g}: estimated level {levels[middle]:.1f}, PSNR {psnr(out[middle], clean[middle]):.2f} dB")
    panels.append(("clean", to_image(clean[middle])))
    save_side_by_side(args.output, panels)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
