"""Live streams end to end on 127.0.0.1: a feeder process muxes MPEG-TS at real-time rate.

Cadence is measured at the pacer's emission timestamps (what the pacer controls); bounds
are generous because other test runs may load the same two cores.
"""
from __future__ import annotations

import socket
import threading
import time

import av
import numpy as np

from streamden.graph.pacer import percentile
from streamden.io.live import Backoff, LiveSource
from streamden.io.live_sink import StreamOutput
from streamden.live import PACER_BACKLOG, LiveStream
from tests.live.conftest import free_port, live_engine, wait_threads_gone

FPS = 10
PERIOD = 1.0 / FPS


def cadence_error(stream: LiveStream) -> float:
    """p99 of |interval - period| between emissions, in periods."""
    return percentile(np.abs(stream.counters.intervals() - PERIOD), 99) / PERIOD


def check_cadence(stream: LiveStream, elapsed: float) -> None:
    """One frame per period: count matches the pacer's running time, p99 interval within a period."""
    c = stream.counters
    assert c.emitted + c.skipped_ticks >= (elapsed / PERIOD) - 3
    assert c.emitted + c.skipped_ticks <= (elapsed / PERIOD) + 2
    assert cadence_error(stream) <= 1.0, sorted(c.intervals())[-5:]


def run_stream(stream: LiveStream, seconds: float) -> float:
    """Run ``stream`` for ``seconds`` after its first emission; return how long the pacer ran."""
    stream.start()
    assert stream.wait_emitted(1, timeout=15), "no frame came out"
    started = stream.pacer.counters.emit_times[0]
    time.sleep(seconds)
    stream.stop()
    return stream.counters.emit_times[-1] - started + PERIOD


def decoded_frames(paths) -> int:
    total = 0
    for path in paths:
        with av.open(str(path)) as container:
            total += sum(1 for _ in container.decode(video=0))
    return total


def test_clean_run_over_tcp_records_segments(feeder, tmp_path):
    before = set(threading.enumerate())
    port = free_port()
    feeder("tcp", f"127.0.0.1:{port}", "--fps", str(FPS), "--seconds", "8")
    rec = tmp_path / "rec"
    rec.mkdir()
    source = LiveSource(f"tcp://127.0.0.1:{port}", read_timeout=2.0, backoff=Backoff(0.1, 0.5))
    engine = live_engine("live.segment_seconds=1.0", "live.slate_after=5.0")
    stream = LiveStream("cam", source, engine, [f"{rec}/", f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"])
    elapsed = run_stream(stream, 3.5)
    c = stream.counters
    check_cadence(stream, elapsed)
    assert c.received >= 25 and c.reconnects == 0 and c.slate == 0
    assert sum(c.paths.values()) + c.dropped >= c.received - 4     # every frame processed or counted
    # Frames still in flight when the stream stops are neither emitted nor dropped: at most the
    # inbox, the frame held for its look-ahead and the pacer's backlog.
    in_flight = engine.config.graph.queue_size + engine.config.live.lookahead + PACER_BACKLOG
    assert c.emitted >= c.received - c.dropped - in_flight
    recorder, udp = stream.outputs
    assert udp.errors == 0 and udp.written >= c.emitted - 2
    segments = sorted(rec.glob("*.ts"))
    assert len(segments) >= 3 and not list(rec.glob(".*partial*"))   # rotated, all renamed when done
    assert all(len(p.stem) >= 15 and p.stem[:8].isdigit() for p in segments)   # wall-clock names
    assert decoded_frames(segments) == recorder.written
    assert wait_threads_gone(before) == []


def test_three_second_stall_repeats_then_slate_then_recovers(feeder):
    before = set(threading.enumerate())
    port = free_port(socket.SOCK_DGRAM)
    feeder("udp", f"127.0.0.1:{port}", "--fps", str(FPS), "--seconds", "9", "--stall-at", "1.5", "--stall", "3")
    source = LiveSource(f"udp://127.0.0.1:{port}", read_timeout=1.0, backoff=Backoff(0.1, 0.5))
    stream = LiveStream("cam", source, live_engine("live.slate_after=1.5"), [])
    stream.start()
    assert stream.wait_emitted(1, timeout=15)
    started = stream.counters.emit_times[0]
    received_before = None
    end = time.monotonic() + 9
    while time.monotonic() < end:
        if received_before is None and stream.counters.slate > 0:
            received_before = stream.counters.received
        if received_before is not None and stream.counters.received > received_before + 10:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    stream.stop()
    elapsed = stream.counters.emit_times[-1] - started + PERIOD
    c = stream.counters
    check_cadence(stream, elapsed)                       # the output never stopped
    assert received_before is not None, "no slate during the stall"
    assert c.repeated >= 15 and c.slate >= 5             # 3 s without input: repeats, then NO SIGNAL
    assert c.received > received_before + 10             # frames flow again after the stall
    assert source.connects >= 2                          # the silent input was re-opened
    assert wait_threads_gone(before) == []


def test_disconnect_and_return_reconnects_within_the_backoff_bound(feeder):
    before = set(threading.enumerate())
    port = free_port()
    cap = 0.8
    feed = feeder("tcp", f"127.0.0.1:{port}", "--fps", str(FPS), "--seconds", "7", "--drop-at", "1.5",
                  "--drop", "1.5")
    events: list[tuple[float, str]] = []
    source = LiveSource(f"tcp://127.0.0.1:{port}", read_timeout=2.0, backoff=Backoff(0.1, cap),
                        on_event=lambda kind, detail: events.append((time.time(), kind)))
    stream = LiveStream("cam", source, live_engine("live.slate_after=5.0"), [])
    stream.start()
    assert stream.wait_emitted(1, timeout=15)
    back, _ = feed.wait_line("back", timeout=15)
    end = time.monotonic() + 6
    while time.monotonic() < end and sum(k == "connected" for _, k in events) < 2:
        time.sleep(0.05)
    time.sleep(1.0)
    stream.stop()
    connects = [t for t, k in events if k == "connected"]
    assert len(connects) >= 2 and "disconnected" in [k for _, k in events]
    # Back within one capped backoff wait, plus time to connect and analyse the stream.
    assert connects[1] - back <= cap + 1.5, (connects[1] - back, events)
    c = stream.counters
    assert c.reconnects >= 1 and c.repeated >= 5
    assert cadence_error(stream) <= 1.0
    assert wait_threads_gone(before) == []


class SlowReceiver:
    """A TCP server that accepts connections and reads a trickle from them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        conns = []
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                conn.settimeout(0.01)
                conns.append(conn)
                self.accepted += 1
            except socket.timeout:
                pass
            for conn in conns:
                try:
                    self.received += len(conn.recv(512))   # about 5 KB/s: far below the stream's rate
                except (socket.timeout, OSError):
                    pass
        for conn in conns:
            conn.close()
        self.sock.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


def test_slow_consumer_never_slows_the_pacer(feeder):
    before = set(threading.enumerate())
    port = free_port()
    feeder("tcp", f"127.0.0.1:{port}", "--fps", str(FPS), "--seconds", "10", "--size", "160x120")
    receiver = SlowReceiver()
    fast = []
    source = LiveSource(f"tcp://127.0.0.1:{port}", read_timeout=2.0, backoff=Backoff(0.1, 0.5))
    # A small send buffer, so that the slow peer pushes back within the test's few seconds.
    output = StreamOutput(f"tcp://127.0.0.1:{receiver.port}?send_buffer_size=4096", fps=FPS, size=(160, 120),
                          crf=10, queue_size=4, write_timeout=0.5)
    stream = LiveStream("cam", source, live_engine("live.slate_after=5.0", "live.paths=[raw]"), [output],
                        on_emit=lambda image, slot, now: fast.append(slot))
    try:
        elapsed = run_stream(stream, 5.0)
    finally:
        receiver.stop()
    check_cadence(stream, elapsed)
    out = stream.outputs[0]
    assert receiver.accepted >= 1 and receiver.received > 0
    assert out.dropped + out.errors > 0                  # the slow peer cost frames, not cadence
    assert out.written < stream.counters.emitted
    assert len(fast) == stream.counters.emitted          # the other consumer got every frame
    assert wait_threads_gone(before, timeout=15) == []
