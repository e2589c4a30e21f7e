"""The live source's timeouts: a peer that accepts and then says nothing never blocks forever."""
import socket
import threading
import time

import pytest

from streamden.errors import InputError
from streamden.io.live import Backoff, LiveSource, input_options, is_live_url


def silent_server() -> tuple[socket.socket, int, threading.Event]:
    """Accepts TCP connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()
    held = []

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except (TimeoutError, OSError):
                pass
        for conn in held:
            conn.close()
        server.close()
    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1], stop


def test_silent_peer_times_out_and_is_retried_with_backoff():
    _, port, stop = silent_server()
    events = []
    source = LiveSource(f"tcp://127.0.0.1:{port}", open_timeout=0.5, read_timeout=0.5,
                        backoff=Backoff(0.1, 0.2), max_attempts=3,
                        on_event=lambda kind, detail: events.append(kind))
    start = time.monotonic()
    try:
        with pytest.raises(InputError, match="cannot open after 3 attempts"):
            next(source.generate())
    finally:
        stop.set()
    elapsed = time.monotonic() - start
    assert events.count("retry") == 2 and source.failures == 3
    assert elapsed < 3 * (0.5 + 0.5) + 2 * 0.2 + 2.0      # each attempt bounded by its timeouts


def test_stop_interrupts_the_backoff_wait():
    source = LiveSource("tcp://127.0.0.1:9", open_timeout=0.5, backoff=Backoff(5.0, 5.0))
    stop = threading.Event()
    source._stop_event = stop
    threading.Timer(0.5, stop.set).start()
    start = time.monotonic()
    assert list(source.generate()) == []                 # refused, waits 2.5-5 s, but stop comes first
    assert time.monotonic() - start < 2.5


def test_protocol_options_and_url_kinds():
    assert input_options("tcp://h:1", 5, 2)["timeout"] == "2000000"
    assert input_options("https://h/x.m3u8", 5, 2)["rw_timeout"] == "2000000"
    assert input_options("srt://h:1", 5, 2)["rw_timeout"] == "2000000"
    assert is_live_url("srt://h:1") and not is_live_url("/tmp/clip.ts")
    assert LiveSource("v4l2:/dev/video0").url == "/dev/video0"
    with pytest.raises(InputError, match="timeouts must be positive"):
        LiveSource("udp://127.0.0.1:1", read_timeout=0)
