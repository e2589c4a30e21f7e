"""Bilinear backward warping by a dense flow field, with replicated borders."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cuda.module import use_kernels


def warp_torch(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample ``image`` ``(N, C, H, W)`` at ``(x + flow_x, y + flow_y)``: the reference.

    Bilinear interpolation (``mode="bicubic"`` keeps more detail: self-supervised targets
    use it, :mod:`streamden.train.adapt`); sample positions outside the frame are clamped to the nearest
    edge pixel (replicated border), so the result never mixes in zeros. Which pixels sampled
    outside the frame is reported by :func:`streamden.align.consistency_mask`.

    >>> img = torch.arange(12.0).reshape(1, 1, 3, 4)
    >>> flow = torch.zeros(1, 2, 3, 4); flow[:, 0] = 1.0        # look one pixel to the right
    >>> warp_torch(img, flow)[0, 0, 0].tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=flow.dtype),
                            torch.arange(w, device=image.device, dtype=flow.dtype), indexing="ij")
    x = (xs + flow[:, 0]).clamp(0, w - 1)
    y = (ys + flow[:, 1]).clamp(0, h - 1)
    # grid_sample's normalised coordinates with align_corners=True: -1 and 1 are the centres
    # of the edge pixels, so the clamped positions above stay exact.
    grid = torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)
    # Positions stay float32 for half images too: half would round them to 0.5 px at 1080p.
    warped = F.grid_sample(image.float(), grid.float(), mode=mode, padding_mode="border",
                           align_corners=True)
    return warped.to(image.dtype)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp ``image`` ``(N, C, H, W)`` by ``flow`` ``(N, 2, H, W)`` onto the reference grid.

    Runs the CUDA kernel for GPU tensors and :func:`warp_torch` elsewhere.

    >>> warp(torch.rand(2, 3, 8, 8), torch.zeros(2, 2, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
    """
    check_flow(image, flow)
    if use_kernels(image):
        from ..cuda import ops
        return ops.warp_cuda(image, flow)
    return warp_torch(image, flow)


def check_flow(image: torch.Tensor, flow: torch.Tensor) -> None:
    """Raise ValueError unless ``flow`` is ``(N, 2, H, W)`` matching ``image`` ``(N, C, H, W)``."""
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected image (N, C, H, W) and flow (N, 2, H, W), got "
                         f"{tuple(image.shape)} and {tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"flow {tuple(flow.shape)} does not match image {tuple(image.shape)}")
