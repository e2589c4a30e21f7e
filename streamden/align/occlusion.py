"""Occlusion / confidence mask from forward-backward flow consistency."""
from __future__ import annotations

import torch

from .warp import check_flow, warp_torch
from ..cuda.module import use_kernels

# A pixel is consistent when |fw + bw(fw)|^2 <= ALPHA * (|fw|^2 + |bw(fw)|^2) + BETA
# (the classic test of Sundaram et al. 2010, used by UnFlow): the tolerance grows with the
# motion, since large displacements are estimated less precisely.
ALPHA = 0.01
BETA = 0.5


def consistency_mask_torch(flow_fw: torch.Tensor, flow_bw: torch.Tensor,
                           alpha: float = ALPHA, beta: float = BETA) -> torch.Tensor:
    """1 where the forward flow is trustworthy, 0 where occluded or pointing out of the frame.

    ``flow_fw`` maps the reference to the moving frame, ``flow_bw`` the moving frame back to
    the reference, both ``(N, 2, H, W)``. Returns ``(N, 1, H, W)`` of 0.0 / 1.0 in the flows'
    dtype: the reference.

    >>> still = torch.zeros(1, 2, 4, 4)
    >>> float(consistency_mask_torch(still, still).min())
    1.0
    """
    _, _, h, w = flow_fw.shape
    back = warp_torch(flow_bw, flow_fw)
    diff = (flow_fw + back).square().sum(1, keepdim=True)
    bound = alpha * (flow_fw.square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)) + beta
    ys, xs = torch.meshgrid(torch.arange(h, device=flow_fw.device, dtype=flow_fw.dtype),
                            torch.arange(w, device=flow_fw.device, dtype=flow_fw.dtype), indexing="ij")
    x = xs + flow_fw[:, 0:1]
    y = ys + flow_fw[:, 1:2]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ((diff <= bound) & inside).to(flow_fw.dtype)


def consistency_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor,
                     alpha: float = ALPHA, beta: float = BETA) -> torch.Tensor:
    """Forward-backward consistency mask ``(N, 1, H, W)``: the CUDA kernel on GPU tensors.

    >>> flow = torch.zeros(1, 2, 4, 4); flow[:, 0] = 10.0   # everything leaves the frame
    >>> float(consistency_mask(flow, -flow).max())
    0.0
    """
    check_flow(flow_fw, flow_bw)
    if use_kernels(flow_fw):
        from ..cuda import ops
        return ops.consistency_mask_cuda(flow_fw, flow_bw, alpha, beta)
    return consistency_mask_torch(flow_fw, flow_bw, alpha, beta)
