"""Live sources: a URL or capture device read with timeouts, supervised so it never dies.

:class:`LiveSource` is a :class:`~streamden.graph.SourceNode` whose :meth:`LiveSource.generate`
yields decoded :class:`~streamden.io.frame.Frame` records for as long as the run lasts. The
supervisor inside it re-opens the input whenever opening fails, reading fails, the stream
ends, or no frame has arrived for ``read_timeout`` seconds, waiting between attempts with
capped exponential backoff and jitter (:class:`Backoff`). It only stops when the run stops
(or after ``max_attempts`` failed opens in a row, if set).

Timeouts are enforced twice, because FFmpeg's option names and units differ per protocol
and version: PyAV's own interrupt callback (``av.open(..., timeout=(open, read))``) aborts
any blocking call after the given seconds whatever the protocol, and the protocol options
below are passed as well (microseconds unless noted). Options a protocol does not know are
ignored by FFmpeg.

========  ===========================================================
protocol  options set
========  ===========================================================
rtsp      ``rtsp_transport=tcp``, ``timeout`` (socket I/O, FFmpeg >= 5)
tcp       ``timeout`` (socket I/O)
udp       ``timeout`` (a read with no datagram), ``overrun_nonfatal=1``
http(s)   ``rw_timeout``, ``reconnect=1``
rtmp/srt  ``rw_timeout``
========  ===========================================================

Every frame is stamped with its arrival time (``frame.arrival``, :func:`time.monotonic`).
"""
from __future__ import annotations

import logging
import random
import time
from fractions import Fraction
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from ..errors import InputError
from ..graph.node import SourceNode
from .frame import Frame
from .pixels import video_frame_to_rgb
from .probe import color_of

__all__ = ["LiveSource", "Backoff", "input_options", "is_live_url"]

log = logging.getLogger(__name__)

#: Schemes opened as network streams; anything else with a scheme is tried as a URL too.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")


#: Capture-device prefixes: ``v4l2:/dev/video0`` opens /dev/video0 with FFmpeg's v4l2 demuxer.
DEVICE_FORMATS = ("v4l2", "avfoundation", "dshow")


def is_live_url(spec: str) -> bool:
    """True for a network URL (``rtsp://``, ``udp://``...) or a capture device (``v4l2:/dev/video0``).

    >>> is_live_url("rtsp://cam/stream"), is_live_url("clip.mp4"), is_live_url("v4l2:/dev/video0")
    (True, False, True)
    """
    scheme = urlparse(spec).scheme.lower()
    return scheme in LIVE_SCHEMES or scheme in DEVICE_FORMATS


class Backoff:
    """Capped exponential backoff with jitter: attempt ``n`` waits ``U(0.5, 1) * min(cap, base * 2**n)``.

    :meth:`next` returns the wait before the next attempt and counts it; :meth:`reset`
    (after a success) starts again from ``base``. :meth:`bound` is the longest wait the
    next attempt can get, which tests use as the reconnect bound.

    >>> b = Backoff(base=0.5, cap=4.0, rng=random.Random(0))
    >>> [b.bound() for _ in range(5) if b.next()]
    [1.0, 2.0, 4.0, 4.0, 4.0]
    >>> b.reset(); b.bound()
    0.5
    """

    def __init__(self, base: float = 0.5, cap: float = 10.0, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"Backoff: need 0 < base <= cap, got base={base} cap={cap}")
        self.base = float(base)
        self.cap = float(cap)
        self.rng = rng or random.Random()
        self.attempt = 0

    def bound(self) -> float:
        """The largest wait the next call to :meth:`next` can return."""
        return min(self.cap, self.base * 2 ** self.attempt)

    def next(self) -> float:
        """The wait before the next attempt (jittered), advancing the exponent."""
        wait = self.bound() * self.rng.uniform(0.5, 1.0)
        self.attempt = min(self.attempt + 1, 30)
        return wait

    def reset(self) -> None:
        """Back to the shortest wait (call after a successful attempt)."""
        self.attempt = 0


def input_options(url: str, open_timeout: float, read_timeout: float) -> dict[str, str]:
    """FFmpeg options that bound opening and reading ``url`` (see the module table).

    >>> input_options("rtsp://cam/s", 5, 2)["rtsp_transport"]
    'tcp'
    >>> input_options("udp://127.0.0.1:5000", 5, 2)["timeout"]
    '2000000'
    """
    scheme = urlparse(url).scheme.lower()
    micro = str(int(read_timeout * 1_000_000))
    # Small probes: a live stream must not wait seconds for stream analysis at each connect.
    opts = {"analyzeduration": "500000", "probesize": "500000"}
    if scheme in ("rtsp", "rtsps"):
        opts.update(rtsp_transport="tcp", timeout=micro)
    elif scheme in ("tcp", "udp"):
        opts["timeout"] = micro
        if scheme == "udp":
            opts.update(overrun_nonfatal="1", fifo_size="50000")
    elif scheme in ("http", "https"):
        opts.update(rw_timeout=micro, reconnect="1")
    elif scheme in ("rtmp", "rtmps", "srt"):
        opts["rw_timeout"] = micro
    return opts


class LiveSource(SourceNode):
    """Frames from a live URL or capture device, re-opened whenever it fails or goes silent.

    ``open_timeout`` bounds connecting and stream analysis; ``read_timeout`` is the longest
    silence (no frame decoded) before the connection is dropped and re-opened. Waits between
    attempts come from ``backoff`` (default ``Backoff(0.5, 10)``). ``options`` adds or
    overrides FFmpeg options; ``format`` forces a demuxer (``v4l2:/dev/video0`` is a short
    form of ``/dev/video0`` with format ``v4l2``).
    ``on_event(kind, detail)`` hears ``"connected"``, ``"disconnected"`` and ``"retry"``
    (detail: the error text, or the wait in seconds). After :meth:`generate` started:
    ``fps`` (the stream's nominal rate, a Fraction, 25 when it declares none), ``width``,
    ``height``, ``connects`` and ``failures`` (failed opens and broken reads).

    Frames carry the stream's pts and time base, ``index`` counting every frame since the
    start (across reconnects) and its ``arrival`` time set (monotonic seconds).

    >>> src = LiveSource("udp://127.0.0.1:5000", read_timeout=2.0)  # doctest: +SKIP
    >>> frame = next(src.generate()); frame.arrival > 0  # doctest: +SKIP
    True
    """

    def __init__(self, url: str, *, open_timeout: float = 5.0, read_timeout: float = 2.0,
                 backoff: Backoff | None = None, options: dict[str, str] | None = None,
                 format: str | None = None, max_attempts: int | None = None,
                 on_event: Callable[[str, Any], None] | None = None, name: str | None = None) -> None:
        super().__init__(name=name or "live-source")
        if open_timeout <= 0 or read_timeout <= 0:
            raise InputError(f"{url}: open and read timeouts must be positive "
                             f"(got {open_timeout}, {read_timeout})")
        self.url = str(url)
        scheme = urlparse(self.url).scheme.lower()
        if format is None and scheme in DEVICE_FORMATS:   # v4l2:/dev/video0 -> format v4l2, /dev/video0
            format, self.url = scheme, self.url[len(scheme) + 1:]
        self.open_timeout = float(open_timeout)
        self.read_timeout = float(read_timeout)
        self.backoff = backoff or Backoff(0.5, 10.0)
        self.options = {**input_options(self.url, self.open_timeout, self.read_timeout), **(options or {})}
        self.format = format
        self.max_attempts = max_attempts
        self.on_event = on_event
        self.fps: Fraction | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.connects = 0
        self.failures = 0
        self._index = 0

    def _event(self, kind: str, detail: Any = None) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)

    def generate(self) -> Iterator[Frame]:
        """Yield frames until the run stops, reconnecting as needed (see the class docstring).

        >>> next(LiveSource("tcp://127.0.0.1:5000").generate()).index  # doctest: +SKIP
        0
        """
        failed_in_a_row = 0
        while not self.stopping:
            try:
                container = self._open()
            except Exception as exc:  # noqa: BLE001 - any failure to open means: try again
                self.failures += 1
                failed_in_a_row += 1
                if self.max_attempts is not None and failed_in_a_row >= self.max_attempts:
                    raise InputError(f"{self.url}: cannot open after {failed_in_a_row} attempts "
                                     f"({_reason(exc)})") from None
                if self._wait_retry(f"cannot open ({_reason(exc)})"):
                    break
                continue
            failed_in_a_row = 0
            self.connects += 1
            self._event("connected", self.connects)
            got_frames = False
            try:
                for frame in self._frames(container):
                    got_frames = True
                    yield frame
                    if self.stopping:
                        break
                reason = "stream ended"
            except Exception as exc:  # noqa: BLE001 - a broken stream is re-opened, never fatal
                reason = _reason(exc)
            finally:
                _close_quietly(container)
            if self.stopping:
                break
            self.failures += 1
            if got_frames:
                self.backoff.reset()  # it worked for a while: reconnect quickly
            self._event("disconnected", reason)
            if self._wait_retry(reason):
                break

    def _wait_retry(self, reason: str) -> bool:
        """Sleep the backoff wait; True if the run stopped meanwhile."""
        wait = self.backoff.next()
        log.info("%s: %s; retrying in %.2f s", self.url, reason, wait)
        self._event("retry", wait)
        return self.wait_stopping(wait)

    def _open(self):
        import av

        container = av.open(self.url, "r", format=self.format, options=dict(self.options),
                            timeout=(self.open_timeout, self.read_timeout))
        if not container.streams.video:
            _close_quietly(container)
            raise InputError(f"{self.url}: no video stream")
        return container

    def _frames(self, container) -> Iterator[Frame]:
        import av
        from av.video.reformatter import VideoReformatter

        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threading would delay each frame by a thread
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = Fraction(rate).limit_denominator(1001) if rate else (self.fps or Fraction(25))
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        reformatter = VideoReformatter()
        last_frame = time.monotonic()
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:  # a damaged packet: skip it, the next keyframe heals
                log.debug("%s: decode error (%s)", self.url, exc)
                decoded = []
            now = time.monotonic()
            if not decoded and now - last_frame > self.read_timeout:
                raise InputError(f"no frame for {now - last_frame:.1f} s")  # packets but no pictures
            for vf in decoded:
                image = video_frame_to_rgb(reformatter, vf, deep=False)
                self.height, self.width = image.shape[:2]
                frame = Frame(image=image, pts=vf.pts, time_base=time_base, index=self._index,
                              bit_depth=8, color=color_of(vf))
                frame.arrival = time.monotonic()
                last_frame = frame.arrival
                self._index += 1
                yield frame
            if self.stopping:
                return


def _close_quietly(container) -> None:
    try:
        container.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close
        pass


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).split(";")[0].strip()
