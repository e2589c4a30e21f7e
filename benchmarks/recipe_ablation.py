"""Training-recipe ablations at a fixed short budget: same init, seed and pixels seen per variant.

Each variant is the base training config plus ``--set``-style overrides; every variant trains
for ``--steps`` steps (same batch and patch unless the variant changes them: then the step count
is scaled so that the pixels seen stay equal), then is scored by :func:`streamden.evaluate.evaluate`
on the validation clips at each sigma, and on the bright-content checks (flat grey levels and a
large bright photo at sigma 10) that the shipped unaligned model once failed.

    python benchmarks/recipe_ablation.py --steps 200 --out runs/ablation \\
        --variant base= --variant invert=data.invert=0.5 --variant bnfrozen=bn_freeze_after=0

Results go to ``OUT/ablation.json`` and a Markdown table on stdout. Variants whose work dir
already holds final weights are not retrained (rerun safely after an interruption).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import torch

from streamden.config import load_config
from streamden.evaluate import evaluate
from streamden.metrics import psnr
from streamden.models.registry import load_model
from streamden.noise.synth import noisy_8bit
from streamden.train.config import TrainConfig
from streamden.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
BRIGHT_PHOTO = ROOT.parent / "shared" / "data" / "train" / "images" / "Urban100_HR" / "img_007_SRF_4_HR.jpg"
FLAT_LEVELS = (0.5, 0.8, 0.9, 0.95, 1.0)


@torch.no_grad()
def flat_field_error(model: torch.nn.Module, level: float, sigma: float = 10.0, size: int = 96) -> float:
    """RMS error (0-255) of the centre output on a static flat grey window at ``level``."""
    clean = torch.full((5, 3, size, size), level)
    noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(0))
    out = model(noisy.unsqueeze(0), torch.full((1, 1, size, size), sigma / 255))[0].clamp(0, 1)
    inner = (out - clean[2])[:, size // 4:-size // 4, size // 4:-size // 4]
    return float(inner.pow(2).mean().sqrt()) * 255


@torch.no_grad()
def bright_photo_gain(model: torch.nn.Module, sigma: float = 10.0) -> float:
    """PSNR gain (dB) over the noisy input on a static window of a large bright photo crop."""
    if not BRIGHT_PHOTO.is_file():
        return math.nan
    image = cv2.cvtColor(cv2.imread(str(BRIGHT_PHOTO)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    crop = image[h // 2 - 240:h // 2 + 240, w // 2 - 240:w // 2 + 240]
    clean = torch.from_numpy(crop).permute(2, 0, 1).float().div(255).unsqueeze(0).expand(5, -1, -1, -1)
    noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(0))
    out = model(noisy.unsqueeze(0), torch.full((1, 1, 480, 480), sigma / 255)).clamp(0, 1)[0]
    return float(psnr(out, clean[2]) - psnr(noisy[2], clean[2]))


def score(weights: str, sigmas: list[float], frames: int, crop: int) -> dict:
    """Validation PSNR per sigma (mean over clips) and the bright-content checks for one weights file."""
    result = evaluate([str(ROOT.parent / "shared" / "data" / "val" / "videos")], sigmas, model=weights,
                      frames=frames, crop=crop, baselines=("noisy",), cbm3d=False, precision="fp32",
                      log=lambda _: None)
    model = load_model(weights)
    return {
        "val_psnr": {f"{s:g}": round(result.average("model", s)[0], 3) for s in sigmas},
        "flat_rmse_sigma10": {f"{v:g}": round(flat_field_error(model, v), 2) for v in FLAT_LEVELS},
        "bright_gain_sigma10": round(bright_photo_gain(model), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "train" / "fastdvdnet_aligned.yaml"))
    p.add_argument("--set", action="append", default=[], help="override applied to every variant")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=K=V[,K=V...]",
                   help="a variant: a name and its overrides (empty for the base)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--sigmas", default="10,30,50")
    p.add_argument("--frames", type=int, default=8, help="validation frames per clip")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--score", nargs="*", default=[], metavar="NAME=WEIGHTS", help="also score these weights")
    args = p.parse_args(argv)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "ablation.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    for item in args.score:
        name, weights = item.split("=", 1)
        results[name] = {"overrides": [], "weights": weights, **score(weights, sigmas, args.frames, args.crop)}
        results_path.write_text(json.dumps(results, indent=1))
    base = load_config(TrainConfig, args.config, args.set)
    base_pixels = base.batch * base.data.patch ** 2
    for item in args.variant:
        name, _, spec = item.partition("=")
        overrides = [o for o in spec.split(",") if o]
        cfg = load_config(TrainConfig, args.config, args.set + overrides)
        steps = round(args.steps * base_pixels / (cfg.batch * cfg.data.patch ** 2))   # equal pixels seen
        cfg = load_config(TrainConfig, args.config, args.set + overrides + [
            f"steps={steps}", f"work_dir={out / name}", "checkpoint_every=50", f"val_every={steps}"])
        weights = out / name / "final.safetensors"
        if not weights.exists():
            train(cfg, resume=True, log=lambda m, n=name: print(f"[{n}] {m}", file=sys.stderr))
        results[name] = {"overrides": overrides, "steps": steps, "weights": str(weights),
                         **score(str(weights), sigmas, args.frames, args.crop)}
        results_path.write_text(json.dumps(results, indent=1))
        print(f"[{name}] {results[name]}", file=sys.stderr)

    head = "| variant | " + " | ".join(f"val sigma {s:g}" for s in sigmas) + " | mean | " + \
        " | ".join(f"flat {v:g}" for v in FLAT_LEVELS) + " | bright gain |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, r in results.items():
        vals = [r["val_psnr"][f"{s:g}"] for s in sigmas]
        flats = [r["flat_rmse_sigma10"][f"{v:g}"] for v in FLAT_LEVELS]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {sum(vals) / len(vals):.2f} | "
              + " | ".join(f"{v:.1f}" for v in flats) + f" | {r['bright_gain_sigma10']:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
