"""Noise of a burst: a Poisson-Gaussian model, estimated from a frame, turned into sigma maps.

Low-light photos carry shot noise (variance proportional to the signal) on top of read
noise (constant variance): ``var(x) = gain * x + read**2`` with ``x`` the clean value in
[0, 1]. A constant Gaussian sigma is the case ``gain = 0``.

Estimation follows the usual recipe (Foi et al. 2008, simplified): cut each colour channel
into blocks, measure in each block its mean (from the Haar LL band) and its noise variance
(the robust MAD of the finest diagonal Haar band HH), keep the least textured blocks in each
intensity bin, and fit the line ``var = gain * mean + read**2`` to the bins by weighted least
squares with both terms kept non-negative.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["NoiseModel", "estimate_noise_model"]

_MAD_TO_SIGMA = 1.0 / 0.6745


@dataclass(frozen=True)
class NoiseModel:
    """``var(x) = gain * x + read**2`` on the [0, 1] scale (``read`` is a std).

    >>> NoiseModel.gaussian(25.5).sigma255(0.3)
    25.5
    """

    gain: float
    read: float

    @classmethod
    def gaussian(cls, sigma255: float) -> "NoiseModel":
        """Signal-independent noise of std ``sigma255`` on the 0-255 scale."""
        return cls(0.0, float(sigma255) / 255.0)

    def sigma255(self, level: float = 0.5) -> float:
        """The noise std on the 0-255 scale at a signal ``level`` in [0, 1] (default mid-grey)."""
        return float(np.sqrt(max(self.gain * level + self.read ** 2, 0.0)) * 255.0)

    def std_map(self, signal: torch.Tensor) -> torch.Tensor:
        """Per-pixel noise std ([0, 1] units) ``(N, 1, H, W)`` for a clean-ish ``(N, 3, H, W)`` signal.

        The channels' variances are averaged (the network takes one map for all three).

        >>> NoiseModel(0.0, 0.1).std_map(torch.zeros(1, 3, 2, 2)).flatten().tolist()
        [0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612]
        """
        var = self.gain * signal.clamp(0, 1).mean(dim=1, keepdim=True) + self.read ** 2
        return var.clamp_min(1e-12).sqrt()


def _haar(ch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (LL/2), activity (LH^2 + HL^2) and HH of one channel's orthonormal Haar transform."""
    h, w = ch.shape[0] // 2 * 2, ch.shape[1] // 2 * 2
    a, b = ch[0:h:2, 0:w:2], ch[0:h:2, 1:w:2]
    c, d = ch[1:h:2, 0:w:2], ch[1:h:2, 1:w:2]
    mean = (a + b + c + d) * 0.25
    lh, hl = (a + b - c - d) * 0.5, (a - b + c - d) * 0.5
    return mean, lh * lh + hl * hl, (a - b - c + d) * 0.5


def _blocks(x: np.ndarray, size: int) -> np.ndarray:
    nh, nw = x.shape[0] // size, x.shape[1] // size
    return x[: nh * size, : nw * size].reshape(nh, size, nw, size).transpose(0, 2, 1, 3).reshape(nh * nw, -1)


def estimate_noise_model(image: torch.Tensor, block: int = 8, bins: int = 12, keep: float = 0.3,
                         max_pixels: int = 1 << 22) -> NoiseModel:
    """Fit a Poisson-Gaussian :class:`NoiseModel` to one noisy ``(3, H, W)`` frame in [0, 1].

    Blocks touching 0 or 1 (clipped, where the noise shrinks) are left out. Frames above
    ``max_pixels`` are analysed on a centre crop of that size.

    >>> g = torch.Generator().manual_seed(0)
    >>> clean = torch.linspace(0.05, 0.95, 256).repeat(3, 256, 1)
    >>> noisy = clean + torch.randn(clean.shape, generator=g) * (0.01 * clean + 0.0004).sqrt()
    >>> m = estimate_noise_model(noisy)
    >>> round(m.gain, 2), round(m.read, 2)
    (0.01, 0.02)
    """
    x = image.detach().float().cpu().numpy()
    _, h, w = x.shape
    if h * w > max_pixels:
        side = int(np.sqrt(max_pixels))
        top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
        x = x[:, top:top + side, left:left + side]
    means, acts, hhs = [], [], []
    for ch in x:
        mean, act, hh = _haar(ch)
        size = max(1, min(block, hh.shape[0], hh.shape[1]))
        mb = _blocks(mean, size)
        means.append(mb.mean(1))
        # The block's extremes decide clipping: a block whose min or max nears a limit is out.
        acts.append(np.where((mb.min(1) > 0.02) & (mb.max(1) < 0.98), _blocks(act, size).mean(1), np.inf))
        hhs.append(_blocks(hh, size))
    mean, act, hh = np.concatenate(means), np.concatenate(acts), np.concatenate(hhs)
    ok = np.isfinite(act)
    if ok.sum() < 8:
        ok = np.ones_like(ok)
        act = np.where(np.isfinite(act), act, 0.0)
    edges = np.quantile(mean[ok], np.linspace(0, 1, bins + 1))
    xs, vs, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = np.flatnonzero(ok & (mean >= lo) & (mean <= hi))
        if sel.size < 4:
            continue
        quiet = sel[np.argsort(act[sel])[: max(4, int(np.ceil(keep * sel.size)))]]
        sigma = np.median(np.abs(hh[quiet])) * _MAD_TO_SIGMA
        xs.append(mean[quiet].mean())
        vs.append(sigma ** 2)
        ws.append(quiet.size)
    xs, vs, ws = np.asarray(xs), np.asarray(vs), np.asarray(ws, float)
    if xs.size == 0:
        return NoiseModel(0.0, 0.0)
    if xs.size >= 2 and np.ptp(xs) > 1e-3:
        a = np.stack([xs, np.ones_like(xs)], axis=1) * np.sqrt(ws)[:, None]
        gain, offset = np.linalg.lstsq(a, vs * np.sqrt(ws), rcond=None)[0]
    else:
        gain, offset = 0.0, float(np.average(vs, weights=ws))
    if gain < 0:
        gain, offset = 0.0, float(np.average(vs, weights=ws))
    elif offset < 0:
        gain, offset = float(np.sum(ws * xs * vs) / np.sum(ws * xs * xs)), 0.0
    return NoiseModel(float(gain), float(np.sqrt(offset)))
