"""Import checkpoints of the original FastDVDnet into streamden's safetensors weights.

The original checkpoints are torch state dicts saved from a ``DataParallel`` model, so every
key carries a ``module.`` prefix; BatchNorm statistics are included. Some are wrapped in a
dict under ``state_dict``. One released version has biases on its convolutions and another
does not; both map key for key onto :class:`FastDVDnet` (``bias=True`` or ``False``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import ModelError
from .fastdvdnet import FastDVDnet
from .registry import has_conv_biases
from .weights import save_weights

PREFIX = "module."
_SHOWN_KEYS = 8     # keys listed in an error message before "... and N more"


def _list_keys(keys: set[str]) -> str:
    shown = sorted(keys)[:_SHOWN_KEYS]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" ... and {more} more" if more > 0 else "")


def _read_state(src: Path) -> dict[str, torch.Tensor]:
    if not src.is_file():
        raise ModelError(f"{src}: checkpoint file not found")
    try:
        loaded = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types for a foreign or corrupt file
        raise ModelError(f"{src}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelError(f"{src}: not a FastDVDnet checkpoint (expected a state dict of tensors, "
                         f"or a dict holding one under 'state_dict')")
    return {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in loaded.items()}


def import_fastdvdnet_checkpoint(src: str | os.PathLike, dst: str | os.PathLike,
                                 metadata: dict[str, object] | None = None) -> dict[str, str]:
    """Convert an original FastDVDnet ``.pth`` checkpoint into a ``.safetensors`` weights file.

    Keys must match :class:`FastDVDnet` exactly (after stripping ``module.``), otherwise a
    :class:`ModelError` names the file and the missing and unexpected keys. Checkpoints from
    PyTorch versions without ``num_batches_tracked`` get that counter set to 0 (it is unused
    in eval mode). Returns the metadata written: ``architecture=fastdvdnet``,
    ``source=<file name>``, ``imported_from=original FastDVDnet checkpoint``,
    ``bias=true|false``, plus ``metadata`` (which may override ``source`` and
    ``imported_from``). The result loads with ``registry.load_model(dst)``.

    >>> meta = import_fastdvdnet_checkpoint("model.pth", "fastdvdnet.safetensors")  # doctest: +SKIP
    >>> meta["bias"]  # doctest: +SKIP
    'false'
    """
    src = Path(src)
    state = _read_state(src)
    bias = has_conv_biases(state)
    model = FastDVDnet(bias=bias)
    expected = model.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state and key.replace(
                "num_batches_tracked", "running_mean") in state:
            state[key] = torch.zeros_like(value)
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        parts = [f"missing keys: {_list_keys(missing)}" if missing else "",
                 f"unexpected keys: {_list_keys(unexpected)}" if unexpected else ""]
        raise ModelError(f"{src}: does not match the FastDVDnet architecture (bias={str(bias).lower()}); "
                         + "; ".join(p for p in parts if p))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:   # right keys, wrong shapes
        raise ModelError(f"{src}: does not match the FastDVDnet architecture ({exc})") from exc

    meta: dict[str, str] = {"source": src.name, "imported_from": "original FastDVDnet checkpoint"}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    meta.update({"architecture": "fastdvdnet", "bias": "true" if bias else "false"})
    save_weights(model, dst, meta)
    return meta
