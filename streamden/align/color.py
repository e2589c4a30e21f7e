"""Colour conversions used by alignment: RGB to luma for flow estimation, and the packing of
frames between interleaved integer pixels and planar float tensors (upload and download)."""
from __future__ import annotations

import torch

from ..cuda.module import use_kernels

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
    if use_kernels(image):
        from ..cuda import ops
        return ops.rgb_to_luma_cuda(image)
    return rgb_to_luma_torch(image)


def _check_rgb(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB, got {tuple(image.shape)}")


# Full scale of the integer pixel formats frames arrive in and leave as.
INT_MAX = {torch.uint8: 255, torch.uint16: 65535}


def interleaved_to_planar_torch(frames: torch.Tensor) -> torch.Tensor:
    """The upload: ``(N, H, W, C)`` uint8/uint16 -> ``(N, C, H, W)`` float32 in [0, 1].

    >>> interleaved_to_planar_torch(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)).shape
    torch.Size([1, 3, 2, 2])
    """
    scale = INT_MAX[frames.dtype]
    return (frames.permute(0, 3, 1, 2).float() / scale).contiguous()


def planar_to_interleaved_torch(image: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """The download: ``(N, C, H, W)`` float in [0, 1] -> ``(N, H, W, C)`` ``dtype`` (uint8/uint16).

    Values are scaled to full range, rounded to nearest (ties to even) and clamped.

    >>> planar_to_interleaved_torch(torch.tensor([-0.1, 0.5, 1.2]).view(1, 3, 1, 1)).flatten().tolist()
    [0, 128, 255]
    """
    scale = INT_MAX[dtype]
    out = (image.float() * scale).round().clamp(0, scale)
    return out.permute(0, 2, 3, 1).to(dtype).contiguous()


def interleaved_to_planar(frames: torch.Tensor) -> torch.Tensor:
    """Upload ``(N, H, W, C)`` uint8/uint16 frames to ``(N, C, H, W)`` float32: CUDA kernel on a GPU.

    >>> float(interleaved_to_planar(torch.full((1, 1, 1, 3), 65535, dtype=torch.uint16)).min())
    1.0
    """
    if frames.ndim != 4 or frames.dtype not in INT_MAX:
        raise ValueError(f"expected (N, H, W, C) uint8 or uint16, got {tuple(frames.shape)} {frames.dtype}")
    if use_kernels(frames):
        from ..cuda import ops
        return ops.interleaved_to_planar_cuda(frames)
    return interleaved_to_planar_torch(frames)


def planar_to_interleaved(image: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Download ``(N, C, H, W)`` float frames to ``(N, H, W, C)`` uint8/uint16: CUDA kernel on a GPU.

    >>> planar_to_interleaved(torch.ones(1, 3, 2, 2), torch.uint16).dtype
    torch.uint16
    """
    if image.ndim != 4 or dtype not in INT_MAX:
        raise ValueError(f"expected (N, C, H, W) and uint8 or uint16, got {tuple(image.shape)} {dtype}")
    if use_kernels(image):
        from ..cuda import ops
        return ops.planar_to_interleaved_cuda(image, dtype)
    return planar_to_interleaved_torch(image, dtype)
