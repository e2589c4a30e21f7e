"""The CUDA kernels of ``kernels/`` as torch functions, each with the signature of its reference.

=============================  ===========================================  ==============
function                       torch reference                              source
=============================  ===========================================  ==============
warp_cuda                      streamden.align.warp.warp_torch              warp.cu
consistency_mask_cuda          streamden.align.occlusion...mask_torch       occlusion.cu
rgb_to_luma_cuda               streamden.align.color.rgb_to_luma_torch      color.cu
interleaved_to_planar_cuda     ...color.interleaved_to_planar_torch         color.cu
planar_to_interleaved_cuda     ...color.planar_to_interleaved_torch         color.cu
gaussian_blur_cuda, ...        streamden.align.lk.<name>_torch              flow.cu
=============================  ===========================================  ==============

Inputs are CUDA tensors; outputs are allocated with torch on the same device, and kernels
run on torch's current stream. Shapes are checked by the public dispatchers in
:mod:`streamden.align`, not here.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .module import launch

_SUFFIX = {torch.uint8: "u8", torch.uint16: "u16"}
_poison: float | None = None


@contextlib.contextmanager
def poisoned_outputs(value: float = float("nan")) -> Iterator[None]:
    """Inside the block every buffer the ops allocate starts filled with ``value``, not garbage.

    For tests: an element a kernel forgets to write then shows up as ``value`` (NaN for float
    outputs; integer outputs get ``value`` as given, so use two sentinels and compare).
    """
    global _poison
    previous, _poison = _poison, value
    try:
        yield
    finally:
        _poison = previous


def _empty(shape, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if _poison is None:
        return torch.empty(shape, device=device, dtype=dtype)
    fill = _poison
    if not dtype.is_floating_point and fill != fill:   # NaN has no integer form
        fill = 0
    return torch.full(shape, fill, device=device, dtype=dtype)


def warp_cuda(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear warp with replicated borders (``warp.cu``): float32 and half images."""
    if image.dtype not in (torch.float32, torch.float16):
        return warp_cuda(image.float(), flow).to(image.dtype)
    image = image.contiguous()
    flow = flow.float().contiguous()
    n, c, h, w = image.shape
    out = _empty(image.shape, image.device, image.dtype)
    kernel = "warp_f32" if image.dtype == torch.float32 else "warp_f16"
    launch("warp", kernel, n * h * w, image, flow, out, n, c, h, w)
    return out


def consistency_mask_cuda(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Forward-backward consistency mask ``(N, 1, H, W)`` (``occlusion.cu``) in the flows' dtype."""
    fw = flow_fw.float().contiguous()
    bw = flow_bw.float().contiguous()
    n, _, h, w = fw.shape
    out = _empty((n, 1, h, w), fw.device, torch.float32)
    launch("occlusion", "consistency_mask_f32", n * h * w, fw, bw, out, float(alpha), float(beta), n, h, w)
    return out.to(flow_fw.dtype)


def rgb_to_luma_cuda(image: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> ``(N, 1, H, W)`` BT.601 luma (``color.cu``), in the input's dtype."""
    rgb = image.float().contiguous()
    n, _, h, w = rgb.shape
    out = _empty((n, 1, h, w), rgb.device, torch.float32)
    launch("color", "rgb_to_luma_f32", n * h * w, rgb, out, n, h, w)
    return out.to(image.dtype)


def interleaved_to_planar_cuda(frames: torch.Tensor) -> torch.Tensor:
    """The upload: ``(N, H, W, C)`` uint8/uint16 -> ``(N, C, H, W)`` float32 in [0, 1] (``color.cu``)."""
    frames = frames.contiguous()
    n, h, w, c = frames.shape
    out = _empty((n, c, h, w), frames.device, torch.float32)
    launch("color", f"interleaved_{_SUFFIX[frames.dtype]}_to_planar_f32", out.numel(), frames, out, n, h, w, c)
    return out


def planar_to_interleaved_cuda(image: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """The download: ``(N, C, H, W)`` float in [0, 1] -> ``(N, H, W, C)`` uint8/uint16, rounded, clamped."""
    image = image.float().contiguous()
    n, c, h, w = image.shape
    out = _empty((n, h, w, c), image.device, dtype)
    launch("color", f"planar_f32_to_interleaved_{_SUFFIX[dtype]}", out.numel(), image, out, n, h, w, c)
    return out


def gaussian_blur_cuda(image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Separable blur by 1-D ``weights`` with replicated border (``flow.cu``, two passes)."""
    image = image.float().contiguous()
    weights = weights.to(image.device, torch.float32).contiguous()
    n, c, h, w = image.shape
    radius = (weights.numel() - 1) // 2
    tmp = _empty(image.shape, image.device, torch.float32)
    out = _empty(image.shape, image.device, torch.float32)
    launch("flow", "blur_h_f32", image.numel(), image, tmp, weights, radius, n * c, h, w)
    launch("flow", "blur_v_f32", image.numel(), tmp, out, weights, radius, n * c, h, w)
    return out


def pyr_down_cuda(image: torch.Tensor) -> torch.Tensor:
    """5-tap binomial blur and decimation by 2 (``flow.cu``)."""
    image = image.float().contiguous()
    n, c, h, w = image.shape
    hd, wd = (h + 1) // 2, (w + 1) // 2
    out = _empty((n, c, hd, wd), image.device, torch.float32)
    launch("flow", "pyr_down_f32", out.numel(), image, out, n * c, h, w, hd, wd)
    return out


def flow_upsample2_cuda(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Coarse flow -> ``(N, 2, height, width)``, bilinear at half coordinates, times 2 (``flow.cu``)."""
    flow = flow.float().contiguous()
    n, _, h, w = flow.shape
    out = _empty((n, 2, height, width), flow.device, torch.float32)
    launch("flow", "flow_upsample2_f32", out.numel(), flow, out, n, h, w, int(height), int(width))
    return out


def lk_gradients_cuda(ref: torch.Tensor) -> torch.Tensor:
    """Central-difference gradients ``(N, 2, H, W)`` of luma (``flow.cu``)."""
    ref = ref.float().contiguous()
    n, _, h, w = ref.shape
    grad = _empty((n, 2, h, w), ref.device, torch.float32)
    launch("flow", "lk_gradients_f32", n * h * w, ref, grad, n, h, w)
    return grad


def lk_system_cuda(grad: torch.Tensor, ref: torch.Tensor, moving: torch.Tensor, flow: torch.Tensor,
                   robust: float) -> torch.Tensor:
    """Robustly weighted per-pixel LK terms ``(N, 5, H, W)`` (``flow.cu``)."""
    grad, ref, moving, flow = (t.float().contiguous() for t in (grad, ref, moving, flow))
    n, _, h, w = ref.shape
    out = _empty((n, 5, h, w), ref.device, torch.float32)
    launch("flow", "lk_system_f32", n * h * w, grad, ref, moving, flow, out, float(robust), n, h, w)
    return out


def lk_update_cuda(system: torch.Tensor, flow: torch.Tensor, reg: float, max_step: float) -> torch.Tensor:
    """``flow + du``, ``(T + reg I) du = -b`` per pixel, ``du`` clamped to ``max_step`` (``flow.cu``)."""
    system, flow = system.float().contiguous(), flow.float().contiguous()
    n, _, h, w = flow.shape
    out = _empty(flow.shape, flow.device, torch.float32)
    launch("flow", "lk_update_f32", n * h * w, system, flow, out, float(reg), float(max_step), n, h, w)
    return out


def median3x3_cuda(image: torch.Tensor) -> torch.Tensor:
    """Per-channel 3x3 median with replicated border (``flow.cu``)."""
    image = image.float().contiguous()
    n, c, h, w = image.shape
    out = _empty(image.shape, image.device, torch.float32)
    launch("flow", "median3x3_f32", image.numel(), image, out, n * c, h, w)
    return out


LK_OPS = {
    "gaussian_blur": gaussian_blur_cuda, "pyr_down": pyr_down_cuda,
    "flow_upsample2": flow_upsample2_cuda, "lk_gradients": lk_gradients_cuda,
    "lk_system": lk_system_cuda, "lk_update": lk_update_cuda, "median3x3": median3x3_cuda,
}
