import math

import cv2
import numpy as np
import torch
from kornia.geometry.transform import warp_affine

from streamden.train.config import MotionConfig
from streamden.train.motion import affine_matrices, margin_for, random_walk_params, still_to_clip
from tests.train import textured


def test_centre_frame_is_the_still_and_neighbours_move():
    cfg = MotionConfig()
    patch = 48
    m = margin_for(patch, 5, cfg)
    crop = torch.from_numpy(textured(patch + 2 * m, patch + 2 * m)).unsqueeze(0)
    clip = still_to_clip(crop, 5, patch, cfg, torch.Generator().manual_seed(0))
    assert clip.shape == (1, 5, 3, patch, patch)
    assert torch.equal(clip[0, 2], crop[0, :, m:m + patch, m:m + patch])
    assert float((clip[0, 1] - clip[0, 2]).abs().mean()) > 1e-3


def test_motion_is_small():
    cfg = MotionConfig(max_shift=1.5, max_rotation=0.3, max_zoom=0.005)
    params = random_walk_params(256, 5, cfg, torch.Generator().manual_seed(0))
    for t in range(5):
        dist = abs(t - 2)
        assert float(params[:, t, :2].abs().max()) <= dist * cfg.max_shift + 1e-6
        assert float(params[:, t, 2].abs().max()) <= dist * cfg.max_rotation + 1e-6
        assert float(params[:, t, 3].abs().max()) <= dist * math.log1p(cfg.max_zoom) + 1e-6
    # measured displacement between neighbours (phase correlation) stays within a few pixels
    patch = 64
    m = margin_for(patch, 5, cfg)
    crop = torch.from_numpy(textured(patch + 2 * m, patch + 2 * m, seed=3)).unsqueeze(0)
    clip = still_to_clip(crop, 5, patch, cfg, torch.Generator().manual_seed(1))[0]
    gray = clip.mean(1).numpy().astype(np.float64)
    for t in range(4):
        (dx, dy), _ = cv2.phaseCorrelate(gray[t], gray[t + 1])
        assert math.hypot(dx, dy) < 2 * cfg.max_shift + 1.0


def test_subpixel_shift_interpolates():
    ramp = torch.arange(32, dtype=torch.float32).expand(1, 3, 32, 32).contiguous()
    mat = affine_matrices(torch.tensor([[[0.5, 0.0, 0.0, 0.0]]]), (32, 32))[:, 0]
    out = warp_affine(ramp, mat, (32, 32), align_corners=True)
    # a half-pixel shift of a unit ramp lowers every interior value by exactly 0.5
    assert torch.allclose(out[..., 4:28, 4:28], ramp[..., 4:28, 4:28] - 0.5, atol=1e-4)
