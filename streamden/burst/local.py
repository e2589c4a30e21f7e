"""Local refinement of globally aligned frames, and the per-pixel confidence that stops ghosts.

After the homography, what is left is parallax, lens distortion and things that move on
their own (people, cars, leaves). Dense DIS flow (:class:`streamden.align.flow.DISFlow`)
from the reference to the pre-aligned frame absorbs the small residual motion. Two checks
then decide, per pixel, how much the warped frame may be trusted:

* **Forward-backward consistency** (:func:`streamden.align.consistency_mask`): the flow and
  the flow back must agree, which fails where content is occluded or disoccluded.
* **Photometric agreement** with the reference: both images are blurred (which divides the
  noise by about ``2 * sqrt(pi) * s`` for a Gaussian of std ``s``) and their difference is
  compared with the noise the model predicts for it. A difference of a few noise stds in
  any colour means different content: an object that moved, or a flow that went wrong.

The product of both, with the frame's coverage, is eroded (a rejected object takes a margin
with it) and smoothed, so the merge fades between frames instead of switching.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..align import consistency_mask, rgb_to_luma
from ..align.flow import DISFlow
from .global_align import homography_map, remap
from ..noise.estimate import NoiseModel

__all__ = ["LocalAligner", "photometric_confidence"]

PHOTO_BLUR = 1.5            # std (pixels) of the blur before the photometric check
ACCEPT, REJECT = 3.0, 5.0   # normalised difference: full trust below ACCEPT, none above REJECT
REFINE_TILE = 32            # pixels: the flow refinement is kept or dropped per tile
FLOW_MAX_PIXELS = 3_000_000  # flow on a downscaled luma above this size
REFINE_GAIN = 0.1           # kept where it lowers the blurred squared difference by 10%


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def photometric_confidence(ref: torch.Tensor, aligned: torch.Tensor, noise: NoiseModel,
                           blur: float = PHOTO_BLUR) -> torch.Tensor:
    """Trust in ``aligned`` ``(N, 3, H, W)`` against ``ref`` ``(1, 3, H, W)``: ``(N, 1, H, W)`` in [0, 1].

    >>> ref = torch.full((1, 3, 16, 16), 0.5)
    >>> moved = ref.expand(2, -1, -1, -1).clone(); moved[1, :, 4:12, 4:12] = 0.9
    >>> conf = photometric_confidence(ref, moved, NoiseModel.gaussian(10))
    >>> float(conf[0].min()), float(conf[1, 0, 8, 8])
    (1.0, 0.0)
    """
    ref_b = _gaussian_blur(ref.float(), blur)
    diff = _gaussian_blur(aligned.float(), blur) - ref_b
    # Std of the difference of two blurred, independent noisy images.
    shrink = 1.0 / (2.0 * math.sqrt(math.pi) * blur)
    var = (noise.gain * ref_b.clamp(0, 1) + noise.read ** 2) * (2.0 * shrink ** 2)
    z = (diff.square() / var.clamp_min(1e-10)).amax(dim=1, keepdim=True).sqrt()
    return ((REJECT - z) / (REJECT - ACCEPT)).clamp(0.0, 1.0)


def _erode_smooth(conf: torch.Tensor, erode: int, smooth: float) -> torch.Tensor:
    out = []
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8) if erode > 0 else None
    for c in conf[:, 0].cpu().numpy():
        if kernel is not None:
            c = cv2.erode(c, kernel, borderType=cv2.BORDER_REPLICATE)
        if smooth > 0:
            c = cv2.GaussianBlur(c, (0, 0), smooth)
        out.append(c)
    return torch.from_numpy(np.stack(out)).unsqueeze(1).to(conf.device)


class LocalAligner:
    """Refines globally aligned frames onto the reference with DIS flow and rates every pixel.

    ``preset`` and ``prefilter`` go to :class:`~streamden.align.flow.DISFlow` (noisy
    night frames want a stronger prefilter than video). The flow is smoothed with a Gaussian
    of std ``flow_smooth`` pixels: what the homography leaves (parallax, lens distortion) is
    smooth, while flow estimated on noise jitters from pixel to pixel. ``refine=False``
    skips the flow and keeps the homography alone.

    >>> la = LocalAligner(preset="fast")
    >>> ref = torch.rand(3, 24, 24)
    >>> aligned, conf = la(ref, ref.unsqueeze(0).clone(), [np.eye(3)], NoiseModel.gaussian(20))
    >>> aligned.shape, conf.shape
    (torch.Size([1, 3, 24, 24]), torch.Size([1, 1, 24, 24]))
    """

    def __init__(self, preset: str = "medium", prefilter: float = 2.0, refine: bool = True,
                 erode: int = 2, smooth: float = 1.5, flow_smooth: float = 0.0, consistency: bool = True):
        self.flow = DISFlow(preset, prefilter) if refine else None
        self.consistency = consistency
        self.erode = erode
        self.smooth = smooth
        self.flow_smooth = flow_smooth

    def __call__(self, ref: torch.Tensor, frames: torch.Tensor, homographies: list[np.ndarray],
                 noise: NoiseModel) -> tuple[torch.Tensor, torch.Tensor]:
        """Align ``frames`` ``(N, 3, H, W)`` (as shot) onto ``ref`` ``(3, H, W)``.

        ``homographies`` map reference pixels to each frame's. Returns the aligned frames
        (each interpolated once, bicubic) and their confidence ``(N, 1, H, W)`` in [0, 1].
        """
        size = tuple(ref.shape[-2:])
        ref1 = ref.unsqueeze(0).float()
        aligned, conf = [], []
        for frame, hom in zip(frames, homographies):
            coords = homography_map(hom, size)
            out, inside = remap(frame, coords)
            if self.flow is not None:
                out, inside = self._refine(ref1, frame, hom, out, inside, noise)
            aligned.append(out)
            # One frame at a time: the blurred copies of a whole 12 MP burst would take gigabytes.
            conf.append(inside * photometric_confidence(ref1, out.unsqueeze(0), noise)[0])
        return torch.stack(aligned), _erode_smooth(torch.stack(conf), self.erode, self.smooth)

    def _refine(self, ref1: torch.Tensor, frame: torch.Tensor, hom: np.ndarray, pre: torch.Tensor,
                inside: torch.Tensor, noise: NoiseModel) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow-refined frame where it matches the reference clearly better than ``pre``.

        Flow estimated on noise jitters by a fraction of a pixel, which softens the merge
        wherever the homography was already right (0.3-1 dB lower after the network on the
        synthetic bursts, whose motion *is* a homography). So the refinement is kept per
        tile (``TILE`` pixels), only where it lowers the blurred difference to the reference
        by more than ``GAIN``; tiles hold about a thousand pixels, so the choice does not
        follow the reference's noise. The choice is smoothed across tile borders.
        """
        size = tuple(ref1.shape[-2:])
        ref_l, mov_l = rgb_to_luma(ref1), rgb_to_luma(pre.unsqueeze(0))
        scale = min(1.0, math.sqrt(FLOW_MAX_PIXELS / (size[0] * size[1])))
        if scale < 1.0:
            # What the homography leaves is smooth: estimate it on a smaller, less noisy luma.
            small = (max(8, round(size[0] * scale)), max(8, round(size[1] * scale)))
            ref_l = F.interpolate(ref_l, size=small, mode="area")
            mov_l = F.interpolate(mov_l, size=small, mode="area")
        fw, bw = self.flow(ref_l, mov_l), self.flow(mov_l, ref_l)
        if scale < 1.0:
            fw, bw = (F.interpolate(f, size=size, mode="bilinear", align_corners=False) / scale for f in (fw, bw))
        consistent = consistency_mask(fw, bw)[0] if self.consistency else torch.ones_like(inside)
        if self.flow_smooth > 0:
            fw = _gaussian_blur(fw, self.flow_smooth)
        refined, inside_f = remap(frame, homography_map(hom, size, fw[0]))
        ref_b = _gaussian_blur(ref1, PHOTO_BLUR)
        errors = []
        for candidate in (pre, refined):
            d = (_gaussian_blur(candidate.unsqueeze(0), PHOTO_BLUR) - ref_b).square().sum(1, keepdim=True)
            errors.append(F.avg_pool2d(d, REFINE_TILE, ceil_mode=True))
        use = (errors[1] < (1.0 - REFINE_GAIN) * errors[0]).float()
        use = F.interpolate(use, scale_factor=REFINE_TILE, mode="nearest")[..., :size[0], :size[1]]
        use = _gaussian_blur(use, REFINE_TILE / 4)[0]
        out = torch.lerp(pre, refined, use)
        trust = torch.lerp(inside, inside_f * consistent, use)
        return out, trust
