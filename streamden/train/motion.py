"""Synthetic hand-held motion: turn one still patch into a short clip of sub-pixel affine warps.

The centre frame is the untouched still; frames before and after it follow a random walk of
small translation, rotation and zoom steps (bilinear, so shifts are sub-pixel), warped with
:func:`kornia.geometry.transform.warp_affine`. Stills so teach the network to use its
neighbours the way real footage does.

>>> import torch
>>> from streamden.train.config import MotionConfig
>>> g = torch.Generator().manual_seed(0)
>>> clip = still_to_clip(torch.rand(2, 3, 48, 48), 5, 32, MotionConfig(), g)
>>> clip.shape
torch.Size([2, 5, 3, 32, 32])
"""
from __future__ import annotations

import math

import torch


def margin_for(patch: int, frames: int, cfg) -> int:
    """Border (pixels) a still crop needs around ``patch`` so warps never sample outside it.

    >>> from streamden.train.config import MotionConfig
    >>> margin_for(96, 5, MotionConfig()) > 0
    True
    """
    steps = frames // 2
    radius = patch / math.sqrt(2.0)
    per_step = cfg.max_shift + radius * (math.radians(cfg.max_rotation) + cfg.max_zoom)
    return int(math.ceil(steps * per_step)) + 1


def random_walk_params(n: int, frames: int, cfg, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-frame ``(dx, dy, angle_deg, log_zoom)`` of shape ``(n, frames, 4)``, zero at the centre frame.

    >>> from streamden.train.config import MotionConfig
    >>> p = random_walk_params(1, 5, MotionConfig(), torch.Generator().manual_seed(0))
    >>> p.shape, float(p[0, 2].abs().sum())
    (torch.Size([1, 5, 4]), 0.0)
    """
    scale = torch.tensor([cfg.max_shift, cfg.max_shift, cfg.max_rotation, math.log1p(cfg.max_zoom)])
    steps = (torch.rand(n, frames, 4, generator=generator) * 2.0 - 1.0) * scale
    params = torch.zeros(n, frames, 4)
    c = frames // 2
    for t in range(c + 1, frames):           # walk forward from the centre
        params[:, t] = params[:, t - 1] + steps[:, t]
    for t in range(c - 1, -1, -1):           # and backward
        params[:, t] = params[:, t + 1] + steps[:, t]
    return params


def affine_matrices(params: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(n, T, 2, 3)`` affine matrices rotating/zooming about the image centre, then shifting.

    >>> m = affine_matrices(torch.zeros(1, 1, 4), (8, 8))
    >>> torch.allclose(m[0, 0], torch.tensor([[1., 0., 0.], [0., 1., 0.]]))
    True
    """
    h, w = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    dx, dy, ang, lz = params.unbind(-1)
    s = lz.exp()
    a = torch.deg2rad(ang)
    cos, sin = s * a.cos(), s * a.sin()
    tx = cx - cos * cx + sin * cy + dx
    ty = cy - sin * cx - cos * cy + dy
    row0 = torch.stack([cos, -sin, tx], -1)
    row1 = torch.stack([sin, cos, ty], -1)
    return torch.stack([row0, row1], -2)


def still_to_clip(crops: torch.Tensor, frames: int, patch: int, cfg,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Warp still crops ``(n, 3, H, W)`` (float) into clips ``(n, frames, 3, patch, patch)``.

    ``H`` and ``W`` should be at least ``patch + 2 * margin_for(patch, frames, cfg)``; the
    centre ``patch`` window of each warped frame is kept.
    """
    from kornia.geometry.transform import warp_affine  # lazily: readers of clips (GPU benchmarks) need no kornia

    n, c, h, w = crops.shape
    params = random_walk_params(n, frames, cfg, generator)
    mats = affine_matrices(params, (h, w)).to(crops.device, crops.dtype)
    src = crops.unsqueeze(1).expand(n, frames, c, h, w).reshape(n * frames, c, h, w)
    warped = warp_affine(src, mats.reshape(n * frames, 2, 3), (h, w), mode="bilinear",
                         padding_mode="reflection", align_corners=True)
    top, left = (h - patch) // 2, (w - patch) // 2
    out = warped[..., top:top + patch, left:left + patch].reshape(n, frames, c, patch, patch)
    out[:, frames // 2] = crops[..., top:top + patch, left:left + patch]  # exact centre frame
    return out
