"""The preview's HTTP endpoints (standard library only).

``GET /``
    the page (:file:`page.html`, read from the package once; nothing in a URL reaches the
    file system);
``GET /stats.json``
    every stream's still version, size and counters;
``GET /snapshot.jpg?stream=N&side=input|output|both[&v=VERSION][&x=X&y=Y&w=W&h=H]``
    the newest still (or still ``v`` while it is kept) as JPEG; with a region, that region
    of the full-size frame at 1:1;
``GET /stream.mjpg?stream=N&side=input|output|both``
    a ``multipart/x-mixed-replace`` stream of the stills as they are made (MJPEG; at most
    :data:`MAX_STREAMS` at once).

Anything else is 404. When the preview has a token (``--preview-host``), every request must
carry it as ``?token=`` or as the cookie the page's first request sets; without one the
server only answers requests addressed to a loopback name (``Host`` header), which keeps a
web page elsewhere from reading the preview through DNS rebinding.
"""
from __future__ import annotations

import hmac
import html
import json
import threading
import time
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ..serve import BackgroundServer
from .feed import SIDES

if TYPE_CHECKING:
    from . import Preview

__all__ = ["PreviewServer", "MAX_STREAMS", "LOOPBACK_NAMES"]

#: MJPEG streams served at once (each holds a thread); more are answered 503.
MAX_STREAMS = 32

#: Host names a preview without a token answers to.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

#: Seconds a snapshot waits for a still when none is ready yet.
SNAPSHOT_WAIT = 3.0


class _BadRequest(Exception):
    pass


def _int(query: dict[str, list[str]], key: str, default: int | None = None) -> int:
    values = query.get(key)
    if not values:
        if default is None:
            raise _BadRequest(f"missing {key}=")
        return default
    try:
        return int(values[0])
    except ValueError:
        raise _BadRequest(f"{key} must be an integer") from None


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header: ``[::1]:8080`` -> ``::1``, ``localhost:80`` -> ``localhost``.

    >>> _host_name("[::1]:8080"), _host_name("localhost:80"), _host_name("127.0.0.1")
    ('::1', 'localhost', '127.0.0.1')
    """
    value = value.strip()
    if value.startswith("["):
        return value[1:].split("]")[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class PreviewServer:
    """Serves ``preview`` (a :class:`~streamden.preview.Preview`) on ``host``:``port``;
    binds at construction (OSError if it cannot)."""

    def __init__(self, preview: "Preview", host: str, port: int) -> None:
        page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        page = page.replace("{{title}}", html.escape(preview.title)).encode()
        streams = threading.BoundedSemaphore(MAX_STREAMS)

        class Handler(BaseHTTPRequestHandler):
            timeout = 60          # a client that stops reading frees its thread after this long
            server_version = "streamden-preview"
            sys_version = ""
            head_only = False     # a HEAD request: the GET answer's status and headers, no body

            def do_HEAD(self) -> None:  # noqa: N802 - the http.server API (monitoring: curl -I)
                self.head_only = True
                try:
                    self.do_GET()
                finally:
                    self.head_only = False

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if not self._allowed(query):
                    return
                preview.touch()
                try:
                    route = {"/": self._page, "/stats.json": self._stats, "/snapshot.jpg": self._snapshot,
                             "/stream.mjpg": self._stream}.get(url.path)
                    if route is None:
                        self._text(404, "not found")
                        return
                    route(query)
                except _BadRequest as exc:
                    self._text(400, str(exc))
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    self.close_connection = True   # the viewer went away

            def _allowed(self, query: dict[str, list[str]]) -> bool:
                token = preview.token
                if token is None:
                    if _host_name(self.headers.get("Host") or "") not in LOOPBACK_NAMES:
                        self._text(403, "preview: requests must address 127.0.0.1 (use --preview-host to expose it)")
                        return False
                    return True
                given = (query.get("token") or [None])[0]
                if given is None:
                    jar = SimpleCookie(self.headers.get("Cookie") or "")
                    given = jar[self._cookie].value if self._cookie in jar else None
                if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                    self._text(403, "preview: access token required (open the URL streamden printed at start)")
                    return False
                return True

            @property
            def _cookie(self) -> str:
                return f"streamden_preview_{self.server.server_address[1]}"   # one per port: previews side by side

            def _headers(self, status: int, content_type: str, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Referrer-Policy", "no-referrer")

            def _send(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
                self._headers(status, content_type, len(body))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if not self.head_only:
                    self.wfile.write(body)

            def _text(self, status: int, message: str) -> None:
                self._send(status, "text/plain; charset=utf-8", (message + "\n").encode())

            def _page(self, query: dict[str, list[str]]) -> None:
                extra = {"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                    "style-src 'self' 'unsafe-inline'; img-src 'self'; "
                                                    "frame-ancestors 'none'",
                         "X-Frame-Options": "DENY"}
                if preview.token is not None:
                    extra["Set-Cookie"] = f"{self._cookie}={preview.token}; Path=/; HttpOnly; SameSite=Strict"
                self._send(200, "text/html; charset=utf-8", page, extra)

            def _stats(self, query: dict[str, list[str]]) -> None:
                self._send(200, "application/json", json.dumps(preview.stats()).encode())

            def _feed(self, query: dict[str, list[str]]):
                index = _int(query, "stream", 0)
                if not 0 <= index < len(preview.feeds):
                    raise _BadRequest(f"stream must be 0-{len(preview.feeds) - 1}")
                side = (query.get("side") or ["both"])[0]
                if side not in SIDES:
                    raise _BadRequest(f"side must be one of {', '.join(SIDES)}")
                return preview.feeds[index], side

            def _snapshot(self, query: dict[str, list[str]]) -> None:
                feed, side = self._feed(query)
                version = _int(query, "v", -1)
                still = feed.still(version if version >= 0 else None)
                stale = still is None or (version < 0 and time.monotonic() - still.when > 2 / preview.encoder.fps)
                if stale and feed.pending:   # the encoder was idle (nobody watching): wait for the newest frame
                    preview.encoder.wake()
                    still = feed.wait_newer(feed.version, SNAPSHOT_WAIT) or still
                if still is None:
                    self._send(503, "text/plain; charset=utf-8", b"no frame yet\n", {"Retry-After": "1"})
                    return
                if "x" in query:
                    body = still.crop(side, _int(query, "x"), _int(query, "y"), _int(query, "w", 256),
                                      _int(query, "h", 256))
                else:
                    body = still.jpeg(side)
                self._send(200, "image/jpeg", body, {"X-Streamden-Version": str(still.version)})

            def _stream(self, query: dict[str, list[str]]) -> None:
                feed, side = self._feed(query)
                if not streams.acquire(blocking=False):
                    self._send(503, "text/plain; charset=utf-8", b"too many preview streams\n", {"Retry-After": "5"})
                    return
                try:
                    self._headers(200, "multipart/x-mixed-replace; boundary=frame")
                    self.end_headers()
                    self.close_connection = True
                    if self.head_only:
                        return
                    version = 0
                    while not preview.closing:
                        still = feed.wait_newer(version, 1.0)
                        preview.touch()           # a stream that is open is being watched
                        if still is None:
                            continue
                        version = still.version
                        body = still.jpeg(side)
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(body) + body + b"\r\n")
                        self.wfile.flush()
                finally:
                    streams.release()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = BackgroundServer(Handler, host, port, name="preview")
        self.port = self._server.port

    def start(self) -> None:
        """Serve in a background thread."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.stop()
