"""The flat-colour check: how far a network shifts the colour of flat, strongly coloured areas.

Our footage has almost no flat saturated areas, so the held-out validation cannot see a drift
there: a restart that gained 0.10 dB on it (``benchmarks/training/fastdvdnet_real9``) turned
a flat (250, 240, 20) yellow window at sigma 10 into blue -6.8 levels. The shipped-quality
test (``tests/models/test_shipped_quality.py``) holds every shipped model to under 3 levels
on these windows, and the trainer (``val_colour_limit``) uses the same measure so that a
checkpoint that fails it is never chosen as the best.
"""
from __future__ import annotations

import torch

from ..noise.synth import noisy_8bit

# An aquarium, a stage light, a neon sign, a yellow sign (0-255 RGB).
STRONG_COLOURS: tuple[tuple[int, int, int], ...] = ((13, 84, 226), (226, 84, 13), (13, 226, 84), (250, 240, 20))


@torch.no_grad()
def flat_window_bias(model: torch.nn.Module, rgb: tuple[float, ...], sigma: float = 10.0,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Mean error per channel (0-255) of ``model`` on a static flat 96x96 window of colour ``rgb``
    (0-255) with Gaussian noise of ``sigma`` (8-bit, seed 0): the centre frame's output away from
    the borders. A flat window denoised well comes out within a level or so of its colour.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> flat_window_bias(FastDVDnet().eval(), (128, 128, 128)).shape
    torch.Size([3])
    """
    clean = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(5, 3, 96, 96) / 255
    noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(0)).to(device)
    was_training = model.training
    model.eval()
    out = model(noisy.unsqueeze(0), torch.full((1, 1, 96, 96), sigma / 255, device=device)).float().clamp(0, 1)[0]
    model.train(was_training)
    return ((out.cpu() - clean[2])[:, 24:-24, 24:-24] * 255).mean(dim=(1, 2))


def worst_colour_shift(model: torch.nn.Module, device: torch.device | str = "cpu",
                       colours: tuple[tuple[int, int, int], ...] = STRONG_COLOURS) -> float:
    """The largest shift (0-255 levels, any channel) of :func:`flat_window_bias` over ``colours``."""
    return max(float(flat_window_bias(model, rgb, device=device).abs().max()) for rgb in colours)
