"""Choosing the reference frame of a burst: the sharpest one."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..align import rgb_to_luma

__all__ = ["sharpness", "sharpest"]


def sharpness(frame: torch.Tensor) -> float:
    """Variance of the Laplacian of a frame's luma at half size (noise is averaged down first).

    Motion blur from a shaking hand removes the fine detail the Laplacian responds to, so
    the frame with the largest value is the least blurred. Noise adds about the same to
    every frame of a burst, and the 2x downscale keeps it from dominating.

    >>> flat, edge = torch.zeros(3, 32, 32), torch.zeros(3, 32, 32)
    >>> edge[:, :, 16:] = 1.0
    >>> sharpness(edge) > sharpness(flat)
    True
    """
    luma = rgb_to_luma(frame.unsqueeze(0).float())[0, 0].cpu().numpy()
    small = cv2.resize(luma, (max(1, luma.shape[1] // 2), max(1, luma.shape[0] // 2)),
                       interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_32F).var())


def sharpest(frames: torch.Tensor) -> int:
    """Index of the sharpest frame of ``(N, 3, H, W)`` (see :func:`sharpness`).

    >>> sharpest(torch.stack([torch.zeros(3, 8, 8), torch.rand(3, 8, 8)]))
    1
    """
    return int(np.argmax([sharpness(f) for f in frames]))
