"""Dense pyramidal Lucas-Kanade optical flow with iterative warping: the CUDA flow estimator.

Why Lucas-Kanade rather than DIS on the GPU: at each iteration every pixel is independent
(warp the moving frame at its current flow, Gaussian-weighted sums of gradient products,
a 2x2 solve), so the whole estimator is a handful of small data-parallel kernels with no
inter-thread communication beyond a separable blur. DIS needs a sparse grid of patches,
per-patch inverse search and then a densification that scatters every patch's flow onto the
pixels it covers with weights (atomics or a sort), plus a variational refinement solved by
SOR: irregular memory access and many dependent launches, for no accuracy gain at the
displacements a video window has once a pyramid is in place.

The algorithm, per pyramid level from coarse to fine: upsample the flow x2; compute the
reference's gradients; then ``iters`` times: warp the moving frame by the flow, form the
per-pixel terms of the LK normal equations weighted by a robust (Cauchy) function of the
brightness residual, sum them over a Gaussian window (wider at coarser levels, so flat regions
inherit the motion of textured surroundings), solve ``(T + reg I) du = -b`` per pixel (the
Tikhonov term ``reg`` keeps the coarse estimate where the image is flat), add ``du``, and take
a 3x3 median of the flow (removes outliers from noise and occlusions without blurring motion
boundaries). The robust weight matters at motion boundaries: pixels of the other motion
inside the window stop pulling the estimate towards theirs.

Every step is a function here with a pure torch reference (``*_torch``) and a CUDA kernel
in ``kernels/flow.cu`` with the same signature (``streamden.cuda.ops.<name>_cuda``); one
driver, :func:`lk_flow_with`, runs the same algorithm on either set.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .warp import warp_torch
from ..cuda.module import use_kernels

# The 5-tap binomial kernel of the classic Gaussian pyramid (Burt & Adelson).
BINOMIAL5 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


@dataclass(frozen=True)
class LKParams:
    """Tuning of :func:`lk_flow_torch` (defaults tuned on the train split's known-flow pairs).

    ``prefilter``: Gaussian sigma (px) applied to both frames first (0: off).
    ``levels``: the most pyramid levels; fewer when the coarsest side would drop below
    ``min_size``. ``iters``: warping iterations per level. ``window``: sigma (px) of the
    Gaussian integration window at full resolution, times ``window_growth`` per coarser level
    (at least 1). ``reg``: Tikhonov weight (luma in [0, 1]).
    ``max_step``: the largest update (px, per component) of one iteration.
    ``robust``: scale of the Cauchy weight on the brightness residual (0: plain least squares).
    ``finest``: the finest level estimated (1 stops at half resolution and upsamples).
    """

    prefilter: float = 1.0
    levels: int = 6
    min_size: int = 24
    iters: int = 2
    window: float = 6.0
    reg: float = 1e-7
    max_step: float = 1.0
    robust: float = 0.05
    window_growth: float = 1.5
    finest: int = 0


def gaussian_weights(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``(2r + 1,)`` float32 with radius ``r = ceil(3 sigma)``.

    >>> w = gaussian_weights(1.0); w.shape, round(float(w.sum()), 6)
    (torch.Size([7]), 1.0)
    """
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).float()


def gaussian_blur_torch(image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Separable blur of ``(N, C, H, W)`` float32 by 1-D ``weights`` (odd length), replicated border.

    Rows first, then columns: the weighted sum the kernel computes. Each pass pads with the
    edge pixels and multiplies tiles of the signal by one banded matrix: on a CPU that is far
    faster than ``conv2d`` with a long, thin kernel.

    >>> gaussian_blur_torch(torch.ones(1, 2, 5, 6), gaussian_weights(1.5)).allclose(torch.ones(1, 2, 5, 6))
    True
    """
    rows = _blur_last(image, weights)
    return _blur_last(rows.transpose(-1, -2), weights).transpose(-1, -2).contiguous()


_TILE = 128


def _blur_last(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Blur along the last dimension with replicated ends."""
    size = x.shape[-1]
    r = (weights.numel() - 1) // 2
    tiles = -(-size // _TILE)
    flat = x.reshape(-1, 1, size)
    padded = F.pad(flat, (r, r + tiles * _TILE - size), mode="replicate").reshape(*x.shape[:-1], -1)
    windows = padded.unfold(-1, _TILE + 2 * r, _TILE)                     # (..., tiles, TILE + 2r)
    out = torch.matmul(windows, _band(weights, x.device, x.dtype))        # (..., tiles, TILE)
    return out.reshape(*x.shape[:-1], tiles * _TILE)[..., :size]


def _band(weights: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(TILE + 2r, TILE)`` with column ``j`` holding the taps at rows ``j .. j + 2r``."""
    k = weights.numel()
    band = torch.zeros(_TILE + k - 1, _TILE, dtype=torch.float32)
    cols = torch.arange(_TILE).view(1, -1)
    band[cols + torch.arange(k).view(-1, 1), cols.expand(k, -1)] = weights.float().cpu().view(-1, 1)
    return band.to(device, dtype)


def pyr_down_torch(image: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, ceil(H/2), ceil(W/2))``: 5-tap binomial blur, keep even pixels.

    Coarse pixel ``i`` sits at fine position ``2 i`` (see :func:`flow_upsample2_torch`).

    >>> pyr_down_torch(torch.ones(1, 1, 7, 8)).shape
    torch.Size([1, 1, 4, 4])
    """
    return gaussian_blur_torch(image, torch.tensor(BINOMIAL5))[..., ::2, ::2].contiguous()


def flow_upsample2_torch(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Coarse flow ``(N, 2, h, w)`` -> ``(N, 2, height, width)``: bilinear at ``(x/2, y/2)``, times 2.

    >>> flow_upsample2_torch(torch.ones(1, 2, 2, 2), 3, 4)[0, 0].tolist()
    [[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]]
    """
    _, _, h, w = flow.shape
    ys = (torch.arange(height, device=flow.device, dtype=flow.dtype) * 0.5).clamp(max=h - 1)
    xs = (torch.arange(width, device=flow.device, dtype=flow.dtype) * 0.5).clamp(max=w - 1)
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    wy = (ys - y0).view(1, 1, -1, 1)
    wx = (xs - x0).view(1, 1, 1, -1)
    top, bottom = flow.index_select(2, y0), flow.index_select(2, y1)
    top = top.index_select(3, x0) * (1 - wx) + top.index_select(3, x1) * wx
    bottom = bottom.index_select(3, x0) * (1 - wx) + bottom.index_select(3, x1) * wx
    return ((top * (1 - wy) + bottom * wy) * 2.0).contiguous()


def lk_gradients_torch(ref: torch.Tensor) -> torch.Tensor:
    """Central-difference gradients ``(N, 2, H, W)`` = (Ix, Iy) of luma ``(N, 1, H, W)``, replicated border.

    >>> lk_gradients_torch(torch.arange(4.0).repeat(1, 1, 3, 1))[0, :, 1].tolist()
    [[0.5, 1.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]]
    """
    p = F.pad(ref, (1, 1, 1, 1), mode="replicate")
    ix = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    iy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return torch.cat([ix, iy], 1)


def lk_system_torch(grad: torch.Tensor, ref: torch.Tensor, moving: torch.Tensor, flow: torch.Tensor,
                    robust: float) -> torch.Tensor:
    """Per-pixel terms of the weighted LK system ``(N, 5, H, W)``: ``r * (Ix Ix, Ix Iy, Iy Iy, Ix It, Iy It)``.

    ``It = warp(moving, flow) - ref``; the robust weight ``r = 1 / (1 + It^2 / robust^2)``
    (Cauchy; 1 when ``robust`` is 0) discounts pixels that do not fit the motion of their
    window (the other side of a motion boundary, occlusions). ``r`` is 0 where the match
    ``x + flow`` leaves the frame: the warp only sees a replicated border there, whose
    residual would push the flow further out at every iteration.

    >>> still = torch.rand(1, 1, 5, 5)
    >>> float(lk_system_torch(torch.ones(1, 2, 5, 5), still, still, torch.zeros(1, 2, 5, 5), 0.05)[:, 3:].abs().max())
    0.0
    """
    _, _, h, w = ref.shape
    xs = torch.arange(w, device=ref.device, dtype=flow.dtype).view(1, 1, 1, w) + flow[:, 0:1]
    ys = torch.arange(h, device=ref.device, dtype=flow.dtype).view(1, 1, h, 1) + flow[:, 1:2]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    it = warp_torch(moving, flow) - ref
    weight = 1.0 / (1.0 + it * it * (1.0 / (robust * robust))) if robust > 0 else torch.ones_like(it)
    weight = torch.where(inside, weight, 0.0)
    ix, iy = grad[:, 0:1], grad[:, 1:2]
    wx, wy = weight * ix, weight * iy
    return torch.cat([wx * ix, wx * iy, wy * iy, wx * it, wy * it], 1)


def lk_update_torch(system: torch.Tensor, flow: torch.Tensor, reg: float, max_step: float) -> torch.Tensor:
    """``flow + du`` where ``(T + reg I) du = -b`` per pixel, from the blurred ``system`` (T, b).

    Each component of ``du`` is clamped to ``max_step`` pixels.

    >>> system = torch.tensor([1.0, 0.0, 1.0, -1.0, 2.0]).view(1, 5, 1, 1)
    >>> lk_update_torch(system, torch.zeros(1, 2, 1, 1), 0.0, 5.0).flatten().tolist()
    [1.0, -2.0]
    """
    a = system[:, 0:1] + reg
    c = system[:, 1:2]
    d = system[:, 2:3] + reg
    bx, by = system[:, 3:4], system[:, 4:5]
    det = a * d - c * c
    du = ((c * by - d * bx) / det).clamp(-max_step, max_step)
    dv = ((c * bx - a * by) / det).clamp(-max_step, max_step)
    return flow + torch.cat([du, dv], 1)


def median3x3_torch(image: torch.Tensor) -> torch.Tensor:
    """Per-channel 3x3 median of ``(N, C, H, W)``, replicated border.

    >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 5.0
    >>> float(median3x3_torch(x).abs().max())
    0.0
    """
    h, w = image.shape[-2:]
    p = F.pad(image, (1, 1, 1, 1), mode="replicate")
    v = [p[..., dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    # The 19 compare-exchanges of the classic median-of-9 network (Paeth): v[4] ends as the median.
    for a, b in _MEDIAN9:
        v[a], v[b] = torch.minimum(v[a], v[b]), torch.maximum(v[a], v[b])
    return v[4].contiguous()


_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
            (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


TORCH_OPS: dict[str, Callable] = {
    "gaussian_blur": gaussian_blur_torch, "pyr_down": pyr_down_torch,
    "flow_upsample2": flow_upsample2_torch, "lk_gradients": lk_gradients_torch,
    "lk_system": lk_system_torch, "lk_update": lk_update_torch, "median3x3": median3x3_torch,
}


def lk_flow_with(ops: dict[str, Callable], ref: torch.Tensor, moving: torch.Tensor,
                 params: LKParams = LKParams()) -> torch.Tensor:
    """The LK driver on a set of step functions (:data:`TORCH_OPS` or the CUDA ones).

    ``ref`` and ``moving`` are luma ``(N, 1, H, W)`` float32 in [0, 1]; returns ``(N, 2, H, W)``.
    """
    ref = ref.float().contiguous()
    moving = moving.float().contiguous()
    if params.prefilter > 0:
        pre = _weights_on(params.prefilter, ref.device)
        ref, moving = ops["gaussian_blur"](ref, pre), ops["gaussian_blur"](moving, pre)
    refs, movs = [ref], [moving]
    while len(refs) < params.levels and min(refs[-1].shape[-2:]) >= 2 * params.min_size:
        refs.append(ops["pyr_down"](refs[-1]))
        movs.append(ops["pyr_down"](movs[-1]))
    n = ref.shape[0]
    flow = None
    for level in range(len(refs) - 1, -1, -1):
        r, m = refs[level], movs[level]
        h, w = r.shape[-2:]
        if flow is None:
            flow = torch.zeros(n, 2, h, w, device=ref.device, dtype=torch.float32)
        else:
            flow = ops["flow_upsample2"](flow, h, w)
        if level < params.finest:
            continue
        # Coarser levels get wider windows (in pixels of their level): a flat region then takes
        # the motion of the texture around it, and robust weighting keeps small objects apart.
        window = _weights_on(max(params.window * params.window_growth ** level, 1.0), ref.device)
        grad = ops["lk_gradients"](r)
        for _ in range(params.iters):
            system = ops["gaussian_blur"](ops["lk_system"](grad, r, m, flow, params.robust), window)
            flow = ops["median3x3"](ops["lk_update"](system, flow, params.reg, params.max_step))
    return flow


@functools.lru_cache(maxsize=64)
def _weights_on(sigma: float, device: torch.device) -> torch.Tensor:
    """Gaussian taps on ``device``, uploaded once per process (no per-call host copies)."""
    return gaussian_weights(sigma).to(device)


def lk_flow_torch(ref: torch.Tensor, moving: torch.Tensor, params: LKParams = LKParams()) -> torch.Tensor:
    """Pyramidal LK flow from ``ref`` to ``moving`` (luma ``(N, 1, H, W)`` in [0, 1]): the reference.

    >>> ref = torch.rand(1, 1, 64, 64)
    >>> float(lk_flow_torch(ref, ref).abs().max()) < 1e-4
    True
    """
    return lk_flow_with(TORCH_OPS, ref, moving, params)


def lk_flow(ref: torch.Tensor, moving: torch.Tensor, params: LKParams = LKParams()) -> torch.Tensor:
    """Pyramidal LK flow: the CUDA kernels for GPU tensors, :func:`lk_flow_torch` elsewhere.

    >>> lk_flow(torch.rand(2, 1, 40, 48), torch.rand(2, 1, 40, 48)).shape
    torch.Size([2, 2, 40, 48])
    """
    if ref.ndim != 4 or ref.shape[1] != 1 or moving.shape != ref.shape:
        raise ValueError(f"expected two luma (N, 1, H, W) of one shape, got {tuple(ref.shape)} and "
                         f"{tuple(moving.shape)}")
    if use_kernels(ref):
        from ..cuda import ops
        return lk_flow_with(ops.LK_OPS, ref, moving, params)
    return lk_flow_torch(ref, moving, params)


class LKFlow:
    """The flow estimator interface over :func:`lk_flow` (see :mod:`streamden.align.flow`).

    >>> est = LKFlow(prefilter=1.0)
    >>> est(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    """

    def __init__(self, prefilter: float = 1.0, **params):
        self.params = LKParams(prefilter=float(prefilter), **params)

    def __call__(self, ref: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        return lk_flow(ref, moving, self.params)
