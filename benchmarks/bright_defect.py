"""The bright-area defect: which part of the model is at fault (issue 16).

On a static 5-frame window at sigma 10, for each model:

* flat grey windows at levels 0.5 ... 1.0: the mean error per channel (0-255) and the RMS error;
* flat strongly coloured windows (one channel near 0, another near 255, as an aquarium or a
  stage light; issue 19: ``ta_sample4`` lost 2-3 dB to a colour shift), the same figures;
* a large bright photo crop (Urban100 img_007, 480x480: white dress and sky): the PSNR gain
  over the noisy input with the model as shipped (BatchNorm running statistics), with
  BatchNorm normalising by the window's own statistics instead, in bf16, with the noisy input
  left unclipped, and with the crop inverted (1 - x);

so each suspect (BatchNorm statistics, bf16, clipping at 1.0, the data's lack of bright
content) is tested on its own.

    python benchmarks/bright_defect.py --models fastdvdnet-gaussian,fastdvdnet-aligned
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import cv2
import torch

from streamden.metrics import psnr
from streamden.models.registry import load_model
from streamden.noise.synth import noisy_8bit

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "train" / "images" / "Urban100_HR" / "img_007_SRF_4_HR.jpg"
LEVELS = (0.5, 0.8, 0.9, 0.95, 1.0)
COLOURS = ((13, 84, 226), (226, 84, 13), (13, 226, 84), (200, 30, 120), (250, 240, 20))   # 0-255 RGB


@torch.no_grad()
def run(model: torch.nn.Module, clean: torch.Tensor, sigma: float, *, batch_stats: bool = False,
        bf16: bool = False, clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy centre frame, output) for a static window of ``clean`` ``(3, H, W)``."""
    window = clean.unsqueeze(0).expand(5, -1, -1, -1)
    gen = torch.Generator().manual_seed(0)
    noisy = noisy_8bit(window, sigma, gen) if clip else window + torch.randn(window.shape, generator=gen) * sigma / 255
    model.train(batch_stats)   # train mode: BatchNorm normalises by this window's statistics
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with cast:
        out = model(noisy.unsqueeze(0), torch.full((1, 1, *clean.shape[-2:]), sigma / 255)).float()
    model.eval()
    return noisy[2].clamp(0, 1), out[0].clamp(0, 1)


def flat_row(model: torch.nn.Module, rgb: tuple[float, ...], sigma: float, label: str) -> str:
    """A table row: the mean error per channel and the RMS error (0-255) on a flat ``rgb`` window."""
    flat = torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1).expand(3, 96, 96) / 255
    _, out = run(model, flat, sigma)
    err = (out - flat)[:, 24:-24, 24:-24] * 255
    bias = ", ".join(f"{float(err[c].mean()):+.1f}" for c in range(3))
    return f"| {label} | {bias} | {float(err.pow(2).mean().sqrt()):.1f} |"


def photo() -> torch.Tensor:
    image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    crop = image[h // 2 - 240:h // 2 + 240, w // 2 - 240:w // 2 + 240]
    return torch.from_numpy(crop).permute(2, 0, 1).float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fastdvdnet-gaussian,fastdvdnet-aligned")
    parser.add_argument("--sigma", type=float, default=10.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    clean = photo()
    for name in args.models.split(","):
        model = load_model(name)
        print(f"## {name} (sigma {args.sigma:g})\n")
        print("| flat level | mean error R, G, B (0-255) | RMS error |\n|---|---|---|")
        for level in LEVELS:
            print(flat_row(model, (level * 255,) * 3, args.sigma, f"{level:g}"))
        print("\n| flat colour (0-255) | mean error R, G, B (0-255) | RMS error |\n|---|---|---|")
        for colour in COLOURS:
            print(flat_row(model, colour, args.sigma, str(colour)))
        print("\n| bright photo crop | gain over the noisy input (dB) |\n|---|---|")
        for label, kwargs, image in [("as shipped (BatchNorm running statistics)", {}, clean),
                                     ("BatchNorm on the window's own statistics", {"batch_stats": True}, clean),
                                     ("bf16 autocast", {"bf16": True}, clean),
                                     ("noisy input not clipped to [0, 1]", {"clip": False}, clean),
                                     ("crop inverted (1 - x)", {}, 1 - clean)]:
            noisy, out = run(model, image, args.sigma, **kwargs)
            print(f"| {label} | {float(psnr(out, image) - psnr(noisy, image)):+.2f} |")
        print()


if __name__ == "__main__":
    main()
