"""Does self-supervised adaptation (``streamden adapt``, ``--adapt``) pay off on noise the model never saw?

For each validation clip (a centre crop of its first frames) and each noise, the clean frames
are degraded, the default model adapts on the noisy frames alone (no clean data), and both
models denoise the same noisy frames the way ``streamden denoise`` does (streaming, flow
aligned, ``--sigma auto``: a per-frame estimate smoothed over time). The clean frames are
used only to score (PSNR, dB). Noises:

* ``correlated``: Gaussian noise blurred by a 3x3 binomial kernel, renormalised to sigma 20
  (spatially correlated, as a camera's demosaicking and denoising leave it);
* ``x264``: Gaussian sigma 15, then x264 CRF 23 (medium, 4:2:0), decoded (the compressed
  noise of issue 19: what a camera feed carries);
* ``gaussian``: white Gaussian sigma 20, inside the model's training range (5-55): adaptation
  must not lose more than 0.1 dB there.

Besides the unadapted model at ``auto``, the table gives it at its best fixed sigma over a
grid (an oracle: picked with the clean frames), a stricter baseline. ``--curve`` records the
best weights so far at several points of one run and plots PSNR gain against adaptation
time (a PNG). Timings are wall seconds on this machine, shared with other jobs: the steps
column says how much work that was.

    python benchmarks/adapt_gain.py --clip da_demo1 --noise correlated --curve curve.png
    python benchmarks/adapt_gain.py --clip ta_sample4 --noise x264 --json out.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from streamden.config import make_config
from streamden.engine import Engine
from streamden.metrics import psnr
from streamden.models.registry import load_model
from streamden.noise.estimate import SigmaTracker, estimate_sigma
from streamden.noise.synth import noisy_8bit
from streamden.train.adapt import clip_from_array
from streamden.train.data import read_clip

VAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "val" / "videos"
SIGMA_GRID = (10, 15, 20, 30, 40)


def load_clean(clip: str, frames: int, crop: int, stride: int, root: Path) -> torch.Tensor:
    """``frames`` frames (every ``stride``-th) of a validation clip, centre ``crop``, float (T, 3, H, W)."""
    video = read_clip(root / clip, 0, frames * stride)[::stride][:frames].float() / 255.0
    h, w = video.shape[-2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return video[:, :, top:top + crop, left:left + crop].contiguous()


def correlated_noise(clean: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """8-bit frames plus Gaussian noise blurred by a 3x3 binomial kernel, renormalised to ``sigma``."""
    k = torch.tensor([1.0, 2.0, 1.0])
    kernel = (k[:, None] * k[None, :] / 16.0)[None, None]
    white = torch.randn(clean.shape, generator=generator).reshape(-1, 1, *clean.shape[-2:])
    noise = F.conv2d(F.pad(white, (1, 1, 1, 1), mode="reflect"), kernel)
    noise = noise / float((kernel ** 2).sum().sqrt())       # unit variance again
    noisy = clean + noise.reshape(clean.shape) * sigma / 255.0
    return (noisy.clamp(0, 1) * 255).round() / 255


def x264_noise(clean: torch.Tensor, sigma: float, crf: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of ``sigma``, then x264 at ``crf`` (medium, yuv420p), decoded."""
    from streamden.sample import write_clip
    from streamden.train.data import read_video_file

    noisy = noisy_8bit(clean, sigma, generator)
    frames = (noisy * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(Path(tmp) / "x.mp4", frames, crf=crf, audio=False, pix_fmt="yuv420p")
        return read_video_file(path).float() / 255.0


def degrade(clean: torch.Tensor, noise: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if noise == "correlated":
        return correlated_noise(clean, 20.0, g)
    if noise == "x264":
        return x264_noise(clean, 15.0, 23, g)
    if noise == "gaussian":
        return noisy_8bit(clean, 20.0, g)
    raise SystemExit(f"unknown noise {noise!r}")


def auto_sigmas(noisy: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Per-frame sigma as ``--sigma auto`` feeds it: estimated per frame, smoothed over time."""
    tracker = SigmaTracker(smoothing)
    return torch.tensor([tracker.update(estimate_sigma(f)) for f in noisy])


def score(engine: Engine, noisy: torch.Tensor, clean: torch.Tensor, sigma) -> float:
    return float(psnr(engine.denoise_clip(noisy, sigma).clamp(0, 1), clean))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="da_demo1")
    ap.add_argument("--noise", default="correlated", choices=["correlated", "x264", "gaussian"])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--stride", type=int, default=1, help="take every n-th frame (2: twice the motion)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=0.0, help="adaptation budget (0: steps only)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="adapt.* overrides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--oracle", action="store_true", help="also score the unadapted model at its best fixed sigma")
    ap.add_argument("--curve", help="PNG of PSNR gain against adaptation time")
    ap.add_argument("--marks", default="15,30,60,120,180,240", help="seconds at which --curve records the weights")
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    ap.add_argument("--root", default=str(VAL))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    clean = load_clean(args.clip, args.frames, args.crop, args.stride, Path(args.root))
    noisy = degrade(clean, args.noise, args.seed)
    config = make_config(None, None, ["model.device=cpu"] + args.set, door="frames")
    engine = Engine(config)
    sigmas = auto_sigmas(noisy, config.noise.smoothing)
    row: dict = {"clip": args.clip, "noise": args.noise, "frames": args.frames, "stride": args.stride,
                 "crop": args.crop, "input": float(psnr(noisy, clean)), "sigma_auto": float(sigmas.mean())}
    row["unadapted"] = score(engine, noisy, clean, sigmas)
    if args.oracle:
        grid = {s: score(engine, noisy, clean, float(s)) for s in SIGMA_GRID}
        best = max(grid, key=grid.get)
        row["unadapted_best_sigma"], row["unadapted_best"] = best, grid[best]
    print(json.dumps(row), flush=True)

    marks = sorted(float(m) for m in args.marks.split(",")) if args.curve else []
    snapshots: list[tuple[float, int, dict]] = []

    def on_step(p) -> None:
        while marks and p.seconds >= marks[0]:
            snapshots.append((marks.pop(0), p.step, {k: v.clone() for k, v in p.best_state.items()}))
        if p.step % 10 == 0:
            print(f"  step {p.step} loss {p.loss:.5f} held-out {p.held_out:.5f} (initial {p.initial:.5f}) "
                  f"{p.seconds:.0f} s", flush=True)

    t0 = time.time()
    adapted = Engine(config)
    result = adapted.adapt([clip_from_array(noisy)], seconds=args.seconds, progress=on_step)
    row.update({"adapt_seconds": round(time.time() - t0, 1), "steps": result.steps, "best_step": result.best_step,
                "stopped": result.stopped, "sigma_adapt": result.sigma, "correlation": result.correlation,
                "held_out": [result.initial_loss, result.best_loss]})
    row["adapted"] = score(adapted, noisy, clean, sigmas)
    row["gain"] = row["adapted"] - row["unadapted"]
    if args.oracle:
        row["gain_over_best"] = row["adapted"] - row["unadapted_best"]
    if args.curve:
        points = [(0.0, 0, 0.0)]
        for mark, step, state in snapshots:
            net = load_model(config.model.name)
            net.load_state_dict(state)
            e = Engine(config)
            e.replace_model(net)
            points.append((mark, step, score(e, noisy, clean, sigmas) - row["unadapted"]))
        points.append((result.seconds, result.steps, row["gain"]))
        row["curve"] = points
    print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")
    if args.curve:
        from streamden.train.plot import plot_curve

        plot_curve([p[0] for p in points], [p[2] for p in points],
                   f"PSNR gain over the unadapted model (dB), {args.clip} {args.crop}x{args.crop}x{args.frames}, "
                   f"{args.noise}", args.curve, x_label="seconds")


if __name__ == "__main__":
    main()
