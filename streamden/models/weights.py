"""Weights as safetensors files with string metadata (architecture, data, noise range, commit)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import ModelError


def save_weights(model_or_state: torch.nn.Module | dict[str, torch.Tensor], path: str | os.PathLike,
                 metadata: dict[str, object]) -> None:
    """Write a state dict (BatchNorm statistics included) and metadata to a safetensors file.

    Non-string metadata values are stored as JSON. The file is written next to its final
    name and renamed, so a crash never leaves a half-written weights file.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> save_weights(FastDVDnet(), "/tmp/w.safetensors", {"architecture": "fastdvdnet"})
    """
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors weights file, without loading the tensors."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises several types for a bad header
        raise ModelError(f"{path}: not a safetensors weights file ({exc})") from exc


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load ``(state_dict, metadata)`` from a safetensors weights file."""
    metadata = read_metadata(path)
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    return state, metadata
