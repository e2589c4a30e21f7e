"""The pacer of a live stream: exactly one frame per output period, whatever the input does.

Three pieces, each usable on its own:

:class:`Pacer`
    A clock thread that emits one frame per period to a callback. Processed frames are
    :meth:`Pacer.submit`-ted as they become ready; at each tick the oldest ready frame goes
    out, and when none is ready the last frame is repeated (or a "no signal" slate once the
    source has been silent for ``slate_after`` seconds), so the output never stops. At most
    ``max_backlog`` frames wait in the pacer: older ones are dropped, which bounds latency;
    a backlog of more than one frame that lasts 8 ticks also loses its oldest frame, so that
    a burst (at a reconnect, say) does not add a period of latency for good.
    The emission callback must not block (outputs queue and encode in their own threads).
:class:`DeadlineChooser`
    Picks the processing path of a frame from its deadline and running cost estimates of
    each path (full network -> lighter passes -> the frame as received), so that a frame
    whose full denoising would miss its slot goes out a cheaper way, never late.
:class:`LiveCounters`
    Counters (emitted, per path, late, dropped, repeated, slate) and the arrival->emission
    latency and emission-interval percentiles of one stream.

>>> import numpy as np
>>> out = []
>>> pacer = Pacer(period=0.01, emit=lambda image, slot, now: out.append(slot))
>>> pacer.submit(np.zeros((2, 2, 3), np.uint8), arrival=pacer.clock(), path="raw")
>>> pacer.start(); _ = pacer.wait_emitted(3, timeout=5.0); pacer.stop()
>>> out[:3], pacer.counters.repeated >= 2
([0, 1, 2], True)
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

__all__ = ["Pacer", "DeadlineChooser", "LiveCounters", "percentile", "no_signal_slate", "PATHS"]

#: Processing paths, best first; the last one is the frame as received.
PATHS = ("full", "lite", "light2", "light4", "raw")

#: Ticks in a row with more than one frame waiting before the pacer drops one.
_TRIM_TICKS = 8

#: How many recent latency and interval samples the percentiles are computed over.
_SAMPLES = 20000


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``; 0.0 when there are none.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    data = np.fromiter(values, dtype=np.float64)
    return float(np.percentile(data, q)) if data.size else 0.0


@dataclass
class LiveCounters:
    """What one live stream did; updated by its threads, read by stats and metrics.

    ``emitted`` counts output frames (one per period); ``paths`` counts frames by how they
    were processed (``degraded`` is every path but ``full``); ``repeated`` counts ticks that
    re-sent the last frame or the slate (``slate`` counts the latter); ``dropped`` counts
    input frames that never reached the output; ``late`` counts frames emitted after their
    deadline; ``skipped_ticks`` counts periods the pacer thread itself missed (a starved
    machine); ``reconnects`` counts successful re-opens of the source.

    >>> c = LiveCounters(); c.paths["raw"] += 2; c.paths["full"] += 1
    >>> c.degraded
    2
    """

    emitted: int = 0
    received: int = 0
    paths: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHS, 0))
    late: int = 0
    dropped: int = 0
    repeated: int = 0
    slate: int = 0
    skipped_ticks: int = 0
    reconnects: int = 0
    source_up: bool = False
    latencies: deque = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    emit_times: deque = field(default_factory=lambda: deque(maxlen=_SAMPLES))

    @property
    def degraded(self) -> int:
        """Frames that went out through a cheaper path than the full network."""
        return sum(v for k, v in self.paths.items() if k != "full")

    def latency(self, q: float) -> float:
        """Arrival->emission latency percentile in seconds (``q`` in 0-100).

        >>> LiveCounters().latency(99)
        0.0
        """
        return percentile(list(self.latencies), q)

    def intervals(self) -> np.ndarray:
        """Seconds between consecutive emissions.

        >>> LiveCounters().intervals().size
        0
        """
        times = np.asarray(list(self.emit_times), dtype=np.float64)
        return np.diff(times) if times.size > 1 else np.zeros(0)

    def summary(self) -> dict[str, float | int]:
        """The counters as flat numbers (what --stats prints and benchmarks record).

        >>> LiveCounters().summary()["emitted"]
        0
        """
        gaps = self.intervals()
        return {
            "emitted": self.emitted, "received": self.received, "late": self.late,
            "dropped": self.dropped, "repeated": self.repeated, "slate": self.slate,
            "degraded": self.degraded, "skipped_ticks": self.skipped_ticks,
            "reconnects": self.reconnects, **{f"path_{k}": v for k, v in self.paths.items()},
            "latency_p50_ms": 1000 * self.latency(50), "latency_p99_ms": 1000 * self.latency(99),
            "interval_p99_ms": 1000 * percentile(gaps, 99), "interval_max_ms": 1000 * float(gaps.max()) if gaps.size else 0.0,
        }


def no_signal_slate(width: int, height: int) -> np.ndarray:
    """A dark grey ``(height, width, 3)`` uint8 frame reading NO SIGNAL.

    >>> no_signal_slate(64, 48).shape
    (48, 64, 3)
    """
    import cv2

    image = np.full((height, width, 3), 32, np.uint8)
    scale = max(0.3, width / 400)
    thickness = max(1, int(round(scale * 2)))
    (tw, th), _ = cv2.getTextSize("NO SIGNAL", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.putText(image, "NO SIGNAL", ((width - tw) // 2, (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (220, 220, 220), thickness, cv2.LINE_AA)
    return image


class Pacer:
    """Emits one frame per ``period`` seconds through ``emit(image, slot, now)``.

    ``slot`` counts periods from the first tick (the output pts); ``now`` is the emission
    time on :meth:`clock`. Frames arrive through :meth:`submit` with their arrival time;
    the first tick comes ``period`` after :meth:`start`. A frame still waiting when a newer
    one makes the backlog exceed ``max_backlog`` is dropped. A frame emitted more than
    ``deadline`` seconds after its arrival counts as late. While no frame is ready the last
    one is repeated; once :meth:`mark_input` has not been called for ``slate_after``
    seconds, the NO SIGNAL slate is sent instead. ``emit`` runs on the pacer thread and must
    return quickly; an exception from it stops the pacer and is re-raised by :meth:`stop`.

    >>> Pacer(period=0.04, emit=print).period
    0.04
    """

    def __init__(self, period: float, emit: Callable[[np.ndarray, int, float], None], *,
                 deadline: float | None = None, max_backlog: int = 2, slate_after: float = 3.0,
                 counters: LiveCounters | None = None, clock: Callable[[], float] = time.monotonic,
                 name: str = "pacer") -> None:
        if period <= 0:
            raise ValueError(f"Pacer: period must be positive, got {period!r}")
        self.period = float(period)
        self.emit = emit
        self.deadline = float(deadline) if deadline is not None else 3 * self.period
        self.max_backlog = max(1, int(max_backlog))
        self.slate_after = float(slate_after)
        self.counters = counters or LiveCounters()
        self.clock = clock
        self.name = name
        self._ready: deque[tuple[np.ndarray, float]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._emitted = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._last: np.ndarray | None = None
        self._slate: np.ndarray | None = None
        self._last_input = clock()
        self._backlogged = 0
        self.error: BaseException | None = None

    def mark_input(self, when: float | None = None) -> None:
        """Note that the source delivered something (delays the slate)."""
        self._last_input = self.clock() if when is None else when

    def submit(self, image: np.ndarray, arrival: float, path: str) -> None:
        """Hand over a processed ``(H, W, 3)`` frame that arrived at ``arrival`` via ``path``."""
        with self._lock:
            self.counters.paths[path] = self.counters.paths.get(path, 0) + 1
            self._ready.append((image, arrival))
            while len(self._ready) > self.max_backlog:
                self._ready.popleft()
                self.counters.dropped += 1

    def start(self) -> None:
        """Start the clock thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the clock thread and wait for it; re-raise an error from ``emit``."""
        self._stop.set()
        if self._thread is not None and self._thread.ident is not None:   # started (stop may race start)
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    @property
    def running(self) -> bool:
        """True while the clock thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def wait_emitted(self, count: int, timeout: float) -> bool:
        """Block until ``count`` frames have been emitted (True) or ``timeout`` passes (False)."""
        with self._emitted:
            return self._emitted.wait_for(lambda: self.counters.emitted >= count or self._stop.is_set(),
                                          timeout)

    def _next_image(self, now: float) -> tuple[np.ndarray | None, float | None]:
        with self._lock:
            # A backlog that persists for `_TRIM_TICKS` ticks is latency that jitter no longer
            # explains (a burst at connect, say): drop one frame to win a period back.
            self._backlogged = self._backlogged + 1 if len(self._ready) > 1 else 0
            if self._backlogged >= _TRIM_TICKS:
                self._ready.popleft()
                self.counters.dropped += 1
                self._backlogged = 0
            item = self._ready.popleft() if self._ready else None
        if item is not None:
            return item
        return None, None

    def _run(self) -> None:
        try:
            t0 = self.clock() + self.period
            slot = 0
            while not self._stop.is_set():
                due = t0 + slot * self.period
                wait = due - self.clock()
                if wait > 0 and self._stop.wait(wait):
                    break
                now = self.clock()
                behind = int((now - due) // self.period)
                if behind > 0:  # the thread was starved: skip the slots already gone
                    self.counters.skipped_ticks += behind
                    slot += behind
                self._tick(slot, now)
                slot += 1
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            with self._emitted:
                self._emitted.notify_all()

    def _tick(self, slot: int, now: float) -> None:
        c = self.counters
        image, arrival = self._next_image(now)
        if image is not None:
            self._last = image
            latency = now - arrival
            c.latencies.append(latency)
            if latency > self.deadline:
                c.late += 1
        else:
            if self._last is None:
                return  # nothing ever arrived: no output yet (its size is unknown)
            c.repeated += 1
            if now - self._last_input > self.slate_after:
                if self._slate is None or self._slate.shape != self._last.shape:
                    self._slate = no_signal_slate(self._last.shape[1], self._last.shape[0])
                image = self._slate
                c.slate += 1
            else:
                image = self._last
        self.emit(image, slot, now)
        c.emit_times.append(now)
        with self._emitted:
            c.emitted += 1
            self._emitted.notify_all()


class DeadlineChooser:
    """Chooses the best processing path that still meets a deadline, from measured costs.

    ``costs`` holds a running estimate (seconds) per path of :data:`PATHS`; ``None`` means
    unknown. :meth:`choose` returns the first path whose estimate fits in the time left
    (``"raw"`` always fits). :meth:`record` folds in a measured time (exponential moving
    average). A path that just missed (estimate within twice the time left) has its estimate
    shrink slowly (``decay`` per such choice), so that it is tried again once the machine has
    more room; a path far too slow is never retried.

    >>> chooser = DeadlineChooser({"full": 0.5, "light2": 0.1, "light4": 0.03})
    >>> chooser.choose(time_left=0.2), chooser.choose(time_left=0.01)
    ('light2', 'raw')
    """

    def __init__(self, costs: dict[str, float | None] | None = None, *, smoothing: float = 0.8,
                 decay: float = 0.995, margin: float = 1.2) -> None:
        self.costs: dict[str, float | None] = {p: None for p in PATHS if p != "raw"}
        self.costs.update(costs or {})
        self.smoothing = smoothing
        self.decay = decay
        self.margin = margin

    def fits(self, path: str, time_left: float) -> bool:
        """True if ``path``'s estimate (times the safety margin) fits in ``time_left`` seconds."""
        if path == "raw":
            return True
        cost = self.costs.get(path)
        return cost is not None and cost * self.margin <= time_left

    def choose(self, time_left: float, allowed: Iterable[str] = PATHS) -> str:
        """The best allowed path that fits in ``time_left`` seconds (``"raw"`` at worst)."""
        allowed = tuple(allowed)
        chosen = "raw"
        for path in PATHS:
            if path in allowed and self.fits(path, time_left):
                chosen = path
                break
        for path, cost in self.costs.items():
            # Only near misses decay: a path far too slow is never retried (it would stall the stream).
            if (path != chosen and cost is not None and PATHS.index(path) < PATHS.index(chosen)
                    and cost * self.margin <= 2 * time_left):
                self.costs[path] = cost * self.decay
        return chosen

    def set(self, path: str, seconds: float) -> None:
        """Replace ``path``'s estimate with a measured cost (calibration), whatever it was.

        >>> chooser = DeadlineChooser({"lite": 0.5}); chooser.set("lite", 0.02); chooser.costs["lite"]
        0.02
        """
        if path != "raw":
            self.costs[path] = seconds

    def record(self, path: str, seconds: float) -> None:
        """Fold a measured processing time of ``path`` into its estimate."""
        if path == "raw":
            return
        old = self.costs.get(path)
        self.costs[path] = seconds if old is None else self.smoothing * old + (1 - self.smoothing) * seconds
