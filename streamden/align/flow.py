"""Dense optical flow estimators behind one interface, and the factory that picks one.

An estimator is a callable ``(ref, moving) -> flow``: ``ref`` and ``moving`` are luma
``(N, 1, H, W)`` float tensors in [0, 1] on one device, ``flow`` is ``(N, 2, H, W)`` float32 on
the same device (convention in :mod:`streamden.align`).

* ``dis``: OpenCV's DIS (dense inverse search), the CPU backend. Its presets trade speed for
  accuracy (``ultrafast``, ``fast``, ``medium``).
* ``lk``: our pyramidal Lucas-Kanade (:mod:`streamden.align.lk`), the CUDA backend: a kernel
  on GPU tensors, its torch reference elsewhere.
"""
from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
import torch

from ..errors import ConfigError

FLOW_METHODS = ("auto", "dis", "lk")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


#: Frames with a shorter side are padded (replicated borders) before DIS; every preset was
#: checked at 32 x 32 up to 32 x 4000 and 4000 x 32.
DIS_MIN_SIDE = 32


class FlowEstimator(Protocol):
    """``(ref, moving)`` luma ``(N, 1, H, W)`` -> flow ``(N, 2, H, W)`` from ref to moving."""

    def __call__(self, ref: torch.Tensor, moving: torch.Tensor) -> torch.Tensor: ...


class DISFlow:
    """OpenCV DIS flow on the CPU; GPU tensors are copied to the host and back.

    ``prefilter`` is the standard deviation (pixels) of a Gaussian blur applied to both
    frames first: DIS matches patches by their gradients, which noise swamps; 0 turns it off.

    >>> est = DISFlow("fast")
    >>> est(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    >>> est(torch.rand(1, 1, 8, 200), torch.rand(1, 1, 8, 200)).shape   # padded for DIS
    torch.Size([1, 2, 8, 200])
    """

    def __init__(self, preset: str = "medium", prefilter: float = 1.0):
        if preset not in DIS_PRESETS:
            raise ConfigError(f"align.preset must be one of {sorted(DIS_PRESETS)}, got {preset!r}")
        self.preset = preset
        self.prefilter = float(prefilter)
        # One DIS object per estimator: it keeps buffers sized for the last frame size.
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])

    def __call__(self, ref: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        flows = [self._one(self._to_u8(r), self._to_u8(m)) for r, m in zip(ref, moving)]
        return torch.from_numpy(np.stack(flows)).to(ref.device)

    def _to_u8(self, luma: torch.Tensor) -> np.ndarray:
        image = luma[0].detach().float().cpu().numpy()
        if self.prefilter > 0:
            image = cv2.GaussianBlur(image, (0, 0), self.prefilter)
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def _one(self, ref: np.ndarray, moving: np.ndarray) -> np.ndarray:
        height, width = ref.shape
        # OpenCV's DIS refuses, or crashes the process on, frames with a short side below
        # about 16 px (seen: 16x200 with the fast preset): small frames are padded first.
        pad_y, pad_x = max(0, DIS_MIN_SIDE - height), max(0, DIS_MIN_SIDE - width)
        if pad_y or pad_x:
            ref, moving = (cv2.copyMakeBorder(im, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE) for im in (ref, moving))
        flow = self._dis.calc(ref, moving, None)[:height, :width]   # (H, W, 2), ref -> moving
        return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def make_flow_estimator(method: str = "auto", device: torch.device | str = "cpu", *,
                        preset: str = "medium", prefilter: float = 1.0) -> FlowEstimator:
    """The flow estimator for ``method`` (``auto``: DIS on a CPU, our LK kernels on CUDA).

    >>> type(make_flow_estimator("auto", "cpu")).__name__
    'DISFlow'
    """
    if method not in FLOW_METHODS:
        raise ConfigError(f"align.flow must be one of {list(FLOW_METHODS)}, got {method!r}")
    if method == "auto":
        method = "lk" if torch.device(device).type == "cuda" else "dis"
    if method == "dis":
        return DISFlow(preset, prefilter)
    from .lk import LKFlow
    return LKFlow(prefilter=prefilter)
