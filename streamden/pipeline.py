"""The denoising stages of the graph: upload, denoise (streaming FastDVDnet), download.

Each stage is a graph node, so on a GPU the copies overlap the network; on a CPU the
threads cost next to nothing. Frames keep their pts, time_base and colour metadata: only
``image`` (and ``sigma``) change on the way through.
"""
from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch

from .errors import ConfigError
from .graph import Node
from .io.frame import Frame
from .noise.estimate import SigmaTracker, estimate_level
from .transfer import DeviceToHost, HostToDevice

if TYPE_CHECKING:
    from .config import DenoiseConfig
    from .engine import Engine


def parse_sigma(value: str | float | int | None) -> float | None:
    """``"auto"`` or None -> None (estimate per frame); a number -> float on the 0-255 scale.

    >>> parse_sigma("25"), parse_sigma("auto")
    (25.0, None)
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        sigma = float(value)
    except ValueError:
        raise ConfigError(f"sigma must be a number on the 0-255 scale or 'auto', got {value!r}") from None
    if not 0 <= sigma <= 255:
        raise ConfigError(f"sigma must lie in [0, 255] (0-255 scale), got {sigma}")
    return sigma


def parse_fps(value: str | float | int | None) -> Fraction | None:
    """``None`` keeps the source rate; ``"25"``, ``"30000/1001"`` or ``29.97`` -> a Fraction.

    >>> parse_fps("30000/1001")
    Fraction(30000, 1001)
    """
    if value is None or value == "":
        return None
    try:
        fps = Fraction(str(value)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"fps must be a positive number or a ratio such as 30000/1001, got {value!r}") from None
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {value!r}")
    return fps


def decode_options(config: "DenoiseConfig") -> dict:
    """The keyword arguments of :func:`~streamden.io.source.open_source` that ``config.input`` sets.

    >>> from streamden.config import make_config
    >>> sorted(decode_options(make_config()))[:2]
    ['hwaccel', 'isolate']
    """
    return dict(isolate=config.input.isolate, max_corrupt_fraction=config.input.max_corrupt_fraction,
                max_pixels=config.input.max_pixels, on_crash=config.input.on_crash,
                stall_seconds=config.input.stall_seconds, hwaccel=config.input.hwaccel)


class UploadNode(Node):
    """numpy RGB -> float tensor on the device; sets ``frame.sigma`` (given, or estimated and smoothed)."""

    def __init__(self, device: torch.device, sigma: float | None, smoothing: float = 0.9):
        super().__init__(name="upload")
        self.device = device
        self.sigma = sigma
        self.tracker = SigmaTracker(smoothing)
        self.to_device = HostToDevice(device)

    def process(self, frame: Frame) -> Iterable[Frame]:
        tensor = self.to_device(frame.image)
        sigma = self.sigma if self.sigma is not None else self.tracker.update(estimate_level(tensor))
        out = frame.with_image(tensor)
        out.sigma = sigma
        yield out


class DenoiseNode(Node):
    """Runs a stream of the :class:`~streamden.engine.Engine`; outputs lag the input by the
    model's look-ahead (2 frames). Each node gets its own stream (aligner, stage-1 cache)."""

    def __init__(self, engine: "Engine"):
        super().__init__(name="denoise")
        self.engine = engine
        self.stream = engine.stream()
        self.pending: deque[Frame] = deque()  # frames pushed whose output is not out yet

    def process(self, frame: Frame) -> Iterable[Frame]:
        if frame.new_sequence:  # e.g. a size change mid-stream: end the window, start anew
            yield from self._emit(self.stream.finish())
        self.pending.append(frame)
        yield from self._emit(self.stream.push(frame.image, frame.sigma))

    def flush(self) -> Iterable[Frame]:
        yield from self._emit(self.stream.finish())

    def _emit(self, ready: list[tuple[int, torch.Tensor]]) -> Iterable[Frame]:
        for _, image in ready:  # outputs come in input order
            yield self.pending.popleft().with_image(image)


class DownloadNode(Node):
    """float tensor -> numpy RGB of the source's bit depth (uint8, or uint16 above 8 bits)."""

    def __init__(self):
        super().__init__(name="download")
        self.to_host = DeviceToHost()

    def process(self, frame: Frame) -> Iterable[Frame]:
        dtype = np.uint8 if frame.bit_depth <= 8 else np.uint16
        yield frame.with_image(self.to_host(frame.image, dtype))
