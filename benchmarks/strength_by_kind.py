"""Which noise-map strength each network wants, per kind of noise (issue 19: why a network
should be told the kind, not only the level).

    python benchmarks/strength_by_kind.py ../shared/data/train/videos/{vtest_surveillance,sam2_dog} \
        --models fastdvdnet-aligned,benchmarks/training/fastdvdnet_real2/fastdvdnet_real2.safetensors

Training clips by default, not the validation clips of the gate, so that nothing here is tuned
on what the gate measures. For each clip and degradation (``streamden.noise.degrade``): the
effective level ``std(noisy - clean)``, the mean ``--sigma auto`` level (the engine's tracker),
the median over the frames of the level-2 / level-1 ratio of the estimate (about 1.0 on white
noise, above 1.1 after a codec), and each model's PSNR with its noise map at ``k`` times the
auto level for every ``k`` of ``--grid``, with the best ``k``. One line per clip and setting.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import degrade_clip, read_clean, score
from streamden.noise.degrade import degradation_grid, effective_level
from streamden.noise.estimate import scale_ratio
from streamden.train.data import find_clips


def settings() -> list:
    """White, compressed (x264 at three CRFs, x265, JPEG), camera and camera+compressed noise."""
    specs = degradation_grid(["gaussian"], sigmas=[5, 10, 20])
    specs += degradation_grid(["compressed"], sigmas=[10, 15, 25], codecs=["x264"], crfs=[18, 23, 28])
    specs += degradation_grid(["compressed"], sigmas=[15], codecs=["x265"], crfs=[23])
    specs += degradation_grid(["compressed"], sigmas=[15], codecs=["jpeg"], jpeg_qualities=[70])
    specs += degradation_grid(["camera"])
    specs += degradation_grid(["camera+compressed"], isos=["iso3200"], crfs=[23])
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--models", default="fastdvdnet-aligned", help="comma list of model names or weights files")
    parser.add_argument("--grid", default="0.75,1,1.25,1.5,1.75,2,2.5", help="noise-map multipliers of the auto level")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args()
    grid = [float(k) for k in args.grid.split(",")]
    engines = {name: Engine(make_config(None, device="cpu", overrides=[f"model.name={name}"]))
               for name in args.models.split(",")}
    probe = next(iter(engines.values()))
    rows = []
    for path in find_clips(args.clips):
        clean = read_clean(path, args.frames, args.crop)
        for spec in settings():
            noisy = degrade_clip(clean, path.name, spec)
            tracker = probe.sigma_tracker()
            auto = [tracker.update(probe.estimate_sigma(frame)) for frame in noisy]
            row = {"clip": path.name, "setting": spec.label, "level": effective_level(noisy, clean),
                   "auto": float(np.mean(auto)), "ratio": float(np.median([scale_ratio(f) for f in noisy]))}
            line = (f"{path.name:18s} {spec.label:38s} level {row['level']:5.1f} auto {row['auto']:5.1f} "
                    f"ratio {row['ratio']:.2f}")
            for name, engine in engines.items():
                psnrs = {k: score(clean, engine.denoise_clip(noisy, torch.tensor(auto) * k))[0] for k in grid}
                row[name] = psnrs
                line += (f" | {name.rsplit('/', 1)[-1]} " + " ".join(f"{v:.2f}" for v in psnrs.values())
                         + f" best {max(psnrs, key=psnrs.get):g}")
            rows.append(row)
            print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"grid": grid, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
