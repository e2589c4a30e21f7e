"""Quality of the live paths on the validation clips: `lite` against the full network and NLM.

The gate of the light temporal model: at sigma 15 and 25, `lite` at least 2 dB above OpenCV
NLM-multi at its best strength, and as close to the full network as its budget allows. Each
clip gets seeded 8-bit Gaussian noise (streamden.evaluate's noise); the networks run as
`streamden live` runs them: the surveillance preset's engine (precision auto: bf16 on a CPU
with native bf16), the streaming engine at look-ahead 1, the sigma known. NLM-multi
(fastNlMeansDenoisingColoredMulti, 5 frames) runs over a grid of ``h = hColor = k * sigma`` and
the best ``k`` of each clip and sigma is kept (an oracle strength: the most demanding
comparison). The single-frame passes of the live ladder (``light2``/``light4``: the lite
network on one frame at half or quarter resolution, as live runs them) are measured too.

    python benchmarks/lite_quality.py --frames 10 --crop 384 --json runs/lite_quality.json

prints a markdown table (PSNR in dB, mean over frames, then over clips).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import clip_seed, nlm_denoise, read_clean
from streamden.metrics import psnr_per_image
from streamden.noise.synth import noisy_8bit
from streamden.train.data import find_clips

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val" / "videos"
NLM_GRID = (0.4, 0.5, 0.6, 0.8, 1.0)


def streamed(engine: Engine, noisy: torch.Tensor, sigma: float, lookahead: int = 1) -> torch.Tensor:
    """Every frame of ``noisy`` ``(T, 3, H, W)`` through one stream of ``engine`` at ``lookahead``."""
    stream = engine.stream(lookahead)
    out = [o for frame in noisy for _, o in stream.push(frame, sigma)] + [o for _, o in stream.finish()]
    return torch.stack(out).cpu()


def score(clean: torch.Tensor, out: torch.Tensor) -> float:
    """Mean PSNR (dB) over the frames."""
    return float(psnr_per_image(out, clean).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--sigmas", default="15,25")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    engines = {name: Engine(make_config("surveillance", None, [], door="live", model=name, device="cpu"), live=True)
               for name in ("lite", "fastdvdnet-gaussian")}
    rows: list[dict] = []
    for path in find_clips([str(DATA)]):
        clip = Path(path).name
        clean = read_clean(path, args.frames, args.crop)
        for sigma in sigmas:
            noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(clip_seed(0, clip, sigma)))
            row = {"clip": clip, "sigma": sigma, "noisy": score(clean, noisy)}
            nlm = {k: score(clean, nlm_denoise(noisy, sigma, k)) for k in NLM_GRID}
            best = max(nlm, key=nlm.get)
            row.update(nlm=nlm[best], nlm_k=best)
            for name, engine in engines.items():
                start = time.perf_counter()
                row[name] = score(clean, streamed(engine, noisy, sigma))
                row[f"{name}_s"] = time.perf_counter() - start
            light = engines["lite"]
            for scale in (2, 4):
                row[f"light{scale}"] = score(clean, torch.stack([light.single_frame(f, sigma, scale).cpu() for f in noisy]))
            rows.append(row)
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    columns = ["noisy", "nlm", "light4", "light2", "lite", "fastdvdnet-gaussian"]
    print(f"\n{args.frames} frames, {args.crop}x{args.crop} centre crops, look-ahead 1, sigma known; "
          f"NLM-multi at the best k of {NLM_GRID} per clip and sigma (h = k * sigma)\n")
    print("| sigma | " + " | ".join(columns) + " | lite - NLM | full - lite |")
    print("|---" * (len(columns) + 3) + "|")
    for sigma in sigmas:
        mean = {c: sum(r[c] for r in rows if r["sigma"] == sigma) / len([r for r in rows if r["sigma"] == sigma])
                for c in columns}
        print(f"| {sigma:g} | " + " | ".join(f"{mean[c]:.2f}" for c in columns)
              + f" | {mean['lite'] - mean['nlm']:+.2f} | {mean['fastdvdnet-gaussian'] - mean['lite']:+.2f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
