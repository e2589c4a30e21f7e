"""Dark clipped channels under camera noise: the level the network needs per colour channel.

A camera amplifies its channels unequally (white balance, colour matrix, the sRGB gamma's
steep start), and where a channel is dark its noise is clipped at 0. The network takes one
noise level for all three channels (the RMS over them, what ``--sigma auto`` estimates), and
its correction of the upward bias of clipped noise scales with that level: on ``ta_sample4``
at camera iso3200 its red channel (mean 13 of 255) keeps +12 of the input's +14 levels of bias
at the estimated level and +2 at twice it.

For each clip, colour (as is, or cast to a deep colour with one channel near 0) and camera
level, over 5 frames of a 96x96 centre crop:

* ``overall``: the network at the estimated overall level L for all channels (``--sigma auto``
  before the per-channel levels);
* ``best k``: the best single level k x L, k in {1, 1.25, 1.5, 2, 2.5, 3} (the gate's "best fixed");
* ``oracle``: each channel from its own best k (a composite of the same runs: an upper bound);
* ``auto``: ``--sigma auto`` as shipped: a channel noisier than the overall level and clipped
  on more than 30 % of its pixels gets its own level, the std of the Gaussian noise that
  clipping would leave as the measured one (:meth:`streamden.noise.estimate.NoiseEstimate.network_level`),
  and the network runs once more for it. Blind: only the noisy frames.

    python benchmarks/clipped_channels.py ../shared/data/val/videos/ta_sample4 ../shared/data/train/videos/sam2_coffee
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import auto_denoise, read_clean
from streamden.noise.degrade import degrade, parse_degradation
from streamden.noise.estimate import channel_levels
from streamden.train.data import colour_cast

KS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
CASTS = {"as is": None, "dark red": (0.05, 0.33, 0.85), "dark blue": (0.85, 0.5, 0.05), "dark green": (0.8, 0.04, 0.6)}


def psnr(mse: float) -> float:
    return 10 * math.log10(255 ** 2 / max(mse, 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--levels", default="iso800,iso3200,iso12800")
    parser.add_argument("--casts", default=",".join(CASTS))
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(make_config(None, device="cpu", **({"model": args.model} if args.model else {})))
    print("| clip | colour | camera | L | own levels (r, g, b) | overall | best k | **auto** | oracle |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clip in args.clips:
        base = read_clean(clip, 5, 96)
        for cast in args.casts.split(","):
            clean = base if CASTS[cast] is None else colour_cast(base, 1.0, target=torch.tensor(CASTS[cast]))
            for iso in args.levels.split(","):
                noisy = degrade(clean, parse_degradation(f"camera {iso}"), 7)
                auto, used = auto_denoise(engine, noisy)
                levels = torch.tensor([float(v) for v in used])
                runs = {k: engine.denoise_clip(noisy, levels * k) for k in KS}
                mse = np.array([[float(((runs[k] - clean)[:, c] * 255).pow(2).mean()) for c in range(3)] for k in KS])
                auto_mse = float(((auto - clean) * 255).pow(2).mean())
                best = int(np.argmin(mse.mean(1)))
                own = np.mean([channel_levels(v) or (float(v),) * 3 for v in used], axis=0)
                print(f"| {clip.rstrip('/').split('/')[-1]} | {cast} | {iso} | {float(levels.mean()):.1f} | "
                      f"{', '.join(f'{v:.1f}' for v in own)} | {psnr(mse[0].mean()):.2f} | "
                      f"{psnr(mse[best].mean()):.2f} ({KS[best]:g}) | **{psnr(auto_mse):.2f}** | {psnr(mse.min(0).mean()):.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
