"""An HTTP server in a background thread (the standard library's ``ThreadingHTTPServer``).

Shared by the live job's Prometheus endpoint (:class:`~streamden.live.MetricsServer`) and the
preview page (:mod:`streamden.preview`): bind at construction (so the port is known and a busy
port fails before any work starts), serve from :meth:`BackgroundServer.start`, close with
:meth:`BackgroundServer.stop`. Each request runs in its own daemon thread, so a client that
never reads cannot hold up shutdown.

>>> from http.server import BaseHTTPRequestHandler
>>> server = BackgroundServer(BaseHTTPRequestHandler, "127.0.0.1", 0, name="example")
>>> server.start(); server.port > 0
True
>>> server.stop()
"""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["BackgroundServer", "display_host"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class BackgroundServer:
    """Serve ``handler`` on ``host``:``port`` (0: a free port, read :attr:`port`) in a thread.

    ``host`` may be an IPv4 or IPv6 address or a name; raises OSError when it cannot bind.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, *, name: str = "http") -> None:
        server_class = _Server6 if ":" in host else _Server
        self.httpd = server_class((host, port), handler)
        self.host = host
        self.port: int = self.httpd.server_address[1]
        self.name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a background thread."""
        # Polls for shutdown every 0.1 s (the default 0.5 s would make every stop wait that long).
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket (requests in flight end on their own)."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()


def display_host(host: str) -> str:
    """The host to print in a URL: the machine's name for a wildcard address, brackets for IPv6.

    >>> display_host("127.0.0.1"), display_host("::1")
    ('127.0.0.1', '[::1]')
    """
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host
