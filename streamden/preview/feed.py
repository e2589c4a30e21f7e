"""The latest frames of a stream for its preview: a cheap hook for the pipeline, JPEGs elsewhere.

:class:`StreamFeed` is what the pipeline calls. :meth:`StreamFeed.offer` keeps a reference to
the latest input and output images (no copy: nothing in the pipeline writes into an image
it has handed on, which the pacer's repeats and the outputs rely on too) under a lock that
only ever guards a few assignments, so the pipeline never waits for a viewer. A file job sees
a frame's input and its output in two different threads: :meth:`StreamFeed.sample_input`
keeps one input frame per preview period (at most :data:`WAITING` at a time) and
:meth:`StreamFeed.sample_output` pairs it with its output by frame index.

:class:`JpegEncoder` is one thread per preview: every ``1 / fps`` seconds, while someone has
looked at the preview lately, it takes each feed's newest pair, scales both sides to at most
``width`` pixels wide and encodes them as JPEG into a :class:`Still`. A feed keeps its last
:data:`KEEP` stills, so a page can fetch the input and the output of the same version.

>>> import numpy as np
>>> feed = StreamFeed("cam")
>>> frame = np.zeros((48, 64, 3), np.uint8)
>>> feed.offer(frame, frame + 50, sigma=20.0, path="full")
>>> encoder = JpegEncoder([feed], fps=5, width=32)
>>> encoder.encode_pending(); still = feed.still()
>>> still.version, still.small["input"].shape, still.jpeg("both")[:2] == b"\\xff\\xd8"
(1, (24, 32, 3), True)
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["StreamFeed", "Still", "JpegEncoder", "SIDES", "KEEP", "WAITING", "scaled", "to_uint8"]

#: The sides a still has: the input, the output, and both side by side.
SIDES = ("input", "output", "both")

#: Stills a feed keeps (a page asks for the input and the output of one version in turn).
KEEP = 4

#: Input frames a file job's feed holds at most while their outputs are on the way.
WAITING = 8

#: JPEG quality of the previews (OpenCV's scale, 0-100).
QUALITY = 80

#: The largest region (pixels per side) a 1:1 crop may ask for.
MAX_CROP = 1024


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An RGB image as uint8 (16-bit sources keep their top 8 bits).

    >>> int(to_uint8(np.full((1, 1, 3), 65535, np.uint16))[0, 0, 0])
    255
    """
    return image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)


def _jpeg(rgb: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a preview JPEG")
    return data.tobytes()


def scaled(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` as uint8 at ``size`` (width, height): averaged down by a whole factor first
    (alias-free, and OpenCV's fast path: a fractional area resize costs 5x more), then linear.

    >>> scaled(np.zeros((720, 1280, 3), np.uint8), (960, 540)).shape
    (540, 960, 3)
    """
    import cv2

    image = to_uint8(image)
    height, width = image.shape[:2]
    factor = min(width // size[0], height // size[1])
    if factor >= 2:
        image = image[:height - height % factor, :width - width % factor]
        image = cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image


@dataclass
class Still:
    """One published pair: the full-size images (for 1:1 crops), the scaled ones, their JPEGs.

    ``version`` counts the stills of a feed from 1; ``sigma`` and ``path`` are those of the
    frame (None where unknown); ``when`` is its ``time.monotonic()``.
    """

    version: int
    input: np.ndarray
    output: np.ndarray
    small: dict[str, np.ndarray]
    jpegs: dict[str, bytes]
    sigma: float | None = None
    path: str | None = None
    when: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """Full width and height of the frames."""
        return int(self.input.shape[1]), int(self.input.shape[0])

    def jpeg(self, side: str) -> bytes:
        """The scaled JPEG of ``side`` (``input``, ``output`` or ``both``, made on first use)."""
        with self._lock:
            if side == "both" and "both" not in self.jpegs:
                self.jpegs["both"] = _jpeg(np.hstack([self.small["input"], self.small["output"]]))
            return self.jpegs[side]

    def crop(self, side: str, x: int, y: int, width: int, height: int) -> bytes:
        """A JPEG of the region at (``x``, ``y``) of ``width`` x ``height`` full-size pixels
        (clipped to the frame and to :data:`MAX_CROP`) of ``side``: 1:1, not scaled."""
        w, h = self.size
        width, height = max(1, min(width, MAX_CROP, w)), max(1, min(height, MAX_CROP, h))
        x, y = min(max(0, x), w - width), min(max(0, y), h - height)
        parts = [getattr(self, s)[y:y + height, x:x + width] for s in (("input", "output") if side == "both" else (side,))]
        return _jpeg(np.hstack([to_uint8(p) for p in parts]))


class StreamFeed:
    """The preview side of one stream: the newest pair offered, and the stills made of it.

    ``name`` labels the stream on the page; ``counters`` (set by the job) returns its
    counters as ``(label, text)`` rows. ``sample_every`` is the preview period, which a file
    job's input sampling follows (the encoder sets it).
    """

    def __init__(self, name: str, counters: Callable[[], list[tuple[str, str]]] | None = None) -> None:
        self.name = name
        self.counters = counters or (lambda: [])
        self.sample_every = 0.2
        self.sigma: float | None = None
        self.path: str | None = None
        self.offered = 0
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, np.ndarray, float | None, str | None, float] | None = None
        self._waiting: OrderedDict[int, np.ndarray] = OrderedDict()
        self._last_sample = -float("inf")
        self._stills: deque[Still] = deque(maxlen=KEEP)
        self._version = 0
        self._encoding = False
        self.changed = threading.Condition(threading.Lock())

    # -- the pipeline's side (must stay cheap) -----------------------------------------
    def offer(self, input: np.ndarray, output: np.ndarray, sigma: float | None = None,
              path: str | None = None) -> None:
        """The newest ``(H, W, 3)`` input image and its output (references, not copies)."""
        now = time.monotonic()
        with self._lock:
            self._latest = (input, output, sigma, path, now)
            self.offered += 1
            if sigma is not None:
                self.sigma = sigma
            if path is not None:
                self.path = path

    def sample_input(self, key: int, image: np.ndarray) -> None:
        """A file job's input frame ``key``: kept once per preview period until its output comes."""
        now = time.monotonic()
        if now - self._last_sample < self.sample_every:
            return
        with self._lock:
            self._last_sample = now
            self._waiting[key] = image
            while len(self._waiting) > WAITING:
                self._waiting.popitem(last=False)

    def sample_output(self, key: int, image: np.ndarray, sigma: float | None = None) -> None:
        """A file job's output frame ``key``: offered with its input if that was kept."""
        if not self._waiting:
            return
        with self._lock:
            input = self._waiting.pop(key, None)
            if input is None:
                return
            for older in [k for k in self._waiting if k < key]:  # their outputs will not come
                del self._waiting[older]
        self.offer(input, image, sigma)

    # -- the preview's side ------------------------------------------------------------
    def take(self) -> tuple[np.ndarray, np.ndarray, float | None, str | None, float] | None:
        """The newest pair not yet taken (None if there is none)."""
        with self._lock:
            latest, self._latest = self._latest, None
            self._encoding = latest is not None
        return latest

    @property
    def pending(self) -> bool:
        """True when a pair was offered that no still shows yet (or is being encoded)."""
        return self._latest is not None or self._encoding

    def publish(self, still: Still) -> None:
        """Add ``still`` (its version is set here) and wake whoever waits for one."""
        with self.changed:
            self._version += 1
            still.version = self._version
            self._stills.append(still)
            self._encoding = False
            self.changed.notify_all()

    def still(self, version: int | None = None) -> Still | None:
        """Still ``version`` if it is still kept, else the newest one (None before the first)."""
        stills = list(self._stills)
        if version is not None:
            for still in stills:
                if still.version == version:
                    return still
        return stills[-1] if stills else None

    def wait_newer(self, version: int, timeout: float) -> Still | None:
        """The newest still once its version exceeds ``version``; None after ``timeout`` seconds."""
        with self.changed:
            newer = self.changed.wait_for(lambda: self._version > version and bool(self._stills), timeout)
            return self._stills[-1] if newer else None

    def wake(self) -> None:
        """Wake every waiter (the preview is closing)."""
        with self.changed:
            self.changed.notify_all()

    @property
    def version(self) -> int:
        """The newest still's version (0 before the first)."""
        return self._version


class JpegEncoder:
    """One thread that turns the feeds' newest pairs into stills at most ``fps`` times a
    second, scaled to at most ``width`` pixels wide per side, while ``watching()`` is true.

    ``cpu_seconds`` is the CPU time the thread has used (what the preview costs the job).
    """

    def __init__(self, feeds: Sequence[StreamFeed], fps: float = 5.0, width: int = 960,
                 watching: Callable[[], bool] = lambda: True) -> None:
        if fps <= 0 or width < 16:
            raise ValueError(f"preview rate must be positive and width at least 16 px, got {fps} fps, {width} px")
        self.feeds = feeds
        self.fps = float(fps)
        self.width = int(width)
        self.watching = watching
        self.cpu_seconds = 0.0
        self.stills = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Encode now instead of at the next tick (a first viewer arrived)."""
        self._wake.set()

    def start(self) -> None:
        """Start the encoding thread."""
        self._thread = threading.Thread(target=self._run, name="preview encoder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the encoding thread (it finishes the still it is making)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        period = 1.0 / self.fps
        due = time.monotonic()
        cpu = time.thread_time()
        while not self._stop.is_set():
            for feed in self.feeds:
                feed.sample_every = period
            if self.watching():
                self.encode_pending()
            self.cpu_seconds = time.thread_time() - cpu
            due = max(due + period, time.monotonic())   # late: wait a full period, no catching up
            self._wake.wait(due - time.monotonic())
            self._wake.clear()

    def encode_pending(self) -> None:
        """Make a still of each feed's newest pair, where a new one was offered."""
        for feed in self.feeds:
            pair = feed.take()
            if pair is None:
                continue
            input, output, sigma, path, when = pair
            height, width = input.shape[:2]
            scale = min(1.0, self.width / width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = {"input": scaled(input, size), "output": scaled(output, size)}
            jpegs = {side: _jpeg(image) for side, image in small.items()}
            feed.publish(Still(0, input, output, small, jpegs, sigma, path, when))
            self.stills += 1
