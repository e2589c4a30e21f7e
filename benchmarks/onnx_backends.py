"""torch fp32 / torch bf16 (the CPU default) / ONNX Runtime fp32 / ONNX Runtime int8, in one run.

For the restoration model (``fastdvdnet-aligned``, flow alignment as the preset runs it):

* ``network``: one output frame's network cost in steady state (one stage-1 block for the
  new triplet plus stage 2, the streaming engine's two blocks per frame), timed on each
  backend's runner, the configurations taking turns in every round, best round kept;
* ``end_to_end``: ``denoise_video`` on a generated noisy H.264 clip (decode, flow, network,
  encode, start-up included), restoration preset, libx264 veryfast;
* ``psnr``: the validation clips (centre crops, first frames) with seeded Gaussian noise at
  each sigma, denoised by each configuration's engine (aligned), PSNR against the clean frames.

ONNX Runtime runs the exported files: fp32 from ``streamden export``, int8 from
``streamden export --int8 --calibrate`` on the training footage (never the validation clips).
Both are written once into ``--work`` and reused. Each part and size can run on its own (the
configurations are always compared within one run):

    python benchmarks/onnx_backends.py --parts psnr
    python benchmarks/onnx_backends.py --parts network --sizes 540p,1080p
    python benchmarks/onnx_backends.py --parts end_to_end --sizes 540p --frames 4
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from streamden.bench import noisy_frames, parse_size
from streamden.config import make_config
from streamden.cpu import tune_malloc
from streamden.engine import Engine
from streamden.evaluate import clip_seed, read_clean
from streamden.metrics import psnr
from streamden.models.fastdvdnet import pad_to_multiple
from streamden.models.onnx_export import export_model, stage_paths
from streamden.noise.synth import noisy_8bit
from streamden.train.data import find_clips

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODEL = "fastdvdnet-aligned"
SIGMA = 25.0


def configurations(work: Path) -> dict[str, dict[str, str]]:
    """Name -> the config shortcuts of each configuration."""
    return {
        "torch fp32": {"backend": "torch", "precision": "fp32", "model": MODEL},
        "torch bf16 (default)": {"backend": "torch", "precision": "auto", "model": MODEL},
        "onnxruntime fp32": {"backend": "onnxruntime", "model": str(work / "fp32.onnx")},
        "onnxruntime int8": {"backend": "onnxruntime", "model": str(work / "int8.onnx")},
    }


def prepare_exports(work: Path, calibrate: Path, windows: int) -> None:
    """The fp32 and int8 exports of MODEL in ``work`` (kept between runs)."""
    work.mkdir(parents=True, exist_ok=True)
    for name, int8 in (("fp32.onnx", False), ("int8.onnx", True)):
        if all(p.is_file() for p in stage_paths(work / name)):
            continue
        start = time.perf_counter()
        result = export_model(MODEL, work / name, int8=int8, calibrate=calibrate if int8 else None,
                              windows=windows, overwrite=True)
        print(result.summary(), f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)


def engine_for(options: dict[str, str], **extra) -> Engine:
    """The engine a job with these shortcuts holds, on the CPU."""
    return Engine(make_config("restoration", device="cpu", **options, **extra))


def bench_network(configs: dict[str, dict[str, str]], size: tuple[int, int], rounds: int) -> dict[str, float]:
    """Steady-state network frames per second: stage 1 on one triplet, then stage 2."""
    width, height = size
    frames, _ = pad_to_multiple(torch.rand(1, 3, 3, height, width, generator=torch.Generator().manual_seed(0)))
    noise = torch.full((1, 1, *frames.shape[-2:]), SIGMA / 255)
    runners = {name: engine_for(options).runner for name, options in configs.items()}

    def one_frame(runner) -> None:
        middle = runner.stage1(frames, noise)
        runner.stage2(middle.unsqueeze(1).expand(-1, 3, -1, -1, -1), noise)

    best = {name: float("inf") for name in configs}
    for name, runner in runners.items():
        one_frame(runner)   # warm-up: allocations, oneDNN primitives, ONNX Runtime's first run
    for r in range(rounds):
        for name, runner in runners.items():
            start = time.perf_counter()
            one_frame(runner)
            best[name] = min(best[name], time.perf_counter() - start)
            print(f"  network {width}x{height} round {r}: {name}: {1 / best[name]:.3f} fps", file=sys.stderr,
                  flush=True)
    return {name: 1 / seconds for name, seconds in best.items()}


def bench_end_to_end(configs: dict[str, dict[str, str]], size: tuple[int, int], frames: int) -> dict[str, float]:
    """Frames per second of a whole ``denoise_video`` job (start-up included)."""
    from streamden.api import denoise_video
    from streamden.sample import write_clip

    out = {}
    with tempfile.TemporaryDirectory(prefix="streamden-onnx-bench-") as tmp:
        clip = write_clip(Path(tmp) / "noisy.mp4", noisy_frames(size, frames), audio=False, crf=18, pix_fmt="yuv420p")
        for name, options in configs.items():
            start = time.perf_counter()
            denoise_video(str(clip), str(Path(tmp) / "out.mp4"), preset="restoration", device="cpu", sigma=SIGMA,
                          overwrite=True, encoder_preset="veryfast", handle_signals=False, **options)
            out[name] = frames / (time.perf_counter() - start)
            print(f"  end to end {size[0]}x{size[1]}: {name}: {out[name]:.3f} fps", file=sys.stderr, flush=True)
    return out


def bench_psnr(configs: dict[str, dict[str, str]], val: Path, sigmas: list[float], frames: int,
               crop: int) -> dict[str, dict[float, float]]:
    """Mean PSNR over the validation clips per configuration and sigma (same noisy frames for all)."""
    clips = [(path.name, read_clean(path, frames, crop))
             for path in find_clips([val])]
    engines = {name: engine_for(options) for name, options in configs.items()}
    table: dict[str, dict[float, float]] = {name: {} for name in configs}
    for sigma in sigmas:
        scores: dict[str, list[float]] = {name: [] for name in configs}
        for clip_name, clean in clips:
            noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(clip_seed(0, clip_name, sigma)))
            for name, engine in engines.items():
                scores[name].append(float(psnr(engine.denoise_clip(noisy, sigma), clean)))
        for name in configs:
            table[name][sigma] = sum(scores[name]) / len(scores[name])
            print(f"  psnr sigma {sigma:g}: {name}: {table[name][sigma]:.3f} dB", file=sys.stderr, flush=True)
    return table


def main() -> None:
    """Run the chosen parts and print markdown tables (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="network,end_to_end,psnr")
    parser.add_argument("--sizes", default="540p,1080p")
    parser.add_argument("--rounds", type=int, default=2, help="network: timed rounds, the best counts")
    parser.add_argument("--frames", type=int, default=4, help="end to end: frames of the clip")
    parser.add_argument("--psnr-frames", type=int, default=8)
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--sigmas", default="10,30,50")
    parser.add_argument("--val", type=Path, default=DATA / "val" / "videos")
    parser.add_argument("--calibrate", type=Path, default=DATA / "train" / "videos")
    parser.add_argument("--windows", type=int, default=24, help="int8 calibration windows")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.onnx"), help="where the exports are kept")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tune_malloc()   # as `streamden denoise` runs
    parts = args.parts.split(",")
    prepare_exports(args.work, args.calibrate, args.windows)
    configs = configurations(args.work)
    result: dict[str, object] = {"torch_threads": torch.get_num_threads(), "model": MODEL}
    if "psnr" in parts:
        sigmas = [float(s) for s in args.sigmas.split(",")]
        table = bench_psnr(configs, args.val, sigmas, args.psnr_frames, args.crop)
        result["psnr"] = table
        print(f"\nPSNR (dB), {MODEL} aligned, validation clips, first {args.psnr_frames} frames, "
              f"{args.crop}x{args.crop} centre crops\n")
        print("| configuration | " + " | ".join(f"sigma {s:g}" for s in sigmas) + " |")
        print("|---|" + "---:|" * len(sigmas))
        for name, row in table.items():
            print(f"| {name} | " + " | ".join(f"{row[s]:.2f}" for s in sigmas) + " |")
    for part, fn in (("network", lambda size: bench_network(configs, size, args.rounds)),
                     ("end_to_end", lambda size: bench_end_to_end(configs, size, args.frames))):
        if part not in parts:
            continue
        rows = {}
        for text in args.sizes.split(","):
            rows[text] = fn(parse_size(text))
        result[part] = rows
        print(f"\n{part} (frames per second{', clip of %d frames' % args.frames if part == 'end_to_end' else ''})\n")
        print("| configuration | " + " | ".join(rows) + " |")
        print("|---|" + "---:|" * len(rows))
        for name in configs:
            print(f"| {name} | " + " | ".join(f"{rows[s][name]:.3f}" for s in rows) + " |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
