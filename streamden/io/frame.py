"""The Frame record that travels through the graph, and its colour metadata."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ColorInfo:
    """Colour metadata carried from the decoder to the encoder (FFmpeg's names).

    ``range`` is "tv" (limited) or "pc" (full); ``matrix``, ``primaries`` and
    ``transfer`` are FFmpeg enum values as ints (2 = unspecified).

    >>> ColorInfo().range
    'tv'
    """

    range: str = "tv"
    matrix: int = 2
    primaries: int = 2
    transfer: int = 2


@dataclass
class Frame:
    """One video frame: pixels plus timing and colour metadata from the container.

    ``image`` is either an ``(H, W, 3)`` RGB numpy array (uint8, or uint16 for sources
    above 8 bits, as it leaves the decoder) or, inside the core, a float torch tensor
    ``(3, H, W)`` in [0, 1]. ``pts`` and ``time_base`` come from the container and are never
    recomputed from ``index``. ``bit_depth`` is the source's bits per component.

    >>> f = Frame(np.zeros((4, 6, 3), np.uint8), pts=0, time_base=Fraction(1, 25), index=0)
    >>> f.height, f.width
    (4, 6)
    """

    image: Any
    pts: int | None
    time_base: Fraction | None
    index: int
    bit_depth: int = 8
    color: ColorInfo = field(default_factory=ColorInfo)
    sigma: float | None = None  # noise level on the 0-255 scale, when known or estimated
    new_sequence: bool = False  # first frame after a break (size change): temporal windows restart
    arrival: float | None = None  # live sources: time.monotonic() when the frame arrived
    tensor: Any = None            # live path: the frame already uploaded to the device, when it was

    @property
    def height(self) -> int:
        """Height in pixels, whatever the layout of ``image``."""
        return int(self.image.shape[0] if isinstance(self.image, np.ndarray) else self.image.shape[-2])

    @property
    def width(self) -> int:
        """Width in pixels, whatever the layout of ``image``."""
        return int(self.image.shape[1] if isinstance(self.image, np.ndarray) else self.image.shape[-1])

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or None when the container gave none."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    def with_image(self, image: Any) -> "Frame":
        """A copy of this frame's metadata around new pixels (any uploaded ``tensor`` is dropped)."""
        return replace(self, image=image, tensor=None)
