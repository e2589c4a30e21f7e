"""Align the frames of a sliding window to its centre frame, estimating each frame pair once."""
from __future__ import annotations

from typing import Sequence

import torch

from .color import rgb_to_luma
from ..config import AlignConfig
from ..errors import ConfigError
from .flow import FlowEstimator, make_flow_estimator
from .occlusion import consistency_mask
from .warp import warp

OCCLUSION_MODES = ("centre", "none")
WINDOW_MODES = ("window", "triplet")


class WindowAligner:
    """Warps every frame of a window onto its centre frame, with a confidence mask.

    Frames are identified by their index in the sequence. Flows are cached per ordered
    pair ``(reference, moving)``, so when the window slides by one frame only the pairs
    with the new frame and the new centre are estimated: the reverse flow that the
    consistency check of window ``t`` needs is the forward flow of window ``t + 1``.
    ``occlusion="none"`` keeps the warped pixels everywhere (the network learns to reject
    what did not align); ``"centre"`` replaces pixels the mask rejects with the centre
    frame's pixels. On the validation clips "none" scored higher (benchmarks/align_quality.py).

    ``window`` says how the network uses it (see :class:`~streamden.models.streaming.StreamingDenoiser`):
    ``"window"`` aligns each 5-frame window onto its centre (every stage-1 input differs from
    window to window: four blocks per frame); ``"triplet"`` aligns each triplet onto its own
    centre, so its stage-1 output is cached like the unaligned one's, and warps the three
    stage-1 outputs onto the output frame with :meth:`onto` (two blocks per frame, and flows
    between neighbouring frames only).

    >>> from streamden.align.flow import DISFlow
    >>> aligner = WindowAligner(DISFlow("fast"))
    >>> frames = [torch.rand(3, 16, 16) for _ in range(5)]
    >>> aligned, masks = aligner.align(frames, (0, 1, 2, 3, 4))
    >>> aligned.shape, masks.shape, len(aligner.flows)
    (torch.Size([5, 3, 16, 16]), torch.Size([5, 1, 16, 16]), 8)
    """

    def __init__(self, estimator: FlowEstimator, occlusion: str = "none", window: str = "window"):
        if occlusion not in OCCLUSION_MODES:
            raise ConfigError(f"align.occlusion must be one of {', '.join(OCCLUSION_MODES)}, got {occlusion!r}")
        if window not in WINDOW_MODES:
            raise ConfigError(f"align.window must be one of {', '.join(WINDOW_MODES)}, got {window!r}")
        self.estimator = estimator
        self.occlusion = occlusion
        self.window = window
        self.luma: dict[int, torch.Tensor] = {}                    # index -> (1, H, W)
        self.flows: dict[tuple[int, int], torch.Tensor] = {}       # (ref, moving) -> (2, H, W)
        self.pairs_estimated = 0

    def reset(self) -> None:
        """Forget every cached luma image and flow (a new sequence starts)."""
        self.luma.clear()
        self.flows.clear()

    def evict(self, oldest: int) -> None:
        """Drop cached data of frames with an index below ``oldest``."""
        for i in [i for i in self.luma if i < oldest]:
            del self.luma[i]
        for key in [k for k in self.flows if min(k) < oldest]:
            del self.flows[key]

    def align(self, frames: Sequence[torch.Tensor], indices: Sequence[int],
              centre: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Warp ``frames`` (each ``(3, H, W)``, with sequence ``indices``) onto the centre frame.

        ``centre`` is the position of the reference in the window (default: the middle).
        Returns the aligned window ``(T, 3, H, W)`` (the centre frame untouched) and the
        masks ``(T, 1, H, W)`` (1 = aligned pixel trusted; all ones for the centre).
        """
        if len(frames) != len(indices):
            raise ValueError(f"{len(frames)} frames but {len(indices)} indices")
        pos = len(frames) // 2 if centre is None else centre
        ref = indices[pos]
        for frame, index in zip(frames, indices):
            if index not in self.luma:
                self.luma[index] = rgb_to_luma(frame.unsqueeze(0).float())[0]
        others = sorted({i for i in indices if i != ref})
        self._estimate([(ref, i) for i in others] + [(i, ref) for i in others])
        aligned, masks = {}, {}
        if others:
            stack = torch.stack([frames[indices.index(i)] for i in others]).float()
            fw = torch.stack([self.flows[(ref, i)] for i in others])
            bw = torch.stack([self.flows[(i, ref)] for i in others])
            warped = warp(stack, fw)
            mask = consistency_mask(fw, bw)
            if self.occlusion == "centre":
                centre_frame = frames[pos].float().unsqueeze(0)
                warped = torch.lerp(centre_frame, warped, mask)
            for k, i in enumerate(others):
                aligned[i], masks[i] = warped[k], mask[k]
        ones = torch.ones_like(frames[pos][:1], dtype=torch.float32)
        out = [frames[pos].float() if i == ref else aligned[i] for i in indices]
        out_masks = [ones if i == ref else masks[i] for i in indices]
        return torch.stack(out), torch.stack(out_masks)

    def onto(self, ref: int, images: Sequence[torch.Tensor], indices: Sequence[int]) -> torch.Tensor:
        """Warp ``images`` (each ``(C, H, W)``, sitting on the frames ``indices``) onto frame ``ref``.

        Uses the flows ``(ref, index)``, estimated now if not cached; every frame involved
        must have been passed to :meth:`align` before (its luma is kept). Returns ``(T, C, H, W)``.
        """
        others = sorted({i for i in indices if i != ref})
        self._estimate([(ref, i) for i in others])
        out = list(images)
        moving = [k for k, i in enumerate(indices) if i != ref]
        if moving:
            flows = torch.stack([self.flows[(ref, indices[k])] for k in moving])
            warped = warp(torch.stack([images[k].float() for k in moving]), flows)
            for j, k in enumerate(moving):
                out[k] = warped[j]
        return torch.stack([image.float() for image in out])

    def _estimate(self, pairs: list[tuple[int, int]]) -> None:
        missing = [p for p in pairs if p not in self.flows]
        if not missing:
            return
        ref = torch.stack([self.luma[a] for a, _ in missing])
        moving = torch.stack([self.luma[b] for _, b in missing])
        flows = self.estimator(ref, moving)
        self.pairs_estimated += len(missing)
        for pair, flow in zip(missing, flows):
            self.flows[pair] = flow


def make_aligner(config: AlignConfig, device: torch.device, model_align: str = "none") -> WindowAligner | None:
    """The window aligner that ``config`` asks for, or None for ``mode: none``.

    ``mode: auto`` follows ``model_align``, the mode the model was trained with
    (:func:`streamden.models.registry.model_alignment`).

    >>> make_aligner(AlignConfig(mode="flow"), torch.device("cpu")).occlusion
    'none'
    >>> make_aligner(AlignConfig(mode="auto"), torch.device("cpu")) is None
    True
    """
    mode = model_align if config.mode == "auto" else config.mode
    if mode == "none":
        return None
    if mode != "flow":
        raise ConfigError(f"align.mode must be 'auto', 'none' or 'flow', got {mode!r}")
    estimator = make_flow_estimator(config.flow, device, preset=config.preset, prefilter=config.prefilter)
    return WindowAligner(estimator, occlusion=config.occlusion, window=config.window)


def align_windows(windows: torch.Tensor, aligner: WindowAligner) -> torch.Tensor:
    """Align each window of a batch ``(B, T, 3, H, W)`` onto its centre frame (training, validation).

    Windows are independent clips: the aligner's cache is reset before each one.

    >>> from streamden.align.flow import DISFlow
    >>> align_windows(torch.rand(2, 5, 3, 16, 16), WindowAligner(DISFlow("fast"))).shape
    torch.Size([2, 5, 3, 16, 16])
    """
    out = []
    for window in windows:
        aligner.reset()
        aligned, _ = aligner.align(list(window), tuple(range(window.shape[0])))
        out.append(aligned.to(windows.dtype))
    aligner.reset()
    return torch.stack(out)
