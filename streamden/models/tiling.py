"""Run FastDVDnet on overlapping tiles: for huge frames (``--tile``) and after CUDA running out of memory.

Each of the two stages is tiled on its own. A tile's input is the tile plus ``overlap``
pixels of the real neighbouring image on each side (clipped at the frame's edges, where
the network sees the frame's own border exactly as without tiles); only the tile's centre
is kept. One denoising block sees 37 pixels on each side of an output pixel (its receptive
field, measured by back-propagation: see ``tests/reliability/test_tiling.py``), so with an
overlap of at least 37 every kept pixel saw exactly what it sees in a whole-frame pass,
and tiled output equals untiled output up to floating-point summation order (below 1e-4
on [0, 1], i.e. at most one 8-bit level after rounding). The default overlap is 40 and
tiles and overlaps are multiples of 4, because the block downsamples twice by 2 and its
result is only shift-invariant by multiples of 4.

>>> import torch
>>> from streamden.models.fastdvdnet import FastDVDnet
>>> net = FastDVDnet().eval()
>>> x, nm = torch.rand(1, 3, 3, 96, 96), torch.full((1, 1, 96, 96), 0.1)
>>> with torch.no_grad():
...     diff = (tiled_call(net.stage1, x, nm, tile=48, overlap=40) - net.stage1(x, nm)).abs().max()
>>> bool(diff < 1e-4)
True
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import ModelError
from .wrapper import Stage, StageWrapper

__all__ = ["RECEPTIVE_RADIUS", "DEFAULT_OVERLAP", "MIN_TILE", "tiled_call", "TiledModel", "maybe_tiled"]

log = logging.getLogger(__name__)

#: Pixels one denoising block sees on each side of an output pixel.
RECEPTIVE_RADIUS = 37
#: The default overlap: the receptive field rounded up to a multiple of 4.
DEFAULT_OVERLAP = 40
#: Out-of-memory fallback stops halving tiles below this size.
MIN_TILE = 64


def _round4(value: int) -> int:
    return max(4, (int(value) + 3) // 4 * 4)


def tiled_call(fn: Stage, x: torch.Tensor, noise_map: torch.Tensor, tile: int,
               overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """``fn(x, noise_map)`` computed tile by tile; ``x`` is ``(N, 3, 3, H, W)``, the map
    ``(N or 1, 1, H, W)``, H and W multiples of 4 (the engine pads frames so).

    >>> import torch
    >>> tiled_call(lambda x, m: x[:, 1], torch.rand(1, 3, 3, 8, 8), torch.zeros(1, 1, 8, 8), 4).shape
    torch.Size([1, 3, 8, 8])
    """
    tile, overlap = _round4(tile), _round4(overlap) if overlap else 0
    height, width = x.shape[-2:]
    if tile >= height and tile >= width:
        return fn(x, noise_map)
    out: torch.Tensor | None = None
    for y0 in range(0, height, tile):
        y1 = min(height, y0 + tile)
        a0, a1 = max(0, y0 - overlap), min(height, y1 + overlap)
        for x0 in range(0, width, tile):
            x1 = min(width, x0 + tile)
            b0, b1 = max(0, x0 - overlap), min(width, x1 + overlap)
            part = fn(x[..., a0:a1, b0:b1], noise_map[..., a0:a1, b0:b1])
            if out is None:
                out = part.new_empty((*part.shape[:-2], height, width))
            out[..., y0:y1, x0:x1] = part[..., y0 - a0:y1 - a0, x0 - b0:x1 - b0]
    return out


class TiledModel(StageWrapper):
    """A FastDVDnet (anything with ``stage1`` and ``stage2``) that runs on tiles.

    ``tile`` > 0 tiles every call. With ``tile`` = 0 calls run on whole frames until one
    raises ``torch.OutOfMemoryError`` (CUDA running out of memory); then the cache is
    emptied, the call is retried on tiles of half the frame's longer side, halving again
    on each further failure down to :data:`MIN_TILE`, and that tile size is kept for the
    rest of the run (a warning says so). ``tiles_used`` tells the tile size in force.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> TiledModel(FastDVDnet(), tile=128).tile
    128
    """

    def __init__(self, model: nn.Module, tile: int = 0, overlap: int = 0) -> None:
        super().__init__(model)
        if tile < 0 or overlap < 0:
            raise ModelError(f"tile and tile overlap must not be negative, got {tile} and {overlap}")
        self.tile = _round4(tile) if tile else 0
        self.overlap = _round4(overlap) if overlap else DEFAULT_OVERLAP
        if self.overlap < RECEPTIVE_RADIUS:
            log.warning("tile overlap %d is below the network's receptive field (%d px): tile seams "
                        "will differ from a whole-frame pass", self.overlap, RECEPTIVE_RADIUS)

    @property
    def tiles_used(self) -> int:
        """The tile size in force (0 = whole frames)."""
        return self.tile

    def _call(self, fn: Stage, x: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                if self.tile:
                    return tiled_call(fn, x, noise_map, self.tile, self.overlap)
                return fn(x, noise_map)
            except torch.OutOfMemoryError:
                longest = max(x.shape[-2:])
                smaller = _round4((self.tile or longest) // 2)
                if smaller < MIN_TILE:
                    raise ModelError(f"out of GPU memory even on {self.tile or longest}-pixel tiles; "
                                     "use a smaller --tile or the CPU") from None
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("out of GPU memory on %s; continuing on %d-pixel tiles (overlap %d)",
                            f"{self.tile}-pixel tiles" if self.tile else "whole frames", smaller, self.overlap)
                self.tile = smaller


def maybe_tiled(model: nn.Module, tile: int = 0, overlap: int = 0,
                device: torch.device | str = "cpu") -> nn.Module:
    """``model`` wrapped in :class:`TiledModel` when ``tile`` is set or it runs on CUDA (where
    running out of memory falls back to tiles); the model itself otherwise.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> type(maybe_tiled(FastDVDnet(), 0, 0, "cpu")).__name__, type(maybe_tiled(FastDVDnet(), 256)).__name__
    ('FastDVDnet', 'TiledModel')
    """
    if tile or torch.device(device).type == "cuda":
        return TiledModel(model, tile, overlap)
    return model
