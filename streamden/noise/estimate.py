"""Blind noise estimation, one module for every front door: a frame's level, its per-band
curve and per-pixel map, a Poisson-Gaussian fit for bursts, and the temporal smoother.

All estimates are built from the same block statistics (:func:`block_stats`): per colour
channel, blocks of 16x16 pixels with their mean, their clipped fraction, their texture
(Haar LH/HL energy) and their diagonal Haar coefficients (HH) at two scales.

* **Robust MAD of HH** (Donoho): the noise std is the median absolute HH coefficient over
  the least textured blocks, divided by 0.6745. Texture is measured in LH/HL, which for
  white noise are independent of HH, so choosing quiet blocks does not bias HH.
* **Two scales.** Compression (H.264, HEVC, JPEG) removes the finest band first, where the
  classic estimate reads; the level-2 band keeps the noise. Level 2 takes over where it
  reads clearly more than level 1 (:func:`_band_sigma`).
* **Per channel.** A camera's white balance and colour matrix amplify the channels
  unequally; the overall level is the RMS over the channels (what ``std(noisy - clean)``
  measures), not a pooled median, which reads the quietest channel.
* **No clipped blocks.** Noise on 8-bit video is clipped at 0 and 255, which shrinks it;
  blocks with more than 2% of their pixels at a limit are left out, unless too few remain.
* **No staircase.** 8-bit pixels put level-1 Haar coefficients on a grid of 0.5; the median
  is interpolated inside its grid cell (grouped-data median).
* **Signal-dependent noise.** Per intensity band of each channel the same estimate gives a
  curve, and :meth:`NoiseEstimate.noise_map` a per-pixel map; :func:`estimate_noise_model`
  fits ``var = gain * x + read**2`` (bursts).
* **Clipped channels.** Where a channel is mostly dark (or saturated) its noise is clipped at 0
  (255), which shrinks it and biases it upwards; the network takes one level for all three
  channels, and its correction of that bias scales with the level. A channel with more than
  30 % of its pixels clipped gets its own level, the std of the Gaussian noise that clipping
  would leave as the measured one (:func:`censored_level`), carried by :class:`NoiseLevel`;
  the network then runs a second time at it for that channel (``benchmarks/clipped_channels.py``:
  +2 to +5 dB on camera noise over a deep colour).
* **Failure.** A black, flat or saturated frame gives no estimate (:func:`estimate_level`
  returns None); :class:`SigmaTracker` keeps the last good level and says so once.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

MAD_TO_SIGMA = 1.0 / 0.6745     # MAD of a standard normal is 0.6745
_CLIP_LOW = 0.5                 # on the 0-255 scale: a value this close to a limit is clipped
_CLIP_HIGH = 254.5
_MIN_BLOCKS = 16                # never fewer blocks than this (fewer usable: the least clipped)
LEVEL2_KEEP = 1.0               # level 2 keeps this share of the blocks level 1 keeps
BLEND = (1.1, 1.3)              # level 2 takes over between these ratios to level 1
MIN_LEVEL = 0.5                 # an estimate below this (0-255) found no noise: a black or flat frame
CLIPPED_CHANNEL = 0.3           # a channel with more of its pixels at 0 or 255 is clipped (da_demo1's dark
                                # corners clip 14 % of its red at camera iso12800, where the overall level is right)
OWN_LEVEL = 1.15                # a clipped channel gets its own level only this far above the overall one


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


def _haar_levels(channels: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Two levels of the orthonormal Haar transform of ``(C, H, W)``: ``(LL1, LH1, HL1, HH1)`` and
    ``(LL2, LH2, HL2, HH2)`` (level 2 transforms LL1). White noise of sigma has sigma in every band."""
    h, w = channels.shape[1] // 2 * 2, channels.shape[2] // 2 * 2
    lh, hl, hh = _haar_details(channels)
    x = channels[:, :h, :w]
    ll = (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) * 0.5
    lh2, hl2, hh2 = _haar_details(ll)
    h2, w2 = ll.shape[1] // 2 * 2, ll.shape[2] // 2 * 2
    y = ll[:, :h2, :w2]
    ll2 = (y[:, 0::2, 0::2] + y[:, 0::2, 1::2] + y[:, 1::2, 0::2] + y[:, 1::2, 1::2]) * 0.5
    return (ll, lh, hl, hh), (ll2, lh2, hl2, hh2)


@dataclass
class BlockStats:
    """Per block of ``2 * block`` pixels of every channel: its mean level in [0, 1], the fraction of
    its pixels clipped at 0 or 255, its activity at Haar levels 1 and 2 (LH^2 + HL^2, which for
    white noise is independent of HH), and its HH coefficients at both levels."""

    mean: np.ndarray
    clipped: np.ndarray
    act1: np.ndarray
    act2: np.ndarray
    hh1: np.ndarray
    hh2: np.ndarray
    channel: np.ndarray         # the colour channel of each block
    step: float | None          # 0.5 on 8-bit input (Haar level-1 grid), else None


def block_stats(image: torch.Tensor | np.ndarray, block: int = 8, max_pixels: int = 1 << 20) -> BlockStats:
    """The block statistics every estimate here is made of (see :class:`BlockStats`).

    >>> block_stats(torch.rand(3, 64, 64)).mean.shape
    (48,)
    """
    channels, integral = _to_channels_255(image)
    if channels.shape[1] < 4 or channels.shape[2] < 4:
        raise ValueError(f"estimate_sigma: image too small ({channels.shape[1]}x{channels.shape[2]})")
    channels = _every_kth_block_row(channels, 2 * block, max_pixels)
    (ll, lh, hl, hh), (_, lh2, hl2, hh2) = _haar_levels(channels)
    size = max(2, min(block, hh.shape[1], hh.shape[2]) // 2 * 2)
    half = size // 2
    # Level-2 blocks must cover the same pixels: cut level 1 to whole level-2 cells first.
    nh, nw = min(hh.shape[1] // size, hh2.shape[1] // half), min(hh.shape[2] // size, hh2.shape[2] // half)
    cut1 = lambda x: x[:, : nh * size, : nw * size]                   # noqa: E731
    cut2 = lambda x: x[:, : nh * half, : nw * half]                   # noqa: E731
    clipped_px = ((channels <= _CLIP_LOW) | (channels >= _CLIP_HIGH)).view(np.uint8)
    return BlockStats(
        mean=_block_sums(cut1(ll), size) / float(size * size) / 2.0 / 255.0,
        clipped=_block_sums(clipped_px[:, : 2 * nh * size, : 2 * nw * size], 2 * size) / float(4 * size * size),
        act1=_block_sums(cut1(lh * lh + hl * hl), size),
        act2=_block_sums(cut2(lh2 * lh2 + hl2 * hl2), half),
        hh1=_blocks(cut1(hh), size),
        hh2=_blocks(cut2(hh2), half),
        channel=np.repeat(np.arange(channels.shape[0]), nh * nw),
        step=0.5 if integral else None,
    )


def _usable(stats: BlockStats, max_clipped: float, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the blocks (of ``among``, default all) not clipped; the least clipped ones when
    too few are left."""
    among = np.arange(stats.clipped.size) if among is None else among
    usable = among[stats.clipped[among] <= max_clipped]
    if usable.size < min(_MIN_BLOCKS, among.size):
        usable = among[np.argsort(stats.clipped[among], kind="stable")[: min(_MIN_BLOCKS, among.size)]]
    return usable


def _quiet(blocks: np.ndarray, activity: np.ndarray, keep: float) -> np.ndarray:
    count = max(int(math.ceil(keep * blocks.size)), min(_MIN_BLOCKS, blocks.size))
    return blocks[np.argsort(activity[blocks], kind="stable")[:count]]


def _band_sigma(stats: BlockStats, blocks: np.ndarray, keep: float) -> float:
    """Noise std of a set of blocks from the HH bands of Haar levels 1 and 2.

    Compression removes the finest band first: after x264 CRF 23-28 or JPEG q50 level 1
    reads 0.2-0.7 of the real level (measured on the validation clips) while level 2 keeps
    it. On white noise level 2 reads some 5-10 % high (texture leaks into it), so it takes
    over only where it reads clearly more than level 1 (blended between 1.1x and 1.3x).
    """
    s1, s2 = _scale_sigmas(stats, blocks, keep)
    ratio = s2 / max(s1, 1e-6)
    weight = min(1.0, max(0.0, (ratio - BLEND[0]) / (BLEND[1] - BLEND[0])))
    return (1.0 - weight) * s1 + weight * s2


def _scale_sigmas(stats: BlockStats, blocks: np.ndarray, keep: float) -> tuple[float, float]:
    """The noise std read from the HH band of Haar level 1 and of level 2, each over the ``keep``
    least textured of ``blocks`` (by that level's own texture)."""
    s1 = _median_abs(stats.hh1[_quiet(blocks, stats.act1, keep)], stats.step) * MAD_TO_SIGMA
    s2 = _median_abs(stats.hh2[_quiet(blocks, stats.act2, keep * LEVEL2_KEEP)], None) * MAD_TO_SIGMA
    return s1, s2


def scale_ratio(image: torch.Tensor | np.ndarray, keep: float = 0.3, max_clipped: float = 0.02) -> float:
    """The level-2 over the level-1 noise reading of one frame, channels pooled: about 1.0 on white
    noise, above it once a codec has emptied the finest band (1.1-3 after x264, 3.5-5 after JPEG
    q70; ``benchmarks/noise_estimate.py``). What tells the kind of noise, not its level.

    >>> g = torch.Generator().manual_seed(0)
    >>> flat = torch.full((3, 128, 128), 0.5)
    >>> 0.9 < scale_ratio((flat + torch.randn(flat.shape, generator=g) * 20 / 255).clamp(0, 1)) < 1.1
    True
    """
    stats = block_stats(image)
    s1, s2 = _scale_sigmas(stats, _usable(stats, max_clipped), keep)
    return float(s2 / max(s1, 1e-6))


class NoiseLevel(float):
    """A frame's noise level (0-255) as the network gets it: a float, the overall level that every
    front door smooths, scales and reports, which may also carry ``channels``, a level per colour
    channel where a clipped channel needs its own (see :func:`censored_level`); None otherwise.
    Arithmetic gives plain floats: whatever does not know the channels runs at the overall level.

    >>> level = NoiseLevel(20.0, (41.0, 20.0, 20.0))
    >>> float(level), level.scaled(0.5).channels, NoiseLevel(20.0).channels
    (20.0, (20.5, 10.0, 10.0), None)
    """

    channels: tuple[float, float, float] | None

    def __new__(cls, level: float, channels: Sequence[float] | None = None) -> "NoiseLevel":
        obj = super().__new__(cls, level)
        obj.channels = tuple(float(c) for c in channels) if channels is not None else None
        return obj

    def scaled(self, factor: float) -> "NoiseLevel":
        """This level and its channels times ``factor`` (``noise.strength``)."""
        return NoiseLevel(float(self) * factor, None if self.channels is None else [c * factor for c in self.channels])

    def __reduce__(self):
        return NoiseLevel, (float(self), self.channels)

    def __repr__(self) -> str:
        return f"NoiseLevel({float(self)!r}, {self.channels!r})"


def scaled_level(level: float, factor: float) -> float:
    """``level`` times ``factor`` (``noise.strength``), its per-channel levels too.

    >>> scaled_level(NoiseLevel(10.0, (20.0, 10.0, 10.0)), 2.0).channels, scaled_level(10.0, 2.0)
    ((40.0, 20.0, 20.0), 20.0)
    """
    return level.scaled(factor) if isinstance(level, NoiseLevel) else float(level) * factor


def level_to_json(level: float) -> float | list[float]:
    """``level`` for a JSON file (a resumable job's manifest): a number, or ``[overall, r, g, b]``
    where it carries per-channel levels; :func:`level_from_json` reads it back.

    >>> level_to_json(12.5), level_to_json(NoiseLevel(10.0, (30.0, 10.0, 10.0)))
    (12.5, [10.0, 30.0, 10.0, 10.0])
    >>> level_from_json([10.0, 30.0, 10.0, 10.0]).channels, level_from_json(12.5)
    ((30.0, 10.0, 10.0), 12.5)
    """
    own = channel_levels(level)
    return float(level) if own is None else [float(level), *own]


def level_from_json(value: float | Sequence[float]) -> float:
    """A level written by :func:`level_to_json` (a level itself passes through)."""
    if isinstance(value, (list, tuple)):
        return NoiseLevel(value[0], value[1:])
    return value if isinstance(value, NoiseLevel) else float(value)


def channel_levels(level: float | None) -> tuple[float, float, float] | None:
    """The per-channel levels ``level`` carries (a :class:`NoiseLevel`), or None (one level for all).

    >>> channel_levels(12.0) is None, channel_levels(NoiseLevel(12.0, (30.0, 12.0, 12.0)))
    (True, (30.0, 12.0, 12.0))
    """
    return getattr(level, "channels", None)


def censored_level(std: float, clipped: float) -> float:
    """The std of the Gaussian noise that, clipped at a limit on a ``clipped`` share of the pixels of
    a flat area, leaves noise of ``std``: for ``x ~ N(a, 1)`` with ``P(x < 0) = clipped``, ``std``
    over the std of ``max(x, 0)`` (a share above 0.49 counts as 0.49).

    >>> round(censored_level(10.0, 0.0), 2), round(censored_level(10.0, 0.1), 1), round(censored_level(10.0, 0.47), 1)
    (10.0, 10.9, 16.4)
    """
    clipped = min(max(clipped, 1e-6), 0.49)
    a = -NormalDist().inv_cdf(clipped)
    cdf, pdf = NormalDist().cdf(a), math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mean, second = a * cdf + pdf, (a * a + 1) * cdf + a * pdf
    return std / math.sqrt(max(second - mean * mean, 1e-12))


@dataclass
class NoiseEstimate:
    """The noise of one frame: its overall ``level`` (0-255: the std of the noise over the frame and
    its channels, what ``std(noisy - clean)`` measures) and, per colour channel, ``sigmas`` (0-255)
    in intensity bands centred at ``levels`` (in [0, 1]), for signal-dependent noise. ``ok`` is
    False when the frame told nothing (black, flat or saturated: no measurable noise).

    >>> e = NoiseEstimate(10.0, [np.array([0.2, 0.8])] * 3, [np.array([14.0, 6.0])] * 3)
    >>> e.sigma_at(np.array([0.2, 0.5, 0.8])).tolist()
    [14.0, 10.0, 6.0]
    """

    level: float
    levels: list[np.ndarray]
    sigmas: list[np.ndarray]
    ok: bool = True
    channel_sigmas: tuple[float, ...] = ()     # per channel: its overall level (0-255)
    clipped: tuple[float, ...] = ()            # per channel: the share of its pixels at 0 or 255

    def network_level(self) -> NoiseLevel:
        """The level the network gets: the overall one, and for each channel noisier than it and
        clipped on more than ``CLIPPED_CHANNEL`` of its pixels whose :func:`censored_level` is clearly
        above it, that level.

        >>> NoiseEstimate(10.0, [], [], channel_sigmas=(20.0, 8.0, 5.0), clipped=(0.45, 0.0, 0.0)).network_level().scaled(10)
        NoiseLevel(100.0, (319.3..., 100.0, 100.0))
        >>> NoiseEstimate(10.0, [], [], channel_sigmas=(14.0, 8.0, 5.0), clipped=(0.05, 0.0, 0.0)).network_level()
        NoiseLevel(10.0, None)
        """
        # Only a channel noisier than the overall level, as a camera's dark channel is after its gains
        # and gamma: clipped Gaussian noise, as the network was trained on, reads below it and is
        # best at the overall level (ta_sample4 at sigma 30: -0.8 dB at its censored level).
        own = [censored_level(s, c) if c > CLIPPED_CHANNEL and s > self.level else self.level
               for s, c in zip(self.channel_sigmas, self.clipped)]
        if not any(v > OWN_LEVEL * self.level for v in own):
            return NoiseLevel(self.level)
        return NoiseLevel(self.level, [v if v > OWN_LEVEL * self.level else self.level for v in own])

    def sigma_at(self, intensity: np.ndarray) -> np.ndarray:
        """Sigma (0-255, RMS over the channels) at intensities in [0, 1] of every channel."""
        if not self.levels:
            return np.full(np.shape(intensity), self.level)
        var = [np.interp(intensity, x, y) ** 2 for x, y in zip(self.levels, self.sigmas)]
        return np.sqrt(np.mean(var, axis=0))

    def noise_map(self, image: torch.Tensor, smooth: int = 8) -> torch.Tensor:
        """A per-pixel map ``(1, H, W)`` of sigma/255 for ``image`` ``(3, H, W)`` in [0, 1]: each
        channel's band sigma at its local mean (a ``smooth``-pixel box average), RMS over the channels.

        >>> e = NoiseEstimate(10.0, [np.array([0.0, 1.0])] * 3, [np.array([20.0, 0.0])] * 3)
        >>> round(float(e.noise_map(torch.full((3, 4, 4), 0.25))[0, 0, 0]) * 255, 3)
        15.0
        """
        import torch.nn.functional as F

        if len(self.levels) != image.shape[0]:
            return torch.full((1, *image.shape[-2:]), self.level / 255.0, device=image.device)
        signal = image.detach().float().unsqueeze(0)
        if smooth > 1 and min(signal.shape[-2:]) >= smooth:
            signal = F.avg_pool2d(F.pad(signal, (smooth // 2, (smooth - 1) // 2) * 2, mode="replicate"), smooth, 1)
        var = torch.zeros(signal.shape[-2:], device=signal.device)
        for c, (xs, ys) in enumerate(zip(self.levels, self.sigmas)):
            var += _interp(signal[0, c], xs, ys / 255.0) ** 2
        return (var / len(self.levels)).sqrt().unsqueeze(0).to(image.device)


def _interp(x: torch.Tensor, xs: np.ndarray, ys: np.ndarray) -> torch.Tensor:
    """Piecewise-linear ``np.interp`` on a tensor (constant beyond the ends)."""
    table_x = torch.as_tensor(np.asarray(xs, np.float32), device=x.device)
    table_y = torch.as_tensor(np.asarray(ys, np.float32), device=x.device)
    if table_x.numel() == 1:
        return torch.full_like(x, float(table_y[0]))
    x = x.clamp(float(table_x[0]), float(table_x[-1])).contiguous()
    idx = torch.searchsorted(table_x, x).clamp(1, table_x.numel() - 1)
    x0, x1, y0, y1 = table_x[idx - 1], table_x[idx], table_y[idx - 1], table_y[idx]
    return y0 + ((x - x0) / (x1 - x0).clamp_min(1e-9)).clamp(0, 1) * (y1 - y0)


def _bands(stats: BlockStats, blocks: np.ndarray, bins: int) -> list[np.ndarray]:
    """``blocks`` split into up to ``bins`` intensity bands of equal count (at least 2 * 16 blocks each)."""
    order = blocks[np.argsort(stats.mean[blocks], kind="stable")]
    count = max(1, min(bins, order.size // (2 * _MIN_BLOCKS)))
    return [g for g in np.array_split(order, count) if g.size]


def estimate_noise(image: torch.Tensor | np.ndarray, block: int = 8, keep: float = 0.3, bins: int = 4,
                   max_clipped: float = 0.02, max_pixels: int = 1 << 20) -> NoiseEstimate:
    """Estimate the noise of one frame, overall and per channel and intensity band, on the 0-255 scale.

    ``image`` is a ``(3, H, W)`` float tensor in [0, 1] or an ``(H, W, 3)`` uint8 array. Per
    channel, the ``keep`` least textured of the usable (unclipped) blocks give the noise std
    at Haar levels 1 and 2 (level 2 takes over where compression emptied level 1); the
    overall level is the RMS over the channels, so a channel the camera amplifies more (red,
    blue) counts as much as its noise does. For the per-pixel map, each channel's usable
    blocks are also split into ``bins`` intensity bands of equal count, each measured the same
    way on its own least textured blocks (a band without flat areas reads high, which is why
    the overall level does not come from the bands).

    >>> g = torch.Generator().manual_seed(0)
    >>> ramp = torch.linspace(0.2, 0.8, 128).repeat(3, 128, 1)
    >>> e = estimate_noise((ramp + torch.randn(ramp.shape, generator=g) * 20 / 255).clamp(0, 1))
    >>> abs(e.level - 20) < 2, e.ok
    (True, True)
    """
    stats = block_stats(image, block, max_pixels)
    levels, sigmas, variances = [], [], []
    for c in np.unique(stats.channel):
        usable = _usable(stats, max_clipped, np.flatnonzero(stats.channel == c))
        variances.append(_band_sigma(stats, usable, keep) ** 2)
        groups = _bands(stats, usable, bins)
        levels.append(np.array([float(stats.mean[g].mean()) for g in groups]))
        sigmas.append(np.array([_band_sigma(stats, g, keep) for g in groups]))
    level = float(np.sqrt(np.mean(variances)))
    clipped = tuple(float(stats.clipped[stats.channel == c].mean()) for c in np.unique(stats.channel))
    # Only "no measurable noise" fails: very strong noise clips most blocks of a frame, yet the
    # least clipped ones still read it (measured: camera iso12800 on a saturated blue scene).
    ok = bool(np.isfinite(level) and level >= MIN_LEVEL)
    return NoiseEstimate(level, levels, sigmas, ok, tuple(float(np.sqrt(v)) for v in variances), clipped)


def estimate_sigma(image: torch.Tensor | np.ndarray, block: int = 8, keep: float = 0.3,
                   max_clipped: float = 0.02, max_pixels: int = 1 << 20) -> float:
    """The overall noise level of one frame on the 0-255 scale (:func:`estimate_noise`'s ``level``).

    >>> g = torch.Generator().manual_seed(0)
    >>> flat = torch.full((3, 128, 128), 0.5)
    >>> noisy = (flat + torch.randn(flat.shape, generator=g) * 20 / 255).clamp(0, 1)
    >>> abs(estimate_sigma(noisy) - 20) < 1.5
    True
    """
    return estimate_noise(image, block, keep, max_clipped=max_clipped, max_pixels=max_pixels).level


def estimate_level(image: torch.Tensor | np.ndarray) -> NoiseLevel | None:
    """The noise level (0-255) of one frame as the network gets it (:meth:`NoiseEstimate.network_level`:
    the overall level, and the own level of a clipped channel), or None when the frame tells
    nothing (black, flat or saturated; see :class:`NoiseEstimate`). Front doors feed it to a
    :class:`SigmaTracker`, which keeps the last good level for such frames.

    >>> estimate_level(torch.zeros(3, 64, 64)) is None
    True
    """
    estimate = estimate_noise(image)
    return estimate.network_level() if estimate.ok else None


class SigmaTracker:
    """Exponential moving average of per-frame sigma estimates, so the noise map does not flicker.

    ``smoothing`` is the weight of the past: 0 follows every estimate, 0.9 averages over about
    ten frames. The first value after construction or :meth:`reset` is taken as is. A failed
    estimate (None or not finite: a black or flat frame) keeps the last good level, and the
    first such frame says so once in the log (0 before any good level). :meth:`summary`
    reports the levels used, for ``--stats``.

    A :class:`NoiseLevel` with per-channel levels is smoothed the same way: the overall level,
    and each channel's ratio to it (1 for a frame without its own levels), so a clipped channel's
    own level fades in and out with the footage instead of switching.

    >>> tracker = SigmaTracker(smoothing=0.5)
    >>> tracker.update(10.0), tracker.update(20.0), tracker.update(None)
    (10.0, 15.0, 15.0)
    >>> tracker.summary()
    'noise level (0-255) min 10.0, mean 13.3, max 15.0 over 3 frames; 1 frame(s) without a usable estimate kept the last good level'
    """

    def __init__(self, smoothing: float = 0.9):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"SigmaTracker: smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.value: float | None = None
        self.ratios: np.ndarray | None = None    # per-channel level over the overall one, smoothed
        self.failed = 0                      # frames whose estimate failed
        self._count, self._sum = 0, 0.0      # the levels used (for summary(); live runs for days)
        self._min, self._max = math.inf, -math.inf
        self._own = 0                        # frames given per-channel levels

    def update(self, sigma: float | None) -> float:
        """Fold one estimate in (None: it failed) and return the smoothed sigma (a :class:`NoiseLevel`
        while any channel's smoothed level is its own).

        >>> tracker = SigmaTracker(smoothing=0.5)
        >>> tracker.update(NoiseLevel(10.0, (30.0, 10.0, 10.0))).channels
        (30.0, 10.0, 10.0)
        >>> tracker.update(NoiseLevel(10.0)).channels, tracker.update(12.0).channels
        ((20.0, 10.0, 10.0), (16.5, 11.0, 11.0))
        """
        if sigma is None or not math.isfinite(float(sigma)):
            self.failed += 1
            if self.failed == 1:
                held = "the last good level" if self.value is not None else "sigma 0 until a frame shows noise"
                log.warning("noise estimate failed on a black, flat or saturated frame; keeping %s "
                            "(said once)", f"{held} {self.value:.1f}" if self.value is not None else held)
            level = self.value if self.value is not None else 0.0
        else:
            self._fold_ratios(sigma)
            self.value = float(sigma) if self.value is None else \
                self.smoothing * self.value + (1.0 - self.smoothing) * float(sigma)
            level = self.value
        return self._used(level)

    def _fold_ratios(self, sigma: float) -> None:
        """Smooth each channel's level over the overall one (1 where ``sigma`` has no own levels);
        nothing to keep while no frame had any, the common case."""
        own = channel_levels(sigma)
        if own is None and self.ratios is None:
            return
        ratios = np.ones(3) if own is None or float(sigma) <= 0 else np.asarray(own, np.float64) / float(sigma)
        fresh = self.ratios is None or self.value is None
        self.ratios = ratios if fresh else self.smoothing * self.ratios + (1.0 - self.smoothing) * ratios

    def state(self) -> float | list[float] | None:
        """What :meth:`restore` needs to go on smoothing where this tracker stopped (a resumable
        job's next segment): the smoothed level, with the channels' ratios where it has any (JSON).

        >>> tracker = SigmaTracker(0.5); _ = tracker.update(NoiseLevel(10.0, (20.0, 10.0, 10.0)))
        >>> other = SigmaTracker(0.5); other.restore(tracker.state())
        >>> other.update(10.0).channels == tracker.update(10.0).channels
        True
        """
        if self.value is None or self.ratios is None:
            return self.value
        return [self.value, *(float(r) for r in self.ratios)]

    def restore(self, state: float | Sequence[float] | None) -> None:
        """Continue from a :meth:`state` (None: from the start)."""
        if state is None or isinstance(state, (int, float)):
            self.value, self.ratios = state, None
        else:
            self.value, self.ratios = float(state[0]), np.asarray(state[1:], np.float64)

    def hold(self) -> float:
        """The current level, for a frame that was not estimated (live reads one frame in a few);
        counted in :meth:`summary` as a level used. Before any estimate: 0.

        >>> tracker = SigmaTracker(0.5); tracker.update(12.0); tracker.hold()
        12.0
        12.0
        """
        return self._used(self.value if self.value is not None else 0.0)

    def _used(self, level: float) -> float:
        """Count ``level`` as the level of one frame (for :meth:`summary`) and return it, with the
        smoothed channel levels where any is above the overall one."""
        level = float(level)
        self._count, self._sum = self._count + 1, self._sum + level
        self._min, self._max = min(self._min, level), max(self._max, level)
        if self.ratios is not None and bool((self.ratios > 1.0 + 1e-6).any()):
            self._own += 1
            return NoiseLevel(level, [level * float(r) for r in self.ratios])
        return level

    def reset(self) -> None:
        """Forget the history (a scene cut or a new stream); the summary keeps counting."""
        self.value = None
        self.ratios = None

    def summary(self) -> str:
        """One line: min, mean and max of the levels used, and how many frames fell back."""
        if not self._count:
            return "noise level: no frames"
        line = (f"noise level (0-255) min {self._min:.1f}, mean {self._sum / self._count:.1f}, "
                f"max {self._max:.1f} over {self._count} frames")
        if self._own:
            line += f"; {self._own} frame(s) gave a clipped colour channel its own level"
        if self.failed:
            line += f"; {self.failed} frame(s) without a usable estimate kept the last good level"
        return line


@dataclass(frozen=True)
class NoiseModel:
    """Poisson-Gaussian noise ``var(x) = gain * x + read**2`` on the [0, 1] scale (``read`` is a std),
    as low-light photos carry it (shot noise plus read noise); ``gain = 0`` is Gaussian noise.

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


def estimate_noise_model(image: torch.Tensor, block: int = 8, bins: int = 12, keep: float = 0.3,
                         max_pixels: int = 1 << 22) -> NoiseModel:
    """Fit a Poisson-Gaussian :class:`NoiseModel` to one noisy ``(3, H, W)`` frame in [0, 1] (bursts).

    The usual recipe (Foi et al. 2008, simplified) on the block statistics of
    :func:`block_stats`: the channels' unclipped blocks are binned by intensity, the least
    textured blocks of each bin give its noise variance (level-1 HH), and the line
    ``var = gain * mean + read**2`` is fitted to the bins by weighted least squares with
    both terms kept non-negative.

    >>> g = torch.Generator().manual_seed(0)
    >>> clean = torch.linspace(0.05, 0.95, 256).repeat(3, 256, 1)
    >>> noisy = clean + torch.randn(clean.shape, generator=g) * (0.01 * clean + 0.0004).sqrt()
    >>> m = estimate_noise_model(noisy)
    >>> round(m.gain, 2), round(m.read, 2)
    (0.01, 0.02)
    """
    stats = block_stats(image, block, max_pixels)
    usable = _usable(stats, 0.0)
    xs, vs, ws = [], [], []
    for group in np.array_split(usable[np.argsort(stats.mean[usable], kind="stable")], bins):
        if group.size < 4:
            continue
        quiet = group[np.argsort(stats.act1[group], kind="stable")[: max(4, int(np.ceil(keep * group.size)))]]
        sigma = np.median(np.abs(stats.hh1[quiet])) * MAD_TO_SIGMA / 255.0
        xs.append(stats.mean[quiet].mean())
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
