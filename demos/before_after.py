"""Make the README's before/after picture: noisy | denoised | clean crops of the sample clip.

    python demos/before_after.py demo demos/before_after.png

Renders the sample (`streamden sample`) into FOLDER if it is not there, denoises it with
the shipped default model, and writes a side-by-side crop of one frame, 2x enlarged,
labelled with each frame's PSNR against the clean reference.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from streamden.api import denoise_video
from streamden.io import VideoFileSource
from streamden.metrics import psnr
from streamden.sample import write_sample


def read_rgb(path: Path) -> np.ndarray:
    """All frames of a clip as ``(T, H, W, 3)`` uint8 RGB."""
    return np.stack([f.image for f in VideoFileSource(str(path)).generate()])


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner on a dark band."""
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def save_side_by_side(output: Path, panels: list[tuple[str, np.ndarray]]) -> None:
    """Write ``(label, RGB uint8 crop)`` panels side by side, each 2x enlarged and labelled, as PNG."""
    big = [label(cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), text) for text, crop in panels]
    output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(output), cv2.cvtColor(np.concatenate(big, axis=1), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="sample folder (clean.mp4, noisy.mp4)")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--frame", type=int, default=25)
    args = parser.parse_args()
    if not (args.folder / "noisy.mp4").is_file():
        write_sample(args.folder)
    denoised_path = args.folder / "denoised.mp4"
    denoise_video(args.folder / "noisy.mp4", denoised_path, overwrite=True)
    clips = {name: read_rgb(args.folder / f"{name}.mp4") for name in ("noisy", "denoised", "clean")}
    t = min(args.frame, len(clips["clean"]) - 1)
    h, w = clips["clean"].shape[1:3]
    crop = (slice(h // 4, h // 4 + h // 2), slice(w // 4, w // 4 + w // 2))
    panels = []
    for name, frames in clips.items():
        score = psnr(torch.from_numpy(frames[t]).float() / 255, torch.from_numpy(clips["clean"][t]).float() / 255)
        panels.append((name if name == "clean" else f"{name}  {float(score):.2f} dB", frames[t][crop]))
    save_side_by_side(args.output, panels)
    print(f"frame {t}: " + ", ".join(text for text, _ in panels[:2]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
