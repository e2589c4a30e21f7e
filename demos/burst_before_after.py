"""Make the README's night-mode picture: one noisy frame | aligned mean | single-frame denoise | burst.

    python demos/burst_before_after.py demos/burst_before_after.png

Builds a synthetic 8-frame hand-held night burst from a photo of the shared corpus
(random hand-shake homographies, one object moving on its own, Poisson-Gaussian noise of
sigma 30 at mid-grey), writes it as 16-bit PNG files, runs ``streamden.denoise_burst`` on
them like ``streamden burst shots/ -o night.png --reference 4`` would (noise estimated),
and writes a crop of each result around the moving object, 2x enlarged, labelled with its
PSNR against the clean reference.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from before_after import label  # the sibling demo (scripts run from demos/ see each other)

from streamden.api import denoise_burst
from streamden.models.registry import DEFAULT_MODEL
from streamden.burst.fuse import denoise_single
from streamden.burst.io import write_photo
from streamden.noise.estimate import NoiseModel
from streamden.burst.synth import make_night_burst
from streamden.metrics import psnr
from streamden.config import make_config
from streamden.engine import Engine

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--photo", default="Urban100_HR/img_007_SRF_4_HR.jpg", help="photo inside the corpus")
    parser.add_argument("--size", type=int, default=480, help="side of the centre crop the burst is made of")
    parser.add_argument("--crop", type=int, default=192, help="side of the crop shown")
    args = parser.parse_args()
    image = cv2.cvtColor(cv2.imread(str(IMAGES / args.photo)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    s = args.size
    image = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    burst = make_night_burst(image, 8, sigma=30.0, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        for i, frame in enumerate(burst.noisy):
            write_photo(Path(folder) / f"shot_{i:02d}.png", frame)
        # The synthetic reference (the frame the clean picture is of); the noise is estimated.
        fused = denoise_burst(folder, reference=burst.reference).image
        mean = denoise_burst(folder, method="mean", reference=burst.reference).image
    frames = torch.from_numpy(burst.noisy).permute(0, 3, 1, 2)
    ref = frames[burst.reference]
    noise = NoiseModel(burst.gain, burst.read)
    single = denoise_single(Engine(make_config("night_burst", model=DEFAULT_MODEL)), ref, noise.std_map(ref[None])[0])
    truth = torch.from_numpy(burst.truth).permute(2, 0, 1)
    ys, xs = np.nonzero(burst.object_mask)
    cy, cx = int(ys.mean()), int(xs.mean())
    c = args.crop
    top, left = int(np.clip(cy - c // 2, 0, s - c)), int(np.clip(cx - c // 2, 0, s - c))
    panels = []
    for name, out in (("one noisy frame", ref), ("aligned mean", mean), ("single-frame denoise", single),
                      ("burst (8 frames)", fused), ("clean", truth)):
        score = "" if name == "clean" else f"  {float(psnr(out, truth)):.2f} dB"
        rgb = (out.permute(1, 2, 0).numpy()[top:top + c, left:left + c] * 255).round().clip(0, 255).astype(np.uint8)
        panels.append(label(cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), name + score))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
