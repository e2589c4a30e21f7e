"""The preview of a file job (``streamden denoise --preview``): one stream and its progress.

The graph sees a frame's input and its output in different threads: a pass-through
:class:`PreviewTap` right after the source samples the input, the sink's ``on_frame``
callback (:meth:`FileWatch.on_frame`) pairs it with the output by frame index and counts
progress.

>>> from streamden.preview import Preview
>>> watch = FileWatch(Preview(0), "in.mp4")
>>> watch.counters()[0]
('frames', '0')
"""
from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable

from ..graph import Node

if TYPE_CHECKING:
    from ..io.frame import Frame
    from . import Preview
    from .feed import StreamFeed

__all__ = ["FileWatch", "PreviewTap", "clock"]


def clock(seconds: float | None) -> str:
    """Seconds as ``H:MM:SS`` (``M:SS`` under an hour); ``-`` when unknown.

    >>> clock(75), clock(3725.2), clock(None)
    ('1:15', '1:02:05', '-')
    """
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PreviewTap(Node):
    """Passes frames on unchanged, offering their input image to ``feed`` (sampled)."""

    def __init__(self, feed: "StreamFeed") -> None:
        super().__init__(name="preview")
        self.feed = feed

    def process(self, frame: "Frame") -> Iterable["Frame"]:
        self.feed.sample_input(frame.index, frame.image)
        yield frame


class FileWatch:
    """A file job's stream on ``preview`` (labelled ``name``): taps for its graphs, the
    ``on_start`` and ``on_frame`` callbacks of :func:`~streamden.api.denoise_video`, and the
    counters (frames done of the total, speed, elapsed time, ETA, sigma, size)."""

    def __init__(self, preview: "Preview", name: str) -> None:
        preview.kind = "file"
        self.preview = preview
        self.feed = preview.add_stream(name, self.counters)
        self.total: int | None = None
        self.done = 0
        self.size: tuple[int, int] | None = None
        self.started = time.monotonic()
        self._times: deque[float] = deque(maxlen=50)

    def tap(self) -> PreviewTap:
        """A new tap node (a node belongs to one graph run: one per segment)."""
        return PreviewTap(self.feed)

    def on_start(self, source: Any) -> None:
        """The job's source (or probe) is open: its frame count and size; the preview starts."""
        self.total = getattr(source, "estimated_frame_count", None) or getattr(source, "frame_count", None)
        width, height = getattr(source, "width", None), getattr(source, "height", None)
        self.size = (width, height) if width and height else None
        self.started = time.monotonic()
        self.preview.start()

    def on_frame(self, frame: "Frame") -> None:
        """A frame was written: count it, offer it with its input if that was sampled."""
        self.done += 1
        self._times.append(time.monotonic())
        self.feed.sample_output(frame.index, frame.image, frame.sigma)

    def fps(self) -> float | None:
        """Frames per second over the last 50 frames (None before two)."""
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def counters(self) -> list[tuple[str, str]]:
        """The rows the page shows."""
        fps = self.fps()
        elapsed = time.monotonic() - self.started
        rows = [("frames", f"{self.done}" + (f" / {self.total} ({100 * self.done / self.total:.1f} %)"
                                             if self.total else ""))]
        rows.append(("speed", f"{fps:.2f} fps" if fps else "-"))
        rows.append(("elapsed", clock(elapsed)))
        left = (self.total - self.done) / fps if fps and self.total and self.total >= self.done else None
        rows.append(("ETA", clock(left)))
        rows.append(("sigma", f"{self.feed.sigma:.1f}" if self.feed.sigma is not None else "-"))
        if self.size:
            rows.append(("size", f"{self.size[0]}x{self.size[1]}"))
        return rows
