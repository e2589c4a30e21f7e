"""The README's natural-footage picture: noisy | CBM3D | streamden | clean, one validation frame.

    python demos/natural_before_after.py ../shared/data/val/videos/da_demo1 demos/natural_before_after.png

Reads the first ``--frames`` frames of a held-out clip, adds seeded 8-bit Gaussian noise of
``--sigma``, denoises the clip with the default model as a file job runs it (the engine:
flow alignment, the default precision) and the reference frame with CBM3D (the optional
``eval`` extra; its panel is left out without it), and writes a 2x crop of the middle frame of
each, labelled with its PSNR against the clean frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import cbm3d_denoise
from streamden.metrics import psnr
from streamden.noise.synth import noisy_8bit
from streamden.train.data import read_clip

from before_after import save_side_by_side   # demos/ is this script's folder: the same layout as the sample picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="a folder of clean consecutive frames")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--sigma", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--crop", type=int, default=192, help="side of the square shown (before the 2x)")
    parser.add_argument("--model", default=None, help="registry name or .safetensors (default: the default model)")
    args = parser.parse_args()
    clean = read_clip(args.clip, max_frames=args.frames).float() / 255
    noisy = noisy_8bit(clean, args.sigma, torch.Generator().manual_seed(0))
    t = clean.shape[0] // 2
    outputs = {"noisy": noisy[t]}
    try:
        outputs["CBM3D"] = cbm3d_denoise(noisy[t:t + 1], args.sigma)[0]
    except ImportError:
        print("CBM3D left out: pip install 'streamden[eval]'")
    engine = Engine(make_config(None, model=args.model, sigma=args.sigma))   # a known sigma: as a job runs it
    outputs["streamden"] = engine.denoise_clip(noisy, args.sigma)[t]
    outputs["clean"] = clean[t]
    h, w = clean.shape[-2:]
    top, left = (h - args.crop) // 2, (w - args.crop) // 2
    panels = []
    for name, image in outputs.items():
        text = name if name == "clean" else f"{name}  {float(psnr(image.clamp(0, 1), clean[t])):.2f} dB"
        crop = (image[:, top:top + args.crop, left:left + args.crop].clamp(0, 1) * 255).round().byte()
        panels.append((text, crop.permute(1, 2, 0).numpy()))
    save_side_by_side(args.output, panels)
    print(f"wrote {args.output} ({args.clip.name}, frame {t}, sigma {args.sigma:g})")


if __name__ == "__main__":
    main()
