"""The trainer's held-out validation, per degradation: which settings a checkpoint gains on.

A train config's ``val_degradations`` windows (``data.val_videos``, ``val_frames``, ``val_crop``,
aligned as its ``align`` says) are built exactly as ``streamden train`` builds them, and every
weights file is scored on each setting apart; the mean is the figure the trainer logs.

    python benchmarks/val_split.py configs/train/fastdvdnet_real7.yaml A.safetensors B.safetensors
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from streamden.align import make_aligner
from streamden.config import load_config
from streamden.models.registry import load_model
from streamden.train.config import TrainConfig
from streamden.train.trainer import load_val_set, validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a train config with data.val_videos and val_degradations")
    parser.add_argument("weights", nargs="+", help=".safetensors files or registered model names")
    args = parser.parse_args()
    cfg = load_config(TrainConfig, args.config, [])
    if not cfg.data.val_videos or not cfg.val_degradations:
        parser.error(f"{args.config}: needs data.val_videos and val_degradations")
    specs = cfg.val_degradations
    val_set, _ = load_val_set(cfg, make_aligner(cfg.align, torch.device("cpu")))
    print("| weights | " + " | ".join(specs) + " | mean |")
    print("|---" * (len(specs) + 2) + "|")
    for name in args.weights:
        model = load_model(name, torch.device("cpu"))
        # make_val_set lists each clip's degradations in order: entry i is degradation i % len(specs)
        scores = [validate(model, val_set[k::len(specs)], torch.device("cpu")) for k in range(len(specs))]
        print(f"| {name} | " + " | ".join(f"{s:.2f}" for s in scores) + f" | {np.mean(scores):.3f} |", flush=True)


if __name__ == "__main__":
    main()
