"""How far a better Wiener stage can take our output: BM3D's own Wiener stage (block matching
within the frame, 3-D transform, empirical Wiener shrinkage) run on the noisy frames with the
default path's output as its pilot, next to our flow-aligned pass and CBM3D at its best.

The question it answers (issue 19, the gate's light x264 rows): is the gap to CBM3D + 1 dB
something a stronger transform-domain pass over the network's output could close? BM3D
assumes white noise and does best on codec noise well above its effective level, so its Wiener
stage runs at ``sigma = k * L`` over a grid (``L`` the effective level ``std(noisy - clean)``),
as the gate runs CBM3D. Needs the eval extra (``bm3d``); it calls BM3D's per-channel Wiener stage through
``bm3d._bm4d`` (bm3d 4.0.3, bm4d 4.2.5), because ``bm3d.bm3d`` hands one pilot to every channel.

    python benchmarks/wiener_ceiling.py --degradations "compressed s10 x264 crf23;compressed s10 x264 crf28"

(about 30 s a degradation on two cores at the gate's 96 px, 5 frames.)
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import CBM3D_GRID, auto_denoise, cbm3d_denoise, degraded_clips, score
from streamden.noise.degrade import effective_level, parse_degradation


def bm3d_wiener(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D's Wiener stage frame by frame in its opponent colour space (block matching on the
    pilot's first channel, as CBM3D), ``pilot`` as the estimate; ``(T, 3, H, W)`` in [0, 1]."""
    import bm3d

    profile = bm3d._convert_profile(bm3d._select_profile("np"))
    out = []
    for frame, guide in zip(noisy, pilot):
        z = frame.permute(1, 2, 0).double().numpy()
        z_opp, o_max, o_min, scale, forward = bm3d.rgb_to(z, "opp")
        g = guide.permute(1, 2, 0).double().numpy().reshape(-1, 3) @ forward.T
        g_opp = ((g - o_min) / (o_max - o_min)).reshape(z.shape)
        sigmas = sigma / 255.0 * np.sqrt(scale)
        channels, matches = [], (True, True)
        for c in range(3):
            result = bm3d._bm4d.bm4d(np.ascontiguousarray(z_opp[:, :, c:c + 1]), sigmas[c], profile,
                                     np.ascontiguousarray(g_opp[:, :, c:c + 1]), matches)
            if c == 0:
                result, matches = result
            channels.append(result[:, :, 0])
        y, *_ = bm3d.rgb_to(np.stack(channels, -1), "opp", True, o_max, o_min)
        out.append(torch.from_numpy(np.asarray(y, dtype=np.float32)).permute(2, 0, 1))
    return torch.stack(out).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="../shared/data/val/videos")
    parser.add_argument("--degradations", default="compressed s10 x264 crf23;compressed s10 x264 crf28",
                        help="labels separated by ';'")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--k", default="1,2,3", help="BM3D Wiener stage at sigma = k * L")
    parser.add_argument("--model", default=None, help="weights (default: the default path's)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ks = [float(k) for k in args.k.split(",")]
    with_pass = Engine(make_config(None, model=args.model, sigma="auto", device="cpu"))
    alone = Engine(make_config(None, model=args.model, sigma="auto", device="cpu", refine=False))
    columns = ["noisy", "network alone", "with the pass", *[f"BM3D Wiener on ours, k {k:g}" for k in ks],
               "CBM3D best"]
    print("| degradation | clip | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    specs = [parse_degradation(label.strip()) for label in args.degradations.split(";")]
    for spec, inputs in degraded_clips([args.clips], specs, args.frames, args.crop):
        rows = []
        for name, clean, noisy in inputs:
            level = effective_level(noisy, clean)
            pilot, _ = auto_denoise(with_pass, noisy)
            row = [score(clean, noisy)[0], score(clean, auto_denoise(alone, noisy)[0])[0], score(clean, pilot)[0]]
            row += [score(clean, bm3d_wiener(noisy, pilot, k * level))[0] for k in ks]
            row.append(max(score(clean, cbm3d_denoise(noisy, k * level))[0] for k in CBM3D_GRID))
            rows.append(row)
            print(f"| {spec.label} | {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
        print(f"| {spec.label} | mean | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |", flush=True)


if __name__ == "__main__":
    main()
