"""Blind estimation of the level of additive white Gaussian noise in a frame.

The estimator is Donoho's: the median absolute deviation of the finest diagonal wavelet
band (HH of a one-level Haar transform) divided by 0.6745. Three things make it robust on
real footage:

* **Per channel, pooled.** Video noise is added to each RGB channel independently; averaging
  to luma would shrink it by ``sqrt(0.299**2 + 0.587**2 + 0.114**2)``. The three channels are
  analysed separately and their coefficients pooled.
* **Smooth blocks only.** Texture leaks into HH and biases the estimate upward at low
  sigma. Each channel is cut into blocks; a block's activity is measured in the LH and HL
  bands, which for white noise are independent of HH (the Haar transform is orthonormal),
  so choosing the least active blocks does not bias the HH statistics that follow. Only the
  ``keep`` least active fraction of the blocks contributes to the MAD.
* **No clipped blocks.** Noise on 8-bit video is clipped at 0 and 255, which shrinks it in
  dark and bright areas; blocks with more than 2% of their pixels at either limit (about
  2 sigma from it) are left out, unless that leaves too few.
* **No staircase.** 8-bit pixels put the Haar coefficients on a grid of 0.5; the median is
  interpolated inside its grid cell (grouped-data median) so the estimate moves smoothly.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

MAD_TO_SIGMA = 1.0 / 0.6745     # MAD of a standard normal is 0.6745
_CLIP_LOW = 0.5                 # on the 0-255 scale: a value this close to a limit is clipped
_CLIP_HIGH = 254.5
_MIN_BLOCKS = 16                # never fewer blocks than this (fewer usable: the least clipped)


def _to_channels_255(image: torch.Tensor | np.ndarray) -> tuple[np.ndarray, bool]:
    """``(C, H, W)`` float32 on the 0-255 scale, and whether the values are whole numbers (8-bit).

    Accepts a ``(3, H, W)`` tensor in [0, 1] or an ``(H, W, 3)`` array (uint8, or float in [0, 1]).
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"estimate_sigma: expected a (3, H, W) tensor, got {tuple(image.shape)}")
        channels = image.detach().to("cpu", torch.float32).numpy() * np.float32(255.0)
    else:
        array = np.asarray(image)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] not in (1, 3):
            raise ValueError(f"estimate_sigma: expected an (H, W, 3) array, got {array.shape}")
        if array.dtype == np.uint8:
            return np.ascontiguousarray(np.moveaxis(array, 2, 0), dtype=np.float32), True
        channels = np.ascontiguousarray(np.moveaxis(array, 2, 0), dtype=np.float32) * np.float32(255.0)
    # Float frames decoded from 8-bit video hold k/255: a strided sample tells (checking
    # every value would cost more than the estimate itself on a 1080p frame).
    sample = channels.reshape(-1)[:: max(1, channels.size // 65536)]
    return channels, bool(np.all(np.abs(sample - np.round(sample)) < 1e-3))


def _haar_details(channels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detail bands LH, HL, HH ``(C, H/2, W/2)`` of a one-level orthonormal Haar transform of ``(C, H, W)``.

    With ``a b / c d`` the pixels of a 2x2 cell: LH = (a + b - c - d) / 2, HL = (a - b + c - d) / 2,
    HH = (a - b - c + d) / 2. The four bands (with LL) are orthonormal, so white noise of
    sigma gives each band independent noise of the same sigma.
    """
    h, w = channels.shape[1] // 2 * 2, channels.shape[2] // 2 * 2
    top, bottom = channels[:, 0:h:2, :w], channels[:, 1:h:2, :w]
    rows_sum, rows_diff = top + bottom, top - bottom
    lh = (rows_diff[:, :, 0::2] + rows_diff[:, :, 1::2]) * 0.5   # a + b - c - d
    hl = (rows_sum[:, :, 0::2] - rows_sum[:, :, 1::2]) * 0.5     # a - b + c - d
    hh = (rows_diff[:, :, 0::2] - rows_diff[:, :, 1::2]) * 0.5   # a - b - c + d
    return lh, hl, hh


def _blocks(band: np.ndarray, size: int) -> np.ndarray:
    """Cut ``(C, h, w)`` into non-overlapping ``size x size`` blocks: ``(C * nh * nw, size * size)``."""
    c, h, w = band.shape
    nh, nw = h // size, w // size
    x = band[:, : nh * size, : nw * size].reshape(c, nh, size, nw, size)
    return x.transpose(0, 1, 3, 2, 4).reshape(c * nh * nw, size * size)


def _block_sums(x: np.ndarray, size: int) -> np.ndarray:
    """Sum over each ``size x size`` block of ``(C, h, w)``, in the block order of :func:`_blocks`."""
    c, h, w = x.shape
    nh, nw = h // size, w // size
    return x[:, : nh * size, : nw * size].reshape(c, nh, size, nw, size).sum(axis=(2, 4)).reshape(-1)


def _every_kth_block_row(channels: np.ndarray, rows: int, max_pixels: int) -> np.ndarray:
    """Keep every k-th band of ``rows`` pixel rows so that at most about ``max_pixels`` remain."""
    c, h, w = channels.shape
    k = math.ceil(h * w / max_pixels)
    bands = h // rows
    if k <= 1 or bands < 2 * k:
        return channels
    kept = channels[:, : bands * rows].reshape(c, bands, rows, w)[:, ::k]
    return kept.reshape(c, -1, w)


def _median_abs(values: np.ndarray, step: float | None) -> float:
    """Median of ``|values|``; when the values sit on a grid of ``step``, the grouped-data median.

    8-bit pixels put Haar coefficients on a grid of 0.5, so the plain median moves in steps
    of about 7% of sigma at sigma 10; interpolating inside the median's grid cell removes
    that staircase.
    """
    magnitudes = np.abs(values).ravel()
    median = float(np.median(magnitudes))
    if step is None:
        return median
    grid = np.round(magnitudes / step)
    centre = float(np.round(median / step))
    below = int((grid < centre).sum())
    inside = int((grid == centre).sum())
    if inside == 0:
        return median
    low = max(0.0, (centre - 0.5) * step)       # the cell of 0 is half a cell wide: |x| >= 0
    width = centre * step + 0.5 * step - low
    return low + (0.5 * magnitudes.size - below) / inside * width


def estimate_sigma(image: torch.Tensor | np.ndarray, block: int = 8, keep: float = 0.3,
                   max_clipped: float = 0.02, max_pixels: int = 1 << 20) -> float:
    """Estimate the standard deviation of additive white Gaussian noise, on the 0-255 scale.

    ``image`` is a ``(3, H, W)`` float tensor in [0, 1] or an ``(H, W, 3)`` uint8 array.
    Noise is measured per RGB channel and pooled (no luma averaging, which would shrink it).
    ``block`` is the block side in Haar coefficients (``2 * block`` pixels); ``keep`` is the
    fraction of least textured blocks whose HH coefficients enter the MAD; blocks with more
    than ``max_clipped`` of their pixels at 0 or 255 are left out. Frames above
    ``max_pixels`` are analysed on every k-th row of blocks (whole rows of pixels, so the
    noise statistics are untouched; a 1080p frame reads every second row of blocks).

    >>> g = torch.Generator().manual_seed(0)
    >>> flat = torch.full((3, 128, 128), 0.5)
    >>> noisy = (flat + torch.randn(flat.shape, generator=g) * 20 / 255).clamp(0, 1)
    >>> abs(estimate_sigma(noisy) - 20) < 1.5
    True
    """
    channels, integral = _to_channels_255(image)
    if channels.shape[1] < 2 or channels.shape[2] < 2:
        raise ValueError(f"estimate_sigma: image too small ({channels.shape[1]}x{channels.shape[2]})")
    step = 0.5 if integral else None   # whole-number pixels put Haar coefficients on a grid of 0.5
    channels = _every_kth_block_row(channels, 2 * block, max_pixels)
    lh, hl, hh = _haar_details(channels)
    size = max(1, min(block, hh.shape[1], hh.shape[2]))
    hh_blocks = _blocks(hh, size)
    activity = _block_sums(lh * lh + hl * hl, size)

    # Clipping at 0 and 255 shrinks the noise; the fraction of a block's pixels sitting at a
    # limit measures how close the block is to it (2% clipped: about 2 sigma away, where the
    # MAD is still within about 2% of the truth).
    clipped_px = ((channels <= _CLIP_LOW) | (channels >= _CLIP_HIGH)).view(np.uint8)
    clipped = _block_sums(clipped_px, 2 * size) / float(4 * size * size)
    candidates = np.flatnonzero(clipped <= max_clipped)
    if candidates.size < min(_MIN_BLOCKS, clipped.size):
        candidates = np.argsort(clipped, kind="stable")[: min(_MIN_BLOCKS, clipped.size)]

    count = max(int(math.ceil(keep * candidates.size)), min(_MIN_BLOCKS, candidates.size))
    smoothest = candidates[np.argsort(activity[candidates], kind="stable")[:count]]
    return _median_abs(hh_blocks[smoothest], step) * MAD_TO_SIGMA


class SigmaTracker:
    """Exponential moving average of per-frame sigma estimates, so the noise map does not flicker.

    ``smoothing`` is the weight of the past: 0 follows every estimate, 0.9 averages over about
    ten frames. The first value after construction or :meth:`reset` is taken as is.

    >>> tracker = SigmaTracker(smoothing=0.5)
    >>> tracker.update(10.0), tracker.update(20.0)
    (10.0, 15.0)
    """

    def __init__(self, smoothing: float = 0.9):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"SigmaTracker: smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.value: float | None = None

    def update(self, sigma: float) -> float:
        """Fold one estimate in and return the smoothed sigma."""
        sigma = float(sigma)
        if self.value is None:
            self.value = sigma
        else:
            self.value = self.smoothing * self.value + (1.0 - self.smoothing) * sigma
        return self.value

    def reset(self) -> None:
        """Forget the history (a scene cut or a new stream)."""
        self.value = None


def temporal_correlation(frames: Sequence[torch.Tensor], nexts: Sequence[torch.Tensor],
                         masks: Sequence[torch.Tensor], block: int = 8, keep: float = 0.3) -> float | None:
    """The correlation of the noise of consecutive frames, or None when it cannot be measured.

    ``frames[i]`` is a frame ``(3, H, W)`` in [0, 1], ``nexts[i]`` its neighbour moved onto it
    without interpolation (a whole-pixel warp: interpolation would smooth the noise and read
    as correlation), ``masks[i]`` ``(1, H, W)`` 1 where that alignment is trusted. With noise
    ``n`` of correlation ``rho`` from frame to frame, the difference ``next - frame`` carries
    ``sqrt(2 (1 - rho))`` times the noise of one frame, so ``rho = 1 - (s_diff / s_frame)^2 / 2``,
    both measured as in :func:`estimate_sigma` (finest diagonal Haar band, on the least
    textured fully trusted blocks). Independent noise reads about 0; a temporal filter
    applied to the video (frames averaged with their predecessors) reads well above it.

    >>> g = torch.Generator().manual_seed(0)
    >>> clean = torch.full((3, 128, 128), 0.5)
    >>> noise = [torch.randn(3, 128, 128, generator=g) * 0.08 for _ in range(3)]
    >>> ones = torch.ones(1, 128, 128)
    >>> abs(temporal_correlation([clean + noise[0]], [clean + noise[1]], [ones])) < 0.15
    True
    >>> filtered = [clean + noise[0], clean + 0.5 * noise[0] + 0.87 * noise[1]]
    >>> temporal_correlation([filtered[0]], [filtered[1]], [ones]) > 0.3
    True
    """
    frame_hh, diff_hh = [], []
    integral = True
    for frame, nxt, mask in zip(frames, nexts, masks):
        channels, whole = _to_channels_255(frame)
        diff, _ = _to_channels_255((nxt - frame + 1.0) * 0.5)   # kept in [0, 1] for the converter
        integral &= whole
        if channels.shape[1] < 4 * block or channels.shape[2] < 4 * block:
            continue
        lh, hl, hh = _haar_details(channels)
        _, _, dhh = _haar_details(diff * 2.0)
        size = block
        bad = _block_sums((mask.detach().cpu().numpy() < 0.5).astype(np.float32), 2 * size)   # one channel
        activity = _block_sums(lh * lh + hl * hl, size).reshape(3, -1).sum(0)
        usable = np.flatnonzero(bad == 0)
        if usable.size == 0:
            continue
        count = max(1, int(math.ceil(keep * usable.size)))
        chosen = usable[np.argsort(activity[usable], kind="stable")[:count]]
        per_channel = hh.shape[1] // size * (hh.shape[2] // size)
        rows = np.concatenate([chosen + c * per_channel for c in range(3)])
        frame_hh.append(_blocks(hh, size)[rows])
        diff_hh.append(_blocks(dhh, size)[rows])
    if not frame_hh or sum(b.shape[0] for b in frame_hh) < _MIN_BLOCKS:
        return None
    step = 0.5 if integral else None
    s_frame = _median_abs(np.concatenate(frame_hh), step)
    s_diff = _median_abs(np.concatenate(diff_hh), step)
    if s_frame * MAD_TO_SIGMA < 0.5:       # next to no noise: nothing to measure
        return None
    return float(np.clip(1.0 - 0.5 * (s_diff / s_frame) ** 2, -1.0, 1.0))
