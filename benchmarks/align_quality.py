"""Aligned vs unaligned fusion: PSNR at one sigma on the validation clips, on all frames and
on the fastest-moving quarter of them.

Each method is a (model, align mode, occlusion handling) triple run on the same seeded 8-bit
noisy frames (streamden.evaluate's noise). Motion per frame is the mean optical-flow
magnitude (DIS medium on the clean frames) from the frame to its two neighbours.

    python benchmarks/align_quality.py --frames 16 --json runs/align_quality.json

prints a markdown table; ``--methods`` picks among the names in METHODS.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from streamden.align import DISFlow, WindowAligner, rgb_to_luma
from streamden.evaluate import clip_seed, read_clean
from streamden.metrics import psnr
from streamden.models.registry import load_model
from streamden.models.streaming import denoise_sequence
from streamden.noise.synth import noisy_8bit
from streamden.train.data import find_clips

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val" / "videos"
# name -> (model, align with flow?, occlusion handling: "centre" = masked pixels fall back to the centre frame,
#          WindowAligner.window: "window" = 5 frames onto the centre, "triplet" = 2 blocks per frame)
METHODS = {
    "unaligned": ("fastdvdnet-gaussian", False, None, "window"),
    "flow": ("fastdvdnet-gaussian", True, "centre", "window"),
    "flow-nomask": ("fastdvdnet-gaussian", True, "none", "window"),
    "unaligned-aligned-model": ("fastdvdnet-aligned", False, None, "window"),
    "flow-aligned-model": ("fastdvdnet-aligned", True, "centre", "window"),
    "flow-nomask-aligned-model": ("fastdvdnet-aligned", True, "none", "window"),
    "flow-triplet-aligned-model": ("fastdvdnet-aligned", True, "none", "triplet"),
}


def frame_motion(clean: torch.Tensor) -> torch.Tensor:
    """Mean flow magnitude (pixels) from each frame to its previous and next frames ``(T,)``."""
    luma = rgb_to_luma(clean)
    dis = DISFlow("medium", prefilter=0.0)
    step = dis(luma[:-1], luma[1:]).norm(dim=1).mean(dim=(1, 2))      # t -> t+1
    motion = torch.zeros(clean.shape[0])
    motion[:-1] += step
    motion[1:] += step
    motion[1:-1] /= 2
    return motion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA), help="folder of validation clips")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--crop", type=int, default=0, help="centre crop (0: whole frames)")
    parser.add_argument("--sigma", type=float, default=30.0)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    models: dict[str, torch.nn.Module] = {}
    results: dict[str, dict] = {}
    for clip in find_clips([args.data]):
        clean = read_clean(clip, args.frames, args.crop)
        noisy = noisy_8bit(clean, args.sigma, torch.Generator().manual_seed(clip_seed(0, clip.name, args.sigma)))
        motion = frame_motion(clean)
        fast = motion.argsort(descending=True)[: max(1, len(motion) // 4)]
        row = {"motion_px": round(float(motion.mean()), 2), "fast_motion_px": round(float(motion[fast].mean()), 2)}
        for name in methods:
            model_name, aligned, occlusion, window = METHODS[name]
            net = models.setdefault(model_name, load_model(model_name))
            aligner = WindowAligner(DISFlow("medium"), occlusion=occlusion, window=window) if aligned else None
            start = time.time()
            out = denoise_sequence(net, noisy, args.sigma, aligner)
            per_frame = torch.tensor([psnr(o, c) for o, c in zip(out, clean)])
            row[name] = {"psnr": round(float(per_frame.mean()), 3), "psnr_fast": round(float(per_frame[fast].mean()), 3),
                         "seconds": round(time.time() - start, 1)}
            print(f"{clip.name}: {name}: {row[name]}", flush=True)
        results[clip.name] = row
    print(f"\nPSNR (dB) at sigma {args.sigma:g}, {args.frames} frames per clip, fastest quarter in brackets\n")
    print("| method | " + " | ".join(results) + " | mean |")
    print("|---" * (len(results) + 2) + "|")
    for name in methods:
        cells = [f"{r[name]['psnr']:.2f} ({r[name]['psnr_fast']:.2f})" for r in results.values()]
        mean = sum(r[name]["psnr"] for r in results.values()) / len(results)
        mean_fast = sum(r[name]["psnr_fast"] for r in results.values()) / len(results)
        print(f"| {name} | " + " | ".join(cells) + f" | {mean:.2f} ({mean_fast:.2f}) |")
    print("| motion, px/frame (fastest quarter) | " + " | ".join(
        f"{r['motion_px']:.1f} ({r['fast_motion_px']:.1f})" for r in results.values()) + " | |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"sigma": args.sigma, "frames": args.frames, "results": results}, indent=2))


if __name__ == "__main__":
    main()
