"""See a job work: a small web page with each stream's input and output, and its counters.

``streamden live ... --preview 8080`` and ``streamden denoise ... --preview 8080`` serve
``http://127.0.0.1:8080/``: for each stream the newest input and output side by side or
as a wipe, a 1:1 zoom on a region, and the counters, refreshed live (see
:mod:`streamden.preview.server` for the endpoints). The pieces:

* :class:`~streamden.preview.feed.StreamFeed`: what the pipeline calls, once per frame; it
  keeps references, nothing more, so the pipeline never waits for a viewer;
* :class:`~streamden.preview.feed.JpegEncoder`: one thread that scales and encodes the
  newest pairs at most ``fps`` times a second and at most ``width`` pixels wide, and only
  while someone looked at the preview in the last :data:`WATCH_SECONDS`;
* :class:`~streamden.preview.server.PreviewServer`: the HTTP server (standard library).

A :class:`Preview` binds 127.0.0.1 unless given a ``host``; with a host it makes a random
access token that every request must carry (:attr:`Preview.url` holds it).

>>> preview = Preview(0)
>>> feed = preview.add_stream("cam")
>>> preview.start(); preview.url.startswith("http://127.0.0.1:")
True
>>> preview.stop()
"""
from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Callable

from ..errors import ConfigError
from ..serve import display_host
from .feed import JpegEncoder, StreamFeed
from .server import PreviewServer

__all__ = ["Preview", "StreamFeed", "open_preview", "WATCH_SECONDS"]

#: After the last request, how long the preview keeps encoding (nobody watching costs nothing).
WATCH_SECONDS = 10.0

#: How long /stats.json answers are reused (many viewers, one computation).
_STATS_SECONDS = 0.25

#: How long /stats.json waits for a stream's first still when a frame is there to encode.
_FIRST_WAIT = 2.0


class Preview:
    """A job's preview: its streams' feeds, the encoder thread and the HTTP server.

    ``port`` 0 picks a free port. ``host`` None binds 127.0.0.1 with no token; any other
    host (``0.0.0.0`` for every interface) requires ``token`` (a random one when None) on
    every request. ``fps`` and ``width`` cap the preview's rate and width per side;
    ``title`` heads the page. Binds at construction (OSError when it cannot);
    :meth:`start` serves, :meth:`stop` closes; a job given a preview starts it once its input
    is open and stops it when it ends. Jobs add their streams with :meth:`add_stream` and
    set ``kind`` (``live`` or ``file``).
    """

    def __init__(self, port: int = 0, host: str | None = None, *, fps: float = 5.0, width: int = 960,
                 title: str = "streamden", token: str | None = None) -> None:
        self.host = host or "127.0.0.1"
        self.token = (token or secrets.token_urlsafe(18)) if host is not None else None
        self.title = title
        self.kind = "job"
        self.feeds: list[StreamFeed] = []
        self.started = False
        self.closing = False
        self._last_request = -float("inf")
        self._stats: tuple[float, dict[str, Any]] | None = None
        self._stats_lock = threading.Lock()
        self.encoder = JpegEncoder(self.feeds, fps=fps, width=width, watching=self.watching)
        self.server = PreviewServer(self, self.host, port)
        self.port = self.server.port

    @property
    def url(self) -> str:
        """The page's address, with the token when there is one."""
        query = f"?token={self.token}" if self.token else ""
        return f"http://{display_host(self.host)}:{self.port}/{query}"

    def add_stream(self, name: str, counters: Callable[[], list[tuple[str, str]]] | None = None) -> StreamFeed:
        """A new stream's feed (stream number = its position); ``counters`` gives its rows."""
        feed = StreamFeed(name, counters)
        self.feeds.append(feed)
        return feed

    def start(self) -> None:
        """Start the encoder and the server (once; later calls do nothing)."""
        if self.started:
            return
        self.started = True
        self.encoder.start()
        self.server.start()

    def stop(self) -> None:
        """Close the server, end open streams and stop the encoder (once; also unstarted)."""
        if self.closing:
            return
        self.closing = True
        for feed in self.feeds:
            feed.wake()
        self.server.stop()
        self.encoder.stop()

    def touch(self) -> None:
        """Note a request: someone is watching (a first request wakes the encoder)."""
        was_watching = self.watching()
        self._last_request = time.monotonic()
        if not was_watching:
            self.encoder.wake()

    def watching(self) -> bool:
        """True while the last request is less than :data:`WATCH_SECONDS` old."""
        return time.monotonic() - self._last_request < WATCH_SECONDS

    def stats(self) -> dict[str, Any]:
        """What ``/stats.json`` answers: the job, the preview settings, each stream's still
        version, size, sigma, path and counters (recomputed at most every 0.25 s)."""
        with self._stats_lock:
            now = time.monotonic()
            if self._stats is not None and now - self._stats[0] < _STATS_SECONDS:
                return self._stats[1]
            streams = []
            for index, feed in enumerate(self.feeds):
                if feed.version == 0 and feed.pending:   # a first viewer: show the frame at once
                    self.encoder.wake()
                    feed.wait_newer(0, _FIRST_WAIT)
                still = feed.still()
                streams.append({
                    "index": index, "name": feed.name, "version": feed.version,
                    "size": list(still.size) if still else None,
                    "preview_size": [int(still.small["input"].shape[1]), int(still.small["input"].shape[0])]
                    if still else None,
                    "sigma": feed.sigma, "path": feed.path,
                    "counters": [[label, text] for label, text in feed.counters()],
                })
            data = {"title": self.title, "kind": self.kind, "fps": self.encoder.fps, "width": self.encoder.width,
                    "encoder_cpu_seconds": round(self.encoder.cpu_seconds, 3), "streams": streams}
            self._stats = (now, data)
            return data


def open_preview(port: int, host: str | None = None, *, title: str = "streamden", **options: Any) -> Preview:
    """:class:`Preview` for the ``--preview PORT`` and ``--preview-host HOST`` options: a bad
    port or an address it cannot listen on is a ConfigError naming the option.

    >>> open_preview(70000)
    Traceback (most recent call last):
    ...
    streamden.errors.ConfigError: --preview must be a TCP port (0-65535), got 70000
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--preview must be a TCP port (0-65535), got {port}")
    try:
        return Preview(port, host, title=title, **options)
    except OSError as exc:
        given = f"--preview {port}" + (f" --preview-host {host}" if host is not None else "")
        raise ConfigError(f"{given}: cannot listen on {host or '127.0.0.1'}:{port} ({exc.strerror or exc})") from None
