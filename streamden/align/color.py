"""Colour conversions used by alignment: RGB to luma for flow estimation."""
from __future__ import annotations

import torch

# BT.601 luma weights: flow only needs a brightness image, and these are what OpenCV's
# RGB2GRAY uses, so the torch and OpenCV paths see the same luma.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_luma_torch(image: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> ``(N, 1, H, W)`` luma (BT.601 weights), same dtype and range.

    >>> rgb_to_luma_torch(torch.ones(2, 3, 4, 5)).shape
    torch.Size([2, 1, 4, 5])
    """
    r, g, b = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    return LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b


def rgb_to_luma(image: torch.Tensor) -> torch.Tensor:
    """Luma of ``(N, 3, H, W)`` RGB: the CUDA kernel on a GPU tensor, the torch reference elsewhere.

    >>> float(rgb_to_luma(torch.ones(1, 3, 2, 2)).max())
    1.0
    """
    _check_rgb(image)
    if image.is_cuda:
        from ..cuda import ops
        return ops.rgb_to_luma_cuda(image)
    return rgb_to_luma_torch(image)


def _check_rgb(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB, got {tuple(image.shape)}")
