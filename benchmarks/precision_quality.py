"""Reduced precision against fp32: PSNR on the validation clips, same noisy frames, same run.

Every shipped model runs through the streaming engine with the fast options
(InferenceOptions defaults) at each precision the device offers: fp32 and bf16 on a CPU
(bf16 only with native support), fp32, fp16 and bf16 on CUDA. A model trained with flow
alignment runs aligned (DIS on the CPU, our LK kernels on CUDA). The issue's bar: reduced
precision within 0.05 dB of fp32.

    python benchmarks/precision_quality.py --frames 8 --sigmas 10,30,50 --device auto

prints a markdown table (and writes it to ``--out``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamden.align import make_aligner
from streamden.config import AlignConfig
from streamden.evaluate import clip_seed
from streamden.metrics import psnr
from streamden.models.accel import InferenceOptions, cpu_has_bf16
from streamden.models.registry import load_model, model_alignment
from streamden.models.streaming import StreamingDenoiser
from streamden.noise.synth import noisy_8bit
from streamden.tensors import resolve_device
from streamden.train.data import find_clips, read_clip

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val" / "videos"
MODELS = ("fastdvdnet-gaussian", "fastdvdnet-aligned")


def precisions_for(device: torch.device) -> list[str]:
    """The precisions worth measuring on ``device``."""
    if device.type == "cuda":
        return ["fp32", "fp16", "bf16"]
    return ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]


def denoise(model: torch.nn.Module, name: str, noisy: torch.Tensor, sigma: float, precision: str,
            device: torch.device) -> torch.Tensor:
    """The streaming engine's output for a whole clip at ``precision``."""
    aligner = make_aligner(AlignConfig(), device, model_alignment(name))
    engine = StreamingDenoiser(model, device, InferenceOptions(precision=precision), aligner=aligner)
    out = [f for frame in noisy for _, f in engine.push(frame.to(device), sigma)] + [f for _, f in engine.finish()]
    return torch.stack(out).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA), help="folder of validation clips")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--sigmas", default="10,30,50")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="also write the markdown table here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = resolve_device(args.device)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    precisions = precisions_for(device)
    clips = find_clips([args.data])
    rows = []
    for name in MODELS:
        model = load_model(name, device=device)
        for sigma in sigmas:
            scores = {p: [] for p in precisions}
            for clip in clips:
                clean = read_clip(clip, max_frames=args.frames).float() / 255.0
                noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(clip_seed(0, clip.name, sigma)))
                for precision in precisions:
                    out = denoise(model, name, noisy, sigma, precision, device)
                    scores[precision].append(sum(psnr(o, c) for o, c in zip(out, clean)) / len(out))
            mean = {p: sum(v) / len(v) for p, v in scores.items()}
            rows.append((name, sigma, mean))
            print(f"{name} sigma {sigma:g}: " + ", ".join(f"{p} {v:.3f}" for p, v in mean.items()), flush=True)
    head = f"PSNR (dB) on {len(clips)} validation clips, {args.frames} frames each, device {device}"
    if device.type == "cuda":
        head += f" ({torch.cuda.get_device_name(device)})"
    lines = [head, "", "| model | sigma | " + " | ".join(precisions) + " | " +
             " | ".join(f"{p} - fp32" for p in precisions[1:]) + " |",
             "|---" * (2 + 2 * len(precisions) - 1) + "|"]
    for name, sigma, mean in rows:
        deltas = [f"{mean[p] - mean['fp32']:+.3f}" for p in precisions[1:]]
        lines.append(f"| {name} | {sigma:g} | " + " | ".join(f"{mean[p]:.3f}" for p in precisions) + " | "
                     + " | ".join(deltas) + " |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
