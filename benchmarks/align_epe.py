"""End-point error of every flow estimator on the known-flow set, clean and with noise.

    python benchmarks/align_epe.py --count 16 --size 256 --json align_epe.json

Rows: OpenCV DIS (ultrafast, fast, medium), our LK as its torch reference on the CPU, and
LK with the CUDA kernels when a GPU and CuPy are present. Columns: mean EPE (px) over the
valid pixels of each motion kind and overall, and overall relative to DIS medium. All
estimators see the same pairs, luma of the (noisy) RGB frames, and the same prefilter.
Markdown goes to stdout, everything to the JSON file.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from streamden.align.color import rgb_to_luma_torch
from streamden.align.flow import DISFlow
from streamden.align.known_flow import KINDS, add_noise, default_data_root, endpoint_error, known_flow_pairs
from streamden.align.lk import LKFlow


def estimators(prefilter: float) -> dict:
    """Name -> (estimator, device): the DIS presets, LK on the CPU, and LK on CUDA when present."""
    ests = {f"DIS {p}": (DISFlow(p, prefilter), "cpu") for p in ("ultrafast", "fast", "medium")}
    ests["LK torch (CPU)"] = (LKFlow(prefilter), "cpu")
    if torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None:
        ests["LK CUDA"] = (LKFlow(prefilter), "cuda")
    return ests


def evaluate(pairs, ests: dict) -> dict:
    """Mean EPE per motion kind and overall (and per pair, and wall time) of every estimator."""
    results = {}
    for name, (est, device) in ests.items():
        per_kind: dict[str, list[float]] = {k: [] for k in KINDS}
        start = time.perf_counter()
        for pair in pairs:
            ref = rgb_to_luma_torch(pair.ref[None]).to(device)
            moving = rgb_to_luma_torch(pair.moving[None]).to(device)
            flow = est(ref, moving)[0].cpu()
            per_kind[pair.kind].append(endpoint_error(flow, pair.flow, pair.valid))
        every = [e for v in per_kind.values() for e in v]
        results[name] = {"per_kind": {k: float(np.mean(v)) for k, v in per_kind.items() if v},
                         "overall": float(np.mean(every)), "per_pair": every,
                         "seconds": time.perf_counter() - start}
    return results


def table(results: dict, title: str) -> str:
    """A markdown table of :func:`evaluate`'s results, with the ratio to DIS medium."""
    base = results["DIS medium"]["overall"]
    lines = [f"**{title}**", "", "| estimator | " + " | ".join(KINDS) + " | overall | / DIS medium |",
             "|---" * (len(KINDS) + 3) + "|"]
    for name, r in results.items():
        cells = [f"{r['per_kind'].get(k, float('nan')):.3f}" for k in KINDS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['overall']:.3f} | {r['overall'] / base:.2f} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, evaluate clean and noisy pairs, print markdown, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_root(), help="the shared/data folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--count", type=int, default=16, help="pairs (cycling through the motion kinds)")
    parser.add_argument("--size", type=int, default=256, help="side of the square crops")
    parser.add_argument("--sigma", type=float, default=30.0, help="noise level of the noisy run (0-255)")
    parser.add_argument("--prefilter", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=Path("align_epe.json"))
    args = parser.parse_args()
    pairs = known_flow_pairs(args.data, args.split, count=args.count, size=args.size)
    noisy = [add_noise(p, args.sigma, seed=i) for i, p in enumerate(pairs)]
    ests = estimators(args.prefilter)
    clean_r, noisy_r = evaluate(pairs, ests), evaluate(noisy, ests)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"Known-flow set: {len(pairs)} pairs of {args.size}x{args.size} from {args.split} "
          f"(kinds {', '.join(KINDS)}), prefilter {args.prefilter}; mean EPE in px over valid pixels.")
    print(f"Host: {platform.processor() or platform.machine()}, torch {torch.__version__}, GPU: {device}\n")
    print(table(clean_r, "clean") + "\n")
    print(table(noisy_r, f"noise sigma {args.sigma:g}") + "\n")
    if "LK CUDA" not in ests:
        print("LK CUDA: needs a GPU and CuPy (pip install \"streamden[cuda]\"); not measured here.")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "pairs": [p.name for p in pairs], "size": args.size, "split": args.split, "sigma": args.sigma,
        "prefilter": args.prefilter, "gpu": device, "torch": torch.__version__,
        "clean": clean_r, "noisy": noisy_r}, indent=1))


if __name__ == "__main__":
    main()
