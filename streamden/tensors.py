"""Moving pixels between the decoder's numpy arrays and the core's float tensors."""
from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError, StreamdenError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU; ``cuda`` without a GPU is an error.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch lists every backend it knows; the user can pick three
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N (--device / model.device), "
                          f"got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StreamdenError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    return device


def max_value(dtype: np.dtype) -> float:
    """Full-scale value of an integer pixel type (255 for uint8, 65535 for uint16)."""
    return float(np.iinfo(dtype).max)


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3)`` uint8/uint16 RGB -> ``(3, H, W)`` float32 in [0, 1] on ``device``.

    >>> image_to_tensor(np.full((2, 3, 3), 255, np.uint8)).shape
    torch.Size([3, 2, 3])
    """
    scale = max_value(image.dtype)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    if tensor.dtype == torch.uint16:  # few ops exist for uint16; go through int32
        tensor = tensor.to(torch.int32)
    return tensor.permute(2, 0, 1).to(torch.float32).div_(scale)


def tensor_to_image(tensor: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` numpy of ``dtype`` (rounded, clipped).

    >>> tensor_to_image(torch.ones(3, 2, 2)).max()
    np.uint8(255)
    """
    scale = max_value(np.dtype(dtype))
    values = tensor.detach().float().clamp(0, 1).mul(scale).round_()
    return values.permute(1, 2, 0).to("cpu", torch.int32).numpy().astype(dtype)
