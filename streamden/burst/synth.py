"""Synthetic night bursts from a clean photo, for tests and benchmarks.

A burst is hand-held: each frame sees the scene through a small random homography (a
rotation, a shift, a touch of zoom and perspective) around the image centre. One object
moves independently: a patch cut from the scene itself, pasted at a position that slides
across the frame from shot to shot. Every frame then gets Poisson-Gaussian low-light noise
(variance ``gain * x + read**2``, clipped to [0, 1]). The ground truth is the reference
frame before noise, object included.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["NightBurst", "make_night_burst", "shake_homography"]


@dataclass
class NightBurst:
    """A synthetic burst: noisy frames, the clean reference, and where the object went."""

    noisy: np.ndarray          # (N, H, W, 3) float32 in [0, 1]
    clean: np.ndarray          # (N, H, W, 3) float32: every frame before noise
    reference: int             # index of the frame the result is compared with
    object_mask: np.ndarray    # (H, W) bool: every pixel the object covers in any frame
    gain: float                # Poisson part: variance gain * x
    read: float                # Gaussian part (std, [0, 1] units)

    @property
    def truth(self) -> np.ndarray:
        """The clean reference frame ``(H, W, 3)``."""
        return self.clean[self.reference]


def shake_homography(size: tuple[int, int], rng: np.random.Generator, shift: float = 4.0,
                     angle: float = 0.6, zoom: float = 0.01, tilt: float = 2e-5) -> np.ndarray:
    """A random hand-shake homography for an image of ``size`` ``(H, W)``, about its centre.

    ``shift`` is in pixels, ``angle`` in degrees, ``zoom`` a relative scale, ``tilt`` the
    perspective terms (per pixel). All are standard deviations.

    >>> shake_homography((64, 64), np.random.default_rng(0)).shape
    (3, 3)
    """
    h, w = size
    a = np.deg2rad(rng.normal(0, angle))
    s = 1.0 + rng.normal(0, zoom)
    m = np.array([[s * np.cos(a), -s * np.sin(a), rng.normal(0, shift)],
                  [s * np.sin(a), s * np.cos(a), rng.normal(0, shift)],
                  [rng.normal(0, tilt), rng.normal(0, tilt), 1.0]])
    centre = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1.0]])
    return centre @ m @ np.linalg.inv(centre)


def make_night_burst(clean: np.ndarray, frames: int = 8, *, sigma: float = 30.0, read: float = 6.0,
                     reference: int | None = None, object_size: float = 0.22, object_speed: float = 0.045,
                     shift: float | None = None, seed: int = 0) -> NightBurst:
    """A hand-held burst of ``frames`` shots of ``clean`` (``(H, W, 3)`` uint8 or float in [0, 1]).

    ``sigma`` is the noise std at mid-grey on the 0-255 scale (Poisson part plus ``read``,
    the read-noise std on the same scale). The object is a square of ``object_size`` times
    the short side that moves ``object_speed`` times the width per frame. ``shift`` is the
    std of the hand-shake translation in pixels (default 1.5% of the short side).

    >>> img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    >>> burst = make_night_burst(img, frames=3)
    >>> burst.noisy.shape, burst.object_mask.any()
    ((3, 64, 64, 3), np.True_)
    """
    rng = np.random.default_rng(seed)
    image = clean.astype(np.float32) / 255.0 if clean.dtype == np.uint8 else clean.astype(np.float32)
    h, w = image.shape[:2]
    ref = frames // 2 if reference is None else reference
    shift = 0.015 * min(h, w) if shift is None else shift
    side = max(4, int(object_size * min(h, w)))
    # The object: a patch from elsewhere in the scene, flipped so it does not match the background.
    py, px = rng.integers(0, h - side), rng.integers(0, w - side)
    patch = image[py:py + side, px:px + side][::-1, ::-1].copy()
    y0 = int(rng.integers(h // 4, max(h // 4 + 1, 3 * h // 4 - side)))
    step = object_speed * w
    x_start = (w - side) / 2 - step * (frames - 1) / 2
    shots, mask = [], np.zeros((h, w), bool)
    for k in range(frames):
        hom = np.eye(3) if k == ref else shake_homography((h, w), rng, shift=shift)
        shot = cv2.warpPerspective(image, hom, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT)
        x0 = int(round(np.clip(x_start + k * step, 0, w - side)))
        shot[y0:y0 + side, x0:x0 + side] = patch
        mask[y0:y0 + side, x0:x0 + side] = True
        shots.append(np.clip(shot, 0, 1))
    clean_shots = np.stack(shots)
    read01 = read / 255.0
    gain = max(((sigma / 255.0) ** 2 - read01 ** 2) / 0.5, 0.0)
    std = np.sqrt(gain * clean_shots + read01 ** 2)
    noisy = np.clip(clean_shots + rng.standard_normal(clean_shots.shape).astype(np.float32) * std, 0, 1)
    return NightBurst(noisy.astype(np.float32), clean_shots, ref, mask, float(gain), float(read01))
