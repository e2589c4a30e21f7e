"""Time per frame of flow, warp and occlusion mask at 540p and 1080p, CPU backend vs CUDA backend.

    python benchmarks/align_speed.py --json align_speed.json

CPU backend: OpenCV DIS medium for the flow, the torch references for warp and mask. CUDA
backend (when a GPU and CuPy are present): our LK kernels, warp and mask kernels. Both are
measured in the same run, so the ratios compare like with like. The LK torch reference on
the CPU is timed too (it is the parity reference, not a production path). One frame pair per
call: flow of one pair, warp of one RGB frame, mask from one forward/backward flow pair.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from streamden.align.flow import DISFlow
from streamden.align.known_flow import default_data_root, load_rgb, source_frames
from streamden.align.lk import LKFlow
from streamden.align.occlusion import consistency_mask, consistency_mask_torch
from streamden.align.warp import warp, warp_torch

SIZES = {"540p": (540, 960), "1080p": (1080, 1920)}
CPU_ROW = "CPU backend (DIS medium + torch warp/mask)"
CUDA_ROW = "CUDA backend (LK + warp/mask kernels)"


def frames(height: int, width: int, data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A real frame (or a smooth random one) and a copy moved by (3.3, -2.1) px: ``(1, 3, H, W)``."""
    paths = source_frames(data, "val", per_clip=1)
    if paths:
        image = cv2.resize(load_rgb(paths[0]), (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        image = cv2.GaussianBlur(np.random.default_rng(0).random((height, width, 3)), (0, 0), 2.0)
    ref = torch.from_numpy(image.transpose(2, 0, 1).copy()).float()[None].clamp(0, 1)
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0], flow[:, 1] = -3.3, 2.1
    return ref, warp_torch(ref, flow)


def timed(fn, repeats: int, cuda: bool) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(ref: torch.Tensor, moving: torch.Tensor, estimator, warp_fn, mask_fn,
            repeats: int, cuda: bool) -> dict:
    """Seconds per call of flow (one pair), warp (one RGB frame) and mask (one flow pair)."""
    luma_w = torch.tensor([0.299, 0.587, 0.114], device=ref.device).view(1, 3, 1, 1)
    lr, lm = (ref * luma_w).sum(1, keepdim=True), (moving * luma_w).sum(1, keepdim=True)
    fw, bw = estimator(lr, lm), estimator(lm, lr)
    return {"flow": timed(lambda: estimator(lr, lm), repeats, cuda),
            "warp": timed(lambda: warp_fn(moving, fw), repeats * 3, cuda),
            "mask": timed(lambda: mask_fn(fw, bw), repeats * 3, cuda)}


def main() -> None:
    """Time every backend at each size, print markdown (with CPU/CUDA ratios), write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-lk-torch", action="store_true", help="skip the (slow) LK torch reference on the CPU")
    parser.add_argument("--json", type=Path, default=Path("align_speed.json"))
    args = parser.parse_args()
    has_cuda = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
    results = {}
    for label, (h, w) in SIZES.items():
        ref, moving = frames(h, w, args.data)
        row = {CPU_ROW:
               measure(ref, moving, DISFlow("medium", 1.0), warp_torch, consistency_mask_torch,
                       args.repeats, False)}
        if not args.no_lk_torch:
            row["LK torch reference (CPU)"] = measure(ref, moving, LKFlow(1.0), warp_torch,
                                                      consistency_mask_torch, max(1, args.repeats // 2), False)
        if has_cuda:
            row[CUDA_ROW] = measure(
                ref.cuda(), moving.cuda(), LKFlow(1.0), warp, consistency_mask, args.repeats * 5, True)
        results[label] = row
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    print(f"Milliseconds per frame (median). CPU: {cpu}; GPU: {gpu}; torch {torch.__version__}\n")
    print("| size | backend | flow | warp | mask |\n|---|---|---|---|---|")
    for label, row in results.items():
        for backend, t in row.items():
            print(f"| {label} | {backend} | {t['flow'] * 1e3:.1f} | {t['warp'] * 1e3:.2f} | {t['mask'] * 1e3:.2f} |")
    if has_cuda:
        print("\n| size | CPU / CUDA flow | warp | mask |\n|---|---|---|---|")
        for label, row in results.items():
            cpu_t, gpu_t = row[CPU_ROW], row[CUDA_ROW]
            print(f"| {label} | " + " | ".join(f"{cpu_t[k] / gpu_t[k]:.1f}x" for k in ("flow", "warp", "mask")) + " |")
    else:
        print("\nCUDA backend: needs a GPU and CuPy (pip install \"streamden[cuda]\"); the ratio column "
              "is measured by benchmarks/gpu_align_check.sh on a GPU machine.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpu": cpu, "gpu": gpu, "torch": torch.__version__, "seconds": results}, indent=1))


if __name__ == "__main__":
    main()
