"""Night-mode burst fusion quality: PSNR/SSIM per method on synthetic bursts of real photos.

Each photo of the shared corpus (a centre crop of ``--size`` pixels) becomes a hand-held burst
of ``--frames`` shots (streamden.burst.synth: random hand-shake homographies, one object
moving on its own, Poisson-Gaussian noise of ``--sigma`` at mid-grey plus read noise,
clipped). Every method sees the same noisy frames and the same reference:

* ``noisy``: the reference frame itself;
* ``single``: the shipped network on the reference alone (five copies), true noise map;
* ``single-guard``: the same followed by the residual guard of :mod:`streamden.burst.fuse`
  (the best single-frame method we have);
* ``mean``: the plain mean of the frames aligned by their homographies;
* ``merge``: the robust merge (homography + gated flow refinement, confidence weights);
* ``windows``: the network over 5-frame windows of aligned frames, outputs averaged;
* ``network``: the robust merge denoised by the network (the default of ``streamden burst``).

Methods get the true noise model, except ``network-auto``, which estimates it from the
reference as the command does. (All methods use the synthetic reference: the other frames'
clean versions were resampled by the shake, which softens them a little, so scoring against
one of them would flatter the result.) ``object`` is the PSNR inside every pixel the
moving object covered in any frame (ghosts show up there).

    python benchmarks/burst_quality.py --count 10 --size 512 --json runs/burst_quality.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from streamden.burst.core import fuse_burst
from streamden.models.registry import DEFAULT_MODEL
from streamden.burst.fuse import denoise_single, residual_guard
from streamden.noise.estimate import NoiseModel
from streamden.burst.synth import make_night_burst
from streamden.metrics import psnr, ssim
from streamden.config import make_config
from streamden.engine import Engine

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "images"
METHODS = ("noisy", "single", "single-guard", "mean", "merge", "windows", "network", "network-auto")


def photos(count: int, size: int) -> list[Path]:
    """``count`` photos at least ``size`` pixels on their short side, spread over the corpus."""
    usable = []
    for path in sorted(IMAGES.glob("*/*.jpg")):
        h, w = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_2).shape[:2]
        if min(h, w) * 2 >= size:
            usable.append(path)
    step = max(1, len(usable) // count)
    return usable[::step][:count]


def crop(path: Path, size: int) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[(h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size])


def run(method: str, frames: torch.Tensor, ref: int, noise: NoiseModel, model) -> tuple[torch.Tensor, int]:
    """The method's result and the frame it is aligned to."""
    if method == "noisy":
        return frames[ref], ref
    if method in ("single", "single-guard"):
        std = noise.std_map(frames[ref][None])[0]
        out = denoise_single(model, frames[ref], std)
        return (residual_guard(frames[ref], out, std) if method == "single-guard" else out), ref
    if method == "network-auto":
        return fuse_burst(frames, reference=ref, engine=model).image, ref
    return fuse_burst(frames, reference=ref, noise=noise, method=method, engine=model).image, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="number of photos")
    parser.add_argument("--size", type=int, default=512, help="centre crop side in pixels")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=30.0, help="noise std at mid-grey (0-255)")
    parser.add_argument("--read", type=float, default=6.0, help="read-noise std (0-255)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--json", help="write per-photo and mean figures here")
    parser.add_argument("--model", default=None, help=f"registry name or .safetensors (default: {DEFAULT_MODEL})")
    args = parser.parse_args()
    if not IMAGES.is_dir():
        raise SystemExit(f"shared data not found at {IMAGES}")
    torch.set_grad_enabled(False)
    model = Engine(make_config("night_burst", model=args.model or DEFAULT_MODEL))
    methods = args.methods.split(",")
    rows = []
    for path in photos(args.count, args.size):
        burst = make_night_burst(crop(path, args.size), args.frames, sigma=args.sigma, read=args.read, seed=0)
        frames = torch.from_numpy(burst.noisy).permute(0, 3, 1, 2).contiguous()
        obj = torch.from_numpy(burst.object_mask)
        noise = NoiseModel(burst.gain, burst.read)
        row = {"photo": f"{path.parent.name}/{path.name}"}
        for method in methods:
            start = time.perf_counter()
            out, ref = run(method, frames, burst.reference, noise, model)
            truth = torch.from_numpy(burst.clean[ref]).permute(2, 0, 1)
            row[method] = {"psnr": float(psnr(out, truth)), "ssim": float(ssim(out, truth)),
                           "object": float(psnr(out[:, obj][..., None], truth[:, obj][..., None])),
                           "seconds": time.perf_counter() - start}
        rows.append(row)
        print(row["photo"], "  ".join(f"{m} {row[m]['psnr']:.2f}" for m in methods), flush=True)
    print(f"\n{len(rows)} photos, {args.size}x{args.size} crops, {args.frames} frames, sigma {args.sigma:g} "
          f"at mid-grey (read noise {args.read:g}), Poisson-Gaussian, clipped\n")
    print("| method | PSNR (dB) | SSIM | PSNR on the moving object (dB) | seconds per burst |")
    print("|---|---|---|---|---|")
    means = {}
    for m in methods:
        means[m] = {k: float(np.mean([r[m][k] for r in rows])) for k in ("psnr", "ssim", "object", "seconds")}
        v = means[m]
        print(f"| {m} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['object']:.2f} | {v['seconds']:.1f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "mean": means}, indent=1))


if __name__ == "__main__":
    main()
