"""Pixel conversions between decoded/encoded YUV frames and the RGB arrays Frames carry.

The convention: ``(H, W, 3)`` RGB, uint8 for 8-bit sources, full-scale uint16 above (a
10-bit value ``v`` becomes about ``v * 65535 / 1023``), so ``image / 65535`` is in [0, 1]
whatever the source depth.

swscale's default YUV->RGB path rounds down and darkens 8-bit video by about one level per
round trip; bicubic with accurate rounding, to planar RGB (``gbrp``), is unbiased and
cheaper than packed RGB with full chroma interpolation, so both directions use it.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .frame import ColorInfo

__all__ = ["to_rgb_array", "video_frame_to_rgb", "rgb_to_video_frame", "SCALE_FLAGS"]


def _flags(*names: str) -> int:
    from av.video.reformatter import Interpolation

    value = 0
    for name in names:
        value |= int(Interpolation[name])
    return value


#: swscale flags for YUV->RGB and RGB->YUV (see the module docstring for why).
SCALE_FLAGS = {
    "decode": ("BICUBIC", "ACCURATE_RND"),
    "encode": ("BICUBIC", "ACCURATE_RND", "FULL_CHR_H_INP"),
}

# Slice threads for each RGB <-> YUV conversion (identical output at any count). A quarter of
# the cores, at most 4: decoding, encoding and both conversions share the CPU. One conversion
# thread makes about 200 fps at 1080p, which caps a GPU pipeline; 2-core machines keep one.
SWS_THREADS = max(1, min(4, (os.cpu_count() or 1) // 4))

# FFmpeg AVColorSpace (what ColorInfo.matrix holds) -> swscale's SWS_CS_* for the conversion.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def video_frame_to_rgb(reformatter, frame, deep: bool) -> np.ndarray:
    """A decoded ``av.VideoFrame`` as ``(H, W, 3)`` RGB: uint8, or full-scale uint16 if ``deep``.

    The frame's own colour tags (matrix, range) drive the conversion.

    >>> from av.video.reformatter import VideoReformatter
    >>> import av
    >>> f = av.VideoFrame.from_ndarray(np.zeros((4, 6, 3), np.uint8)).reformat(format="yuv420p")
    >>> video_frame_to_rgb(VideoReformatter(), f, deep=False).shape
    (4, 6, 3)
    """
    rgb = reformatter.reformat(frame, format="gbrp16le" if deep else "gbrp",
                               interpolation=_flags(*SCALE_FLAGS["decode"]), threads=SWS_THREADS)
    return rgb.to_ndarray()


def rgb_to_video_frame(reformatter, rgb: np.ndarray, pix_fmt: str, color: ColorInfo):
    """An ``av.VideoFrame`` in ``pix_fmt`` from an RGB uint8/uint16 array, tagged with ``color``.

    >>> from av.video.reformatter import VideoReformatter
    >>> f = rgb_to_video_frame(VideoReformatter(), np.zeros((4, 6, 3), np.uint8), "yuv420p", ColorInfo())
    >>> f.format.name, f.width, f.height
    ('yuv420p', 6, 4)
    """
    import av

    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb),
                                    format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
    rng = 2 if color.range == "pc" else 1
    out = reformatter.reformat(vf, format=pix_fmt, dst_colorspace=_SWS_MATRIX.get(int(color.matrix)),
                               dst_color_range=rng, interpolation=_flags(*SCALE_FLAGS["encode"]),
                               threads=SWS_THREADS)
    out.color_range = rng
    out.colorspace = int(color.matrix)
    out.color_primaries = int(color.primaries)
    out.color_trc = int(color.transfer)
    return out


def to_rgb_array(image: Any, bit_depth: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 (bit_depth 8) or uint16 array from any accepted frame image.

    uint8/uint16 arrays pass through (uint16 reduced to uint8 or uint8 widened to uint16 as
    ``bit_depth`` asks, full-scale); float arrays and ``(3, H, W)`` float tensors in [0, 1]
    are scaled and rounded.

    >>> int(to_rgb_array(np.full((2, 2, 3), 255, np.uint8), 16)[0, 0, 0])
    65535
    """
    if hasattr(image, "detach"):  # a torch tensor, (3, H, W) float in [0, 1]
        image = image.detach().float().cpu().numpy()
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
            image = np.transpose(image, (1, 2, 0))
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    want16 = bit_depth > 8
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * 257 if want16 else image
    if image.dtype == np.uint16:
        return image if want16 else ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype.kind == "f":
        top = 65535.0 if want16 else 255.0
        return np.clip(np.rint(image * top), 0, top).astype(np.uint16 if want16 else np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype} (need uint8, uint16 or float)")
