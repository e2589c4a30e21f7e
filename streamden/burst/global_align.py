"""Global alignment of a hand-held burst: one homography per frame onto the reference.

Convention (as :mod:`streamden.align`'s flow): a homography ``H`` maps a pixel of the
reference to the matching point of the moving frame, so warping with ``WARP_INVERSE_MAP``
resamples the moving frame onto the reference grid.

Estimation runs on a blurred, downscaled luma (noise would otherwise swamp the features):

1. ORB features matched by Hamming distance with a ratio test, and a homography fitted by
   RANSAC, which finds large shifts and ignores whatever moves on its own;
2. ECC (enhanced correlation coefficient, Evangelidis and Psarakis 2008) refines it
   photometrically on the whole image, which is more precise than the features on noisy
   frames. It starts from the feature estimate, or from the identity when the features fail
   (too few matches, e.g. on small or flat images). A refinement that does not converge, or
   strays far from its start, keeps the start.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..align import rgb_to_luma

__all__ = ["estimate_homography", "homography_map", "remap"]

FEATURE_SIDE = 1024      # long side of the image the features are found in
ECC_SIDE = 512           # long side of the image ECC refines on
MIN_INLIERS = 24


def _luma8(frame: torch.Tensor, side: int) -> tuple[np.ndarray, float]:
    luma = rgb_to_luma(frame.unsqueeze(0).float())[0, 0].cpu().numpy()
    scale = min(1.0, side / max(luma.shape))
    if scale < 1.0:
        luma = cv2.resize(luma, (max(1, round(luma.shape[1] * scale)), max(1, round(luma.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    luma = cv2.GaussianBlur(luma, (0, 0), 1.0)
    return np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8), scale


def _rescale(hom: np.ndarray, scale: float) -> np.ndarray:
    """A homography found at ``scale`` expressed at full resolution."""
    s = np.diag([scale, scale, 1.0])
    out = np.linalg.inv(s) @ hom @ s
    return out / out[2, 2]


def _features(ref: np.ndarray, moving: np.ndarray) -> np.ndarray | None:
    orb = cv2.ORB_create(nfeatures=3000, edgeThreshold=15, patchSize=15, fastThreshold=10)
    kp1, des1 = orb.detectAndCompute(ref, None)
    kp2, des2 = orb.detectAndCompute(moving, None)
    if des1 is None or des2 is None or len(kp1) < MIN_INLIERS or len(kp2) < MIN_INLIERS:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des1, des2, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    src = np.float32([kp1[m.queryIdx].pt for m in good])
    dst = np.float32([kp2[m.trainIdx].pt for m in good])
    hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if hom is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    return hom


def _ecc(ref: np.ndarray, moving: np.ndarray, start: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Refine ``start`` coarse to fine over ``levels`` (scales of the given images)."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-5)
    warp = start
    for scale in levels:
        size = (max(8, round(ref.shape[1] * scale)), max(8, round(ref.shape[0] * scale)))
        r = cv2.resize(ref, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        m = cv2.resize(moving, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        s = np.diag([size[0] / ref.shape[1], size[1] / ref.shape[0], 1.0])
        guess = (s @ warp @ np.linalg.inv(s)).astype(np.float32)
        try:
            _, found = cv2.findTransformECC(r, m, guess / guess[2, 2], cv2.MOTION_HOMOGRAPHY, criteria, None, 3)
        except cv2.error:
            continue
        warp = np.linalg.inv(s) @ found.astype(np.float64) @ s
    # Reject a refinement that moves the image corners far from where the start put them.
    h, w = ref.shape
    corners = np.float32([[0, 0], [w, 0], [0, h], [w, h]]).reshape(-1, 1, 2)
    moved = np.abs(cv2.perspectiveTransform(corners, warp) - cv2.perspectiveTransform(corners, start)).max()
    return warp / warp[2, 2] if moved < 0.1 * max(h, w) else start


def estimate_homography(ref: torch.Tensor, moving: torch.Tensor) -> np.ndarray:
    """The ``3x3`` homography from reference pixels to ``moving`` pixels (``(3, H, W)`` frames).

    >>> img = torch.rand(3, 64, 64)
    >>> bool(np.abs(estimate_homography(img, img) - np.eye(3)).max() < 1e-3)
    True
    """
    ref8, fscale = _luma8(ref, FEATURE_SIDE)
    mov8, _ = _luma8(moving, FEATURE_SIDE)
    found = _features(ref8, mov8)
    start = np.eye(3) if found is None else _rescale(found, 1.0 / fscale)
    ref_e, escale = _luma8(ref, ECC_SIDE)
    mov_e, _ = _luma8(moving, ECC_SIDE)
    # From the identity, start coarse to catch shifts of several pixels; from the features, the
    # start is already within a pixel or two.
    levels = (0.25, 0.5, 1.0) if found is None else (0.5, 1.0)
    refined = _ecc(ref_e, mov_e, _rescale(start, escale), levels)
    return _rescale(refined, 1.0 / escale)


def homography_map(hom: np.ndarray, size: tuple[int, int], flow: torch.Tensor | None = None) -> np.ndarray:
    """Where each reference pixel samples the moving frame: ``(H, W, 2)`` float32 ``(x, y)``.

    With a residual ``flow`` ``(2, H, W)`` (from the reference to the frame already warped
    by ``hom``), the point sampled is ``hom`` applied to ``(x, y) + flow``: the two warps are
    composed so the frame is interpolated once.

    >>> homography_map(np.eye(3), (2, 3))[1, 2].tolist()
    [2.0, 1.0]
    """
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if flow is not None:
        f = flow.detach().cpu().numpy().astype(np.float64)
        xs, ys = xs + f[0], ys + f[1]
    den = hom[2, 0] * xs + hom[2, 1] * ys + hom[2, 2]
    mx = (hom[0, 0] * xs + hom[0, 1] * ys + hom[0, 2]) / den
    my = (hom[1, 0] * xs + hom[1, 1] * ys + hom[1, 2]) / den
    return np.stack([mx, my], axis=-1).astype(np.float32)


def remap(frame: torch.Tensor, coords: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``frame`` ``(3, H, W)`` at ``coords`` ``(H, W, 2)`` (bicubic, edges replicated).

    Returns the resampled frame and a ``(1, H, W)`` mask of the points inside the frame.
    Bicubic rather than bilinear: bilinear interpolation at random sub-pixel offsets is a
    low-pass filter, and averaging eight such frames visibly softens the merge (0.8 dB
    lower after the network on the synthetic bursts).

    >>> out, inside = remap(torch.ones(3, 2, 3), homography_map(np.eye(3), (2, 3)))
    >>> out.shape, float(inside.min())
    (torch.Size([3, 2, 3]), 1.0)
    """
    _, h, w = frame.shape
    image = frame.permute(1, 2, 0).float().cpu().numpy()
    out = cv2.remap(image, coords, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    inside = ((coords[..., 0] >= 0) & (coords[..., 0] <= w - 1) & (coords[..., 1] >= 0) & (coords[..., 1] <= h - 1))
    return (torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).to(frame.device),
            torch.from_numpy(inside.astype(np.float32)).unsqueeze(0).to(frame.device))
