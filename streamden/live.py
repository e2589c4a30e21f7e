"""Live jobs: camera feeds in, denoised feeds out at a constant rate with bounded latency.

One :class:`LiveStream` per feed runs four kinds of thread::

    source (LiveSource: reconnects) -> process (deadline-driven) -> pacer (one frame per period) -> outputs

* **Source**: decodes and stamps each frame's arrival time; an inbox of ``graph.queue_size``
  frames between it and the processor drops the oldest frame when the processor falls behind.
* **Process**: picks, per frame, the best path that meets the frame's deadline
  (:class:`~streamden.graph.pacer.DeadlineChooser`): ``full`` (the streaming network with a
  look-ahead of 0, 1 or 2 frames), ``lite`` (the light temporal network ``live.lite_model``,
  one small block per frame, :mod:`streamden.models.lite`: what a CPU keeps up with),
  ``light2``/``light4`` (a single-frame pass at half or quarter resolution, upscaled, of the
  lightest network the stream has: lite's when it has one) or ``raw`` (the frame as received). Path costs are measured at the first frame
  of each size (calibration; on a CPU the full network's is predicted from lite's by their
  multiply-adds when it is far over budget) and tracked while running. ``full`` and ``lite`` are the
  temporal paths: each has its own stage-1 cache, and a switch between them restarts the
  window (the frames held for look-ahead go out the cheap way).
* **Pacer**: emits exactly one frame per period (:class:`~streamden.graph.pacer.Pacer`),
  repeating the last frame while nothing new is ready and sending a NO SIGNAL slate after
  ``slate_after`` seconds without input.
* **Outputs**: one writer thread each (:mod:`streamden.io.live_sink`), never blocking the pacer.

A frame's deadline is its arrival time plus ``latency`` (default: the larger look-ahead of the
two temporal paths + 2 periods); the processor must finish it one period before that, the pacer
emits it at the next tick. ``lite`` runs at ``live.lite_lookahead`` (default 0): within the
3-period latency of look-ahead 1 it then has two periods for a frame, not one, which is what
keeps it carrying a 25 fps feed on a 2-core CPU next to the encoder.

A :class:`LiveJob` runs several streams in one process over one
:class:`~streamden.engine.Engine` (one loaded network; each stream has its own stage-1
cache; network calls take turns on the engine's lock: on a CPU two streams at once only
split the same cores), prints ``--stats`` lines and serves the counters in the Prometheus
text format (:class:`MetricsServer`).

Everything a stream does comes from the engine's typed config (``engine.config``, a
:class:`~streamden.config.DenoiseConfig`); live keeps no copy of it. What live reads, and where:

* ``live.lookahead``, ``live.lite_lookahead``, ``live.latency``, ``live.paths``, ``live.slate_after``: the processor
  and the pacer (:class:`LiveStream`); ``live.lite_model``: the network of the ``lite`` path
  (its own engine, :func:`lite_engine`);
* ``live.open_timeout``, ``live.read_timeout``, ``live.backoff_base``, ``live.backoff_cap``:
  the :class:`LiveSource` a :class:`LiveJob` opens for a URL;
* ``live.segment_seconds``, ``live.segment_keep``, ``live.hls_seconds``, ``encode.crf``,
  ``encode.preset``: the outputs (:func:`~streamden.io.live_sink.open_output`);
  ``encode.codec`` must be ``h264`` (live outputs write H.264 only; anything else is refused);
* ``encode.fps``: the output rate (None: the source's nominal rate);
* ``noise.sigma`` (a number, or ``auto``: estimated and smoothed over
  ``noise.smoothing`` through :meth:`~streamden.engine.Engine.sigma_tracker`, on one frame
  in :data:`ESTIMATE_EVERY`);
* ``graph.queue_size``: the inbox between the source and the processor;
* ``model.*`` and ``align.*``: the engine itself.

:func:`check_live_config` refuses values live cannot run with, naming the key, when a
stream or job is built.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import queue
import threading
import time
from collections import deque
from fractions import Fraction
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch

from .errors import ConfigError
from .graph.node import SourceNode
from .graph.pacer import PATHS, DeadlineChooser, LiveCounters, Pacer
from .io.live import Backoff, LiveSource
from .io.live_sink import LiveOutput, open_output
from .pipeline import parse_fps, parse_sigma
from .serve import BackgroundServer
from .tensors import image_to_tensor, tensor_to_image

if TYPE_CHECKING:
    from .config import DenoiseConfig
    from .engine import Engine
    from .preview import Preview
    from .preview.feed import StreamFeed

__all__ = ["LiveStream", "LiveJob", "MetricsServer", "attach_preview", "check_live_config", "format_stats",
           "lite_engine", "preview_counters", "prometheus_text"]

#: The paths that run a streaming (temporal) network, best first.
TEMPORAL_PATHS = ("full", "lite")

#: A path whose predicted cost exceeds this many frame periods is not timed at calibration.
SKIP_TIMING_OVER = 4

log = logging.getLogger(__name__)

#: With ``noise.sigma: auto``, live estimates the level on one frame in this many (until the
#: first estimate succeeds, on every frame): an estimate costs about a third of the lite network
#: at 640x360 (7 of 19 ms on two cores), and the level of a feed changes over seconds, not frames.
ESTIMATE_EVERY = 4

#: Processed frames the pacer holds for their tick (older ones are dropped). Input and output
#: run at the same rate, so in steady state at most one frame waits; the second slot absorbs
#: a frame that finishes just before the previous one's tick (processing jitter). With a
#: third, the newest would wait two more ticks, beyond the one period a frame's deadline
#: leaves the pacer: dropping the oldest keeps the rest within the latency bound. Not a
#: config key: it follows from the deadline, not from a trade-off the user makes.
PACER_BACKLOG = 2

#: ``encode.codec`` values live outputs can honour (:mod:`streamden.io.live_sink` writes H.264).
LIVE_CODECS = ("h264",)


def check_live_config(config: "DenoiseConfig") -> None:
    """Raise ConfigError, naming the key, for a value of ``config`` a live stream cannot run with:
    ``live.lookahead`` or ``live.lite_lookahead`` outside 0/1/2, ``live.latency`` not positive, ``live.paths`` not a
    subset of the paths that includes ``raw``, ``encode.codec`` other than h264, and a bad
    ``noise.sigma`` or ``encode.fps``.

    >>> from streamden.config import make_config
    >>> check_live_config(make_config("surveillance"))
    >>> check_live_config(make_config("surveillance", overrides=["encode.codec=hevc"]))
    Traceback (most recent call last):
    ...
    streamden.errors.ConfigError: encode.codec: streamden live writes H.264 (h264); got hevc
    """
    live = config.live
    for key in ("lookahead", "lite_lookahead"):
        value = getattr(live, key)
        if value not in (0, 1, 2) or isinstance(value, bool):
            raise ConfigError(f"live.{key} must be 0, 1 or 2 frames, got {value!r}")
    if live.latency is not None and live.latency <= 0:
        raise ConfigError(f"live.latency must be positive seconds (or null for the larger look-ahead + 2 periods), "
                          f"got {live.latency!r}")
    unknown = [p for p in live.paths if p not in PATHS]
    if unknown or "raw" not in live.paths:
        raise ConfigError(f"live.paths must be a subset of {', '.join(PATHS)} that includes raw, "
                          f"got {list(live.paths)}")
    codec = str(config.encode.codec).lower()
    if codec not in LIVE_CODECS:
        raise ConfigError(f"encode.codec: streamden live writes H.264 (h264); got {config.encode.codec}")
    parse_sigma(config.noise.sigma)
    parse_fps(config.encode.fps)


def lite_engine(engine: "Engine") -> "Engine | None":
    """The engine of the ``lite`` path of live streams over ``engine``: ``live.lite_model``,
    unaligned (``align.mode: auto`` follows its card), on ``engine``'s device with the same
    ``model.*`` settings. None when ``lite`` is not in ``live.paths`` or ``engine``'s own
    network is already single-stage (its ``full`` path is then the light network).
    """
    config = engine.config
    if "lite" not in config.live.paths or engine.single_stage:
        return None
    from .engine import Engine

    lite_config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, name=config.live.lite_model),
        align=dataclasses.replace(config.align, mode="auto"))
    return Engine(lite_config, engine.device, live=True)


class _Inbox:
    """Frames between the source and the processor: at most ``size`` frames; a new frame drops
    the oldest one when full (counted as dropped). Restart markers take no room and are never
    dropped (a lost one would let a temporal window span a reconnect); repeated ones collapse.
    """

    def __init__(self, size: int, counters: LiveCounters) -> None:
        self.items: deque[Any] = deque()
        self.size = max(1, int(size))
        self.frames = 0
        self.counters = counters
        self.ready = threading.Condition(threading.Lock())

    def put(self, item: Any) -> None:
        with self.ready:
            if item is _RESTART:
                if self.items and self.items[-1] is _RESTART:
                    return
            else:
                if self.frames >= self.size:
                    oldest = next(i for i, x in enumerate(self.items) if x is not _RESTART)
                    del self.items[oldest]
                    self.frames -= 1
                    self.counters.dropped += 1
                self.frames += 1
            self.items.append(item)
            self.ready.notify()

    def get(self, timeout: float) -> Any:
        """The oldest item; raises queue.Empty after ``timeout`` seconds without one."""
        with self.ready:
            if not self.ready.wait_for(lambda: bool(self.items), timeout):
                raise queue.Empty
            item = self.items.popleft()
            if item is not _RESTART:
                self.frames -= 1
            return item


_RESTART = object()  # the source reconnected: the temporal window starts again


class LiveStream:
    """One feed: source -> processor -> pacer -> outputs (see the module docstring).

    ``source`` is a :class:`LiveSource` (or any SourceNode whose frames carry an
    ``arrival`` attribute and that exposes ``fps`` once it yields); ``outputs`` are
    destination strings for :func:`~streamden.io.live_sink.open_output` or ready
    :class:`LiveOutput` objects; ``on_emit(image, slot, now)`` is an extra pacer callback;
    ``lite`` is the engine of the ``lite`` path (default: :func:`lite_engine` builds one when
    ``live.paths`` holds ``lite``; a :class:`LiveJob` shares one between its streams).
    ``on_frame(frame, output, path)`` sees each processed input frame with its uint8 output
    image and path, on the processor thread (it must return at once: the preview's hook).
    Every setting comes from ``engine.config`` (see the module docstring), checked by
    :func:`check_live_config`. Outputs are opened when the first frame gives the size. :meth:`start`, then
    :meth:`stop`; ``counters`` holds the figures, :meth:`summary` a flat dict of them.

    >>> stream = LiveStream("s0", LiveSource("udp://127.0.0.1:5000"), engine, ["rec/"])  # doctest: +SKIP
    >>> stream.start(); time.sleep(10); stream.stop(); stream.summary()["emitted"]  # doctest: +SKIP
    250
    """

    def __init__(self, name: str, source: SourceNode, engine: "Engine",
                 outputs: Sequence[str | LiveOutput] = (),
                 on_emit: Callable[[np.ndarray, int, float], None] | None = None,
                 on_frame: Callable[[Any, np.ndarray, str], None] | None = None,
                 lite: "Engine | None" = None) -> None:
        check_live_config(engine.config)
        self.name = name
        self.source = source
        self.engine = engine
        self.config = engine.config
        if lite is None:
            lite = lite_engine(engine)
        # The engine of each temporal path in this stream (lite: none when the model is the light one).
        self.engines: dict[str, "Engine"] = {"full": engine, **({"lite": lite} if lite is not None else {})}
        self.paths: tuple[str, ...] = tuple(p for p in self.config.live.paths
                                            if p not in TEMPORAL_PATHS or p in self.engines)
        # The single-frame passes (light2, light4) run the lightest network the stream has: they
        # are the fallback when the temporal paths do not fit, so they must cost less than lite.
        self._light = self.engines.get("lite", engine)
        self.sigma: float | None = parse_sigma(self.config.noise.sigma)   # None: estimated per frame
        self.output_specs = list(outputs)
        self.outputs: list[LiveOutput] = []
        self.on_emit = on_emit
        self.on_frame = on_frame
        self.counters = LiveCounters()
        self.chooser = DeadlineChooser()
        self.calibration: dict[str, float] = {}   # path -> seconds at this size: measured, or predicted (_predicted_cost)
        self.pacer: Pacer | None = None
        self.fps: Fraction | None = parse_fps(self.config.encode.fps)   # None: the source's rate
        self.size: tuple[int, int] | None = None
        self.latency: float | None = None    # seconds, set with the pacer at the first frame
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._inbox = _Inbox(self.config.graph.queue_size, self.counters)
        self._threads: list[threading.Thread] = []
        # Each temporal path waits for its own look-ahead (its stream's): lite for live.lite_lookahead frames.
        lookaheads = {"full": self.config.live.lookahead, "lite": self.config.live.lite_lookahead}
        self._streams = {path: e.stream(lookaheads[path]) for path, e in self.engines.items()}
        self._active: str | None = None   # the temporal path whose stream holds the pending frames
        self._pending: list[Any] = []     # frames pushed into that stream, output not out yet
        self._tracker = engine.sigma_tracker()
        self._unestimated = 0             # frames since the last noise estimate (ESTIMATE_EVERY)
        self._calibrated: tuple[int, int] | None = None
        self._started_outputs = threading.Event()
        if isinstance(source, LiveSource):
            chained = source.on_event

            def on_event(kind: str, detail: Any) -> None:
                self._source_event(kind, detail)
                if chained is not None:
                    chained(kind, detail)
            source.on_event = on_event

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the source and processor threads (the pacer starts with the first frame)."""
        self.source._stop_event = self._stop  # lets LiveSource's backoff sleeps wake at stop()
        for target, label in ((self._ingest, "source"), (self._process, "process")):
            thread = threading.Thread(target=self._guard(target), name=f"{self.name} {label}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread of the stream, finalise the outputs; re-raise a thread's error."""
        self._stop.set()
        if self.pacer is not None:
            try:
                self.pacer.stop()
            except BaseException as exc:  # noqa: BLE001
                self.error = self.error or exc
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):  # the processor may add a calibration thread meanwhile
            thread.join(max(0.1, deadline - time.monotonic()))
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        for thread in self._threads:
            if thread.name.endswith("calibrate"):
                thread.join()   # inside one network call: bounded, and torch must not be torn down under it
        for output in self.outputs:
            output.close()
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            log.debug("%s: closing the source failed", self.name, exc_info=True)
        if self.error is not None:
            raise self.error

    @property
    def threads(self) -> list[threading.Thread]:
        """The stream's own threads (for leak checks)."""
        return list(self._threads)

    def summary(self) -> dict[str, Any]:
        """Counters plus outputs' figures as one flat dict."""
        data: dict[str, Any] = {"stream": self.name, **self.counters.summary()}
        data["fps"] = float(self.fps) if self.fps else None
        data["outputs"] = [o.stats() for o in self.outputs]
        data["noise"] = self._tracker.summary() if self.sigma is None else f"noise level fixed at {self.sigma:g}"
        return data

    def wait_emitted(self, count: int, timeout: float) -> bool:
        """Block until ``count`` frames went out (True) or ``timeout`` passed (False)."""
        end = time.monotonic() + timeout
        while self.pacer is None:
            if time.monotonic() > end or self._stop.is_set():
                return False
            time.sleep(0.01)
        return self.pacer.wait_emitted(count, max(0.0, end - time.monotonic()))

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                log.exception("%s: %s failed", self.name, fn.__name__)
                self.error = self.error or exc
                self._stop.set()
        return run

    def _source_event(self, kind: str, detail: Any) -> None:
        if kind == "connected":
            self.counters.source_up = True
            if detail > 1:
                self.counters.reconnects += 1
        elif kind == "disconnected":
            self.counters.source_up = False
            self._inbox.put(_RESTART)

    # -- source thread -------------------------------------------------------------------
    def _ingest(self) -> None:
        frames = self.source.generate()
        try:
            for frame in frames:
                if self._stop.is_set():
                    break
                if frame.arrival is None:
                    frame.arrival = time.monotonic()
                self.counters.received += 1
                self.counters.source_up = True
                if self.pacer is not None:
                    self.pacer.mark_input(frame.arrival)
                self._inbox.put(frame)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    # -- processor thread ----------------------------------------------------------------
    def _process(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=0.02)
            except queue.Empty:
                self._expire_pending()
                continue
            if item is _RESTART:
                self._degrade_pending()
                continue
            self._handle(item)
        self._pending.clear()

    def _start_pacer(self, frame: Any) -> None:
        self.size = (frame.width, frame.height)
        if self.fps is None:
            self.fps = Fraction(getattr(self.source, "fps", None) or 25).limit_denominator(1001)
        period = 1.0 / float(self.fps)
        live, encode = self.config.live, self.config.encode
        slowest = max(stream.lookahead for stream in self._streams.values())
        latency = live.latency if live.latency is not None else (slowest + 2) * period
        self.latency = latency
        for spec in self.output_specs:
            out = spec if isinstance(spec, LiveOutput) else open_output(
                spec, fps=self.fps, size=self.size, preset=encode.preset, crf=encode.crf,
                segment_seconds=live.segment_seconds, keep=live.segment_keep, hls_seconds=live.hls_seconds)
            out.start()
            self.outputs.append(out)
        self.pacer = Pacer(period, self._emit, deadline=latency, max_backlog=PACER_BACKLOG,
                           slate_after=live.slate_after, counters=self.counters, name=f"{self.name} pacer")
        self.pacer.mark_input(frame.arrival)
        self.pacer.start()
        self._threads.append(self.pacer._thread)

    def _emit(self, image: np.ndarray, slot: int, now: float) -> None:
        for output in self.outputs:
            output.offer(image, slot)
        if self.on_emit is not None:
            self.on_emit(image, slot, now)

    def _handle(self, frame: Any) -> None:
        if self.pacer is None:
            self._start_pacer(frame)
        if (frame.width, frame.height) != self._calibrated:
            self._degrade_pending()
            self._start_calibration(frame)
        period = self.pacer.period
        # Even at best a temporal output waits its look-ahead's periods for its future frames.
        path = next((p for p in TEMPORAL_PATHS if p in self.paths
                     and self.chooser.fits(p, self.latency - period - self._streams[p].lookahead * period)), None)
        if path != self._active:
            self._degrade_pending()   # the other temporal path's window restarts
            self._active = path
        if path is None:
            self._cheap(frame)
            return
        # The frame this push would output: the oldest held one, or this one at look-ahead 0.
        lookahead = self._streams[path].lookahead
        if lookahead == 0:
            target = frame
        else:
            target = self._pending[0] if len(self._pending) >= lookahead else None
        if target is not None and not self.chooser.fits(path, self._deadline(target) - time.monotonic()):
            self._degrade_pending()   # a backlog: the held frames go out the cheap way, the window restarts
            if target is frame:
                self._cheap(frame)
                return
        self._pending.append(frame)
        start = time.monotonic()
        tensor = self._prepare(frame)
        with self.engines[path].lock:
            ready = self._streams[path].push(tensor, frame.sigma)
        for _, image in ready:
            done = self._pending.pop(0)
            self._submit(done, image, path)   # the download waits for the device: timed too
        if ready:
            self.chooser.record(path, time.monotonic() - start)

    def _prepare(self, frame: Any) -> torch.Tensor:
        """The frame as a tensor on the device, and its sigma (given, or estimated and smoothed:
        one frame in :data:`ESTIMATE_EVERY` is estimated, the others keep the tracked level)."""
        tensor = frame.tensor
        if tensor is None:
            tensor = frame.tensor = image_to_tensor(frame.image, self.engine.device)
        if frame.sigma is not None:
            return tensor
        if self.sigma is not None:
            frame.sigma = self.sigma
        elif self._tracker.value is None or self._unestimated >= ESTIMATE_EVERY - 1:
            frame.sigma = self._tracker.update(self.engine.estimate_sigma(tensor))
            self._unestimated = 0
        else:
            frame.sigma = self._tracker.hold()
            self._unestimated += 1
        return tensor

    def _deadline(self, frame: Any) -> float:
        """When ``frame`` must be processed: its emission bound minus one period for the tick."""
        return frame.arrival + self.latency - self.pacer.period

    def _expire_pending(self) -> None:
        """The input went quiet with frames held for their look-ahead: send them before they are late."""
        if self._pending and time.monotonic() >= self._deadline(self._pending[0]) - self.pacer.period / 2:
            self._degrade_pending()

    def _degrade_pending(self) -> None:
        pending, self._pending = self._pending, []
        for stream in self._streams.values():
            stream.reset()
        for frame in pending:
            self._cheap(frame)

    def _cheap(self, frame: Any) -> None:
        allowed = [p for p in self.paths if p not in TEMPORAL_PATHS]
        path = self.chooser.choose(self._deadline(frame) - time.monotonic(), allowed)
        if path == "raw":
            self._hand_over(frame, frame.image, "raw")
            return
        start = time.monotonic()
        tensor = self._prepare(frame)
        image = self._engine_of(path).single_frame(tensor, frame.sigma, scale=2 if path == "light2" else 4)
        self._submit(frame, image, path)
        self.chooser.record(path, time.monotonic() - start)

    def _submit(self, frame: Any, image: torch.Tensor, path: str) -> None:
        self._hand_over(frame, tensor_to_image(image, np.uint8), path)

    def _hand_over(self, frame: Any, image: np.ndarray, path: str) -> None:
        self.pacer.submit(image, frame.arrival, path)
        if self.on_frame is not None:
            self.on_frame(frame, image, path)

    def _start_calibration(self, frame: Any) -> None:
        """Measure the paths' costs at this frame size in the background; until then frames go raw."""
        self._calibrated = (frame.width, frame.height)
        self.chooser = DeadlineChooser()
        thread = threading.Thread(target=self._guard(lambda: self._calibrate(frame.image, self.chooser)),
                                  name=f"{self.name} calibrate", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _calibrate(self, image: np.ndarray, chooser: DeadlineChooser) -> None:
        """Time each path once (after a warm-up run), then publish the estimates all at once
        (a network path used meanwhile would wait for the model lock behind the calibration).
        The ``lite`` path and the single-frame passes that run its network have an engine and a
        lock of their own: they are timed first and published at once, so that the light network
        carries the frames while the full one is timed."""
        tensor = image_to_tensor(image, self.engine.device)
        sigma = self.sigma if self.sigma is not None else 25.0   # the cost does not depend on it
        for path, scale in (("lite", 1), ("light4", 4), ("light2", 2), ("full", 1)):
            if path not in self.paths:
                continue
            engine = self._engine_of(path)
            predicted = self._predicted_cost(path)
            if predicted is not None and predicted > SKIP_TIMING_OVER * self.pacer.period:
                # Timing it would take the CPU from the light network for seconds, for nothing.
                self.calibration[path] = predicted
                log.info("%s: %s path predicted at %.0f ms from lite's cost (not timed: over %d periods)",
                         self.name, path, 1000 * predicted, SKIP_TIMING_OVER)
                continue
            start = time.monotonic()
            tensor_to_image(engine.single_frame(tensor, sigma, scale), np.uint8)  # warm-up (allocations, kernels)
            if self._stop.is_set():
                return
            if path == "lite":
                # The warm-up bounds the cost from above: published at once, the light network
                # carries the frames from here on when it already fits (the median below replaces it).
                chooser.set(path, (time.monotonic() - start) * self._block_ratio(path))
            # The light network is cheap: the median of three runs, so that one run slowed by the
            # start-up of everything else does not lock the path out (a path far over budget is never retried).
            runs = []
            for _ in range(3 if path == "lite" else 1):
                start = time.monotonic()
                tensor_to_image(engine.single_frame(tensor, sigma, scale), np.uint8)  # waits for the device
                runs.append(time.monotonic() - start)
            seconds = sorted(runs)[len(runs) // 2] * self._block_ratio(path)
            self.calibration[path] = seconds
            log.info("%s: %s path costs %.0f ms at %dx%d", self.name, path, 1000 * seconds,
                     image.shape[1], image.shape[0])
            if engine is not self.engine:
                chooser.set(path, seconds)
            if self._stop.is_set():
                return
        for path, seconds in self.calibration.items():
            if self._engine_of(path) is self.engine:
                chooser.record(path, seconds)

    def _block_ratio(self, path: str) -> float:
        """A path's cost per frame over that of a single-frame pass (what calibration times): a
        temporal path costs ``blocks_per_frame(lookahead)`` blocks, a single-frame pass as many
        as look-ahead 2."""
        if path not in TEMPORAL_PATHS:
            return 1.0
        engine = self.engines[path]
        return engine.blocks_per_frame(self._streams[path].lookahead) / engine.blocks_per_frame(2)

    def _engine_of(self, path: str) -> "Engine":
        """The engine that runs ``path``: its own for a temporal path, the light one for a single-frame pass."""
        return self.engines[path] if path in TEMPORAL_PATHS else self._light

    def _predicted_cost(self, path: str) -> float | None:
        """On a CPU, the full path's cost from lite's measured one scaled by their multiply-adds
        per frame (convolutions run at a steady rate there, within 1.3x between the two networks
        on the development machine); None elsewhere (a GPU's rate grows with the work) or when
        either count is unknown."""
        lite_seconds = self.calibration.get("lite")
        if path != "full" or lite_seconds is None or self.engine.device.type != "cpu":
            return None
        full = self.engine.multiply_adds_per_frame(self._streams["full"].lookahead)
        light = self.engines["lite"].multiply_adds_per_frame(self._streams["lite"].lookahead)
        return None if not full or not light else lite_seconds * full / light


class LiveJob:
    """Several live streams in one process over one :class:`~streamden.engine.Engine`.

    ``sources`` are URLs (each opened as a :class:`LiveSource` with the ``live.open_timeout``,
    ``live.read_timeout``, ``live.backoff_base`` and ``live.backoff_cap`` of ``engine.config``)
    or SourceNodes; ``outputs[i]`` lists stream ``i``'s destinations. :meth:`run` starts everything, prints
    a stats line per stream every ``stats_every`` seconds through ``print_fn`` (if given),
    serves metrics on ``metrics_port`` (if given) and returns after ``duration`` seconds or
    when :meth:`stop` is called (Ctrl-C), with one summary dict per stream. With a
    ``preview`` (a :class:`~streamden.preview.Preview`; :meth:`run` starts it, prints its
    address and stops it) each stream shows its frames and :func:`preview_counters` there.

    >>> job = LiveJob(["udp://127.0.0.1:5000"], [["rec/"]], engine)  # doctest: +SKIP
    >>> job.run(duration=10)[0]["emitted"]  # doctest: +SKIP
    250
    """

    def __init__(self, sources: Sequence[str | SourceNode], outputs: Sequence[Sequence[str | LiveOutput]],
                 engine: "Engine", metrics_port: int | None = None, preview: "Preview | None" = None) -> None:
        if len(outputs) != len(sources):
            raise ConfigError(f"{len(sources)} sources but {len(outputs)} output lists")
        check_live_config(engine.config)
        live = engine.config.live
        self.engine = engine
        self.lite = lite_engine(engine)   # one light network for all streams
        self.streams: list[LiveStream] = []
        for i, (src, outs) in enumerate(zip(sources, outputs)):
            if isinstance(src, str):
                src = LiveSource(src, open_timeout=live.open_timeout, read_timeout=live.read_timeout,
                                 backoff=Backoff(live.backoff_base, live.backoff_cap))
            self.streams.append(LiveStream(f"stream{i}", src, engine, outs, lite=self.lite))
        if preview is not None:
            attach_preview(preview, self.streams)
        self.metrics_port = metrics_port
        self.preview = preview
        self.server: MetricsServer | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self, duration: float | None = None, stats_every: float | None = None,
            print_fn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """Run the streams (see the class docstring); returns one summary dict per stream."""
        if self.metrics_port is not None:
            self.server = MetricsServer(self.streams, self.metrics_port)
            self.server.start()
            if print_fn is not None:
                print_fn(f"metrics: http://127.0.0.1:{self.server.port}/metrics")
        if self.preview is not None:
            self.preview.start()
            if print_fn is not None:
                print_fn(f"preview: {self.preview.url}")
        for stream in self.streams:
            stream.start()
        end = None if duration is None else time.monotonic() + duration
        next_stats = time.monotonic() + (stats_every or 0)
        try:
            while not self._stop.is_set():
                if end is not None and time.monotonic() >= end:
                    break
                if any(st.error is not None for st in self.streams):
                    break
                self._stop.wait(0.2)
                if stats_every and print_fn and time.monotonic() >= next_stats:
                    print_fn(format_stats(self.streams))
                    next_stats += stats_every
        finally:
            errors = []
            for stream in self.streams:
                try:
                    stream.stop()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)
            if self.server is not None:
                self.server.stop()
            if self.preview is not None:
                self.preview.stop()
        if errors:
            raise errors[0]
        return [st.summary() for st in self.streams]


def attach_preview(preview: "Preview", streams: Iterable[LiveStream]) -> None:
    """Show ``streams`` on ``preview``: a feed each, offered every processed frame with its
    output (:attr:`LiveStream.on_frame`), and :func:`preview_counters` as its rows."""
    preview.kind = "live"
    for stream in streams:
        feed = preview.add_stream(stream.name)
        feed.counters = functools.partial(preview_counters, stream, feed)
        stream.on_frame = functools.partial(_offer, feed)


def _offer(feed: "StreamFeed", frame: Any, output: np.ndarray, path: str) -> None:
    feed.offer(frame.image, output, frame.sigma, path)


def preview_counters(stream: LiveStream, feed: "StreamFeed | None" = None) -> list[tuple[str, str]]:
    """The rows a preview page shows for ``stream``: source state, frames, output rate, path
    shares, latency, late/dropped/repeated and the sigma of the newest frame (from ``feed``).

    >>> dict(preview_counters(LiveStream("s", SourceNode(), live_engine)))["paths"]  # doctest: +SKIP
    'full 0 % · light2 0 % · light4 0 % · raw 0 %'
    """
    c = stream.counters
    times = list(itertools.islice(reversed(c.emit_times), 51))   # the newest first
    rate = (len(times) - 1) / (times[0] - times[-1]) if len(times) > 1 and times[0] > times[-1] else None
    processed = sum(c.paths.values())
    shares = " · ".join(f"{p} {100 * c.paths.get(p, 0) / processed if processed else 0:.0f} %" for p in PATHS)
    sigma = feed.sigma if feed is not None else None
    return [
        ("source", ("up" if c.source_up else "DOWN") + (f", {c.reconnects} reconnects" if c.reconnects else "")),
        ("frames out / in", f"{c.emitted} / {c.received}"),
        ("output rate", f"{rate:.1f} fps" if rate else "-"),
        ("paths", shares),
        ("latency p50 / p99", f"{1000 * c.latency(50):.0f} / {1000 * c.latency(99):.0f} ms"),
        ("late / dropped / repeated", f"{c.late} / {c.dropped} / {c.repeated}"),
        ("sigma", f"{sigma:.1f}" if sigma is not None else "-"),
    ]


def format_stats(streams: Iterable[LiveStream]) -> str:
    """One line per stream: emitted, paths, late/dropped/repeated, latency p50/p99, cadence p99.

    >>> format_stats([])
    ''
    """
    lines = []
    for st in streams:
        s = st.counters.summary()
        paths = " ".join(f"{p} {s['path_' + p]}" for p in PATHS)
        lines.append(f"{st.name}: {'up' if st.counters.source_up else 'DOWN'} out {s['emitted']} "
                     f"in {s['received']} | {paths} | late {s['late']} dropped {s['dropped']} "
                     f"repeated {s['repeated']} (slate {s['slate']}) reconnects {s['reconnects']} | "
                     f"latency p50 {s['latency_p50_ms']:.0f} ms p99 {s['latency_p99_ms']:.0f} ms | "
                     f"interval p99 {s['interval_p99_ms']:.1f} ms")
    return "\n".join(lines)


def prometheus_text(streams: Iterable[LiveStream]) -> str:
    """The counters of ``streams`` in the Prometheus text exposition format (version 0.0.4).

    >>> print(prometheus_text([]).splitlines()[0])
    # HELP streamden_frames_emitted_total Frames sent to the outputs (one per period).
    """
    streams = list(streams)
    metrics = [
        ("frames_emitted_total", "counter", "Frames sent to the outputs (one per period).", "emitted"),
        ("frames_received_total", "counter", "Frames decoded from the source.", "received"),
        ("frames_late_total", "counter", "Frames emitted after their deadline.", "late"),
        ("frames_dropped_total", "counter", "Input frames that never reached the output.", "dropped"),
        ("frames_repeated_total", "counter", "Periods that repeated the last frame or the slate.", "repeated"),
        ("frames_slate_total", "counter", "Periods that sent the NO SIGNAL slate.", "slate"),
        ("frames_degraded_total", "counter", "Frames processed by a cheaper path than the full network.",
         "degraded"),
        ("reconnects_total", "counter", "Successful re-opens of the source.", "reconnects"),
    ]
    lines: list[str] = []
    summaries = [(st.name, st.counters.summary(), st.counters) for st in streams]
    for name, kind, help_text, key in metrics:
        lines += [f"# HELP streamden_{name} {help_text}", f"# TYPE streamden_{name} {kind}"]
        lines += [f'streamden_{name}{{stream="{sname}"}} {s[key]}' for sname, s, _ in summaries]
    lines += ["# HELP streamden_frames_path_total Frames by processing path.",
              "# TYPE streamden_frames_path_total counter"]
    for sname, s, _ in summaries:
        lines += [f'streamden_frames_path_total{{stream="{sname}",path="{p}"}} {s["path_" + p]}' for p in PATHS]
    lines += ["# HELP streamden_latency_seconds Arrival to emission latency.",
              "# TYPE streamden_latency_seconds summary"]
    for sname, s, c in summaries:
        for q in (0.5, 0.99):
            lines.append(f'streamden_latency_seconds{{stream="{sname}",quantile="{q}"}} {c.latency(q * 100):.6f}')
        lines.append(f'streamden_latency_seconds_count{{stream="{sname}"}} {len(c.latencies)}')
    lines += ["# HELP streamden_source_up Whether the source is connected.", "# TYPE streamden_source_up gauge"]
    lines += [f'streamden_source_up{{stream="{sname}"}} {int(c.source_up)}' for sname, _, c in summaries]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """A tiny HTTP server answering ``GET /metrics`` with :func:`prometheus_text`.

    ``port`` 0 picks a free port (read ``port`` after :meth:`start`). Listens on
    ``host`` (default 127.0.0.1; give 0.0.0.0 to expose it).

    >>> server = MetricsServer([], 0); server.start(); server.port > 0
    True
    >>> server.stop()
    """

    def __init__(self, streams: Sequence[LiveStream], port: int, host: str = "127.0.0.1") -> None:
        self.streams = streams
        streams_ref = streams

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = prometheus_text(streams_ref).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = BackgroundServer(Handler, host, port, name="metrics")
        self.port = self._server.port

    def start(self) -> None:
        """Serve in a background thread."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.stop()


def expand_outputs(sources: Sequence[str], outputs: Sequence[str]) -> list[list[str]]:
    """Each source's destinations: with several sources every output must hold ``{stream}``,
    which becomes the stream's number.

    >>> expand_outputs(["udp://a", "udp://b"], ["rec/cam{stream}/"])
    [['rec/cam0/'], ['rec/cam1/']]
    """
    if len(sources) > 1:
        missing = [o for o in outputs if "{stream}" not in o]
        if missing:
            raise ConfigError(f"with {len(sources)} sources every --out needs a {{stream}} placeholder "
                              f"(got {missing[0]!r})")
    return [[o.replace("{stream}", str(i)) for o in outputs] for i in range(len(sources))]


def run_live(sources: Sequence[str | SourceNode], outputs: Sequence[str], *, preset: str | None = "surveillance",
             config_file: str | None = None, overrides: Iterable[str] = (), duration: float | None = None,
             metrics_port: int | None = None, stats_every: float | None = None,
             print_fn: Callable[[str], None] | None = None, on_job: Callable[[LiveJob], None] | None = None,
             preview: "Preview | None" = None, **options: Any) -> list[dict[str, Any]]:
    """Denoise live feeds until ``duration`` seconds pass or the job is stopped (Ctrl-C).

    ``options`` are the shortcuts of :func:`streamden.config.make_config` (``sigma``,
    ``model``, ``device``, ``fps``...). The config (:func:`check_live_config`) and the outputs
    are checked before the model loads or anything connects; the job runs over
    ``Engine(config, live=True)``.
    ``on_job(job)`` receives the :class:`LiveJob` before it runs (to stop it from elsewhere).
    ``preview`` (a :class:`~streamden.preview.Preview`) shows the streams' frames (see :class:`LiveJob`).
    Returns one summary dict per stream.

    >>> run_live(["rtsp://cam/stream"], ["rec/"], duration=60, sigma=20)  # doctest: +SKIP
    """
    from pathlib import Path

    from .config import make_config
    from .engine import Engine

    config = make_config(preset, config_file, overrides, door="live", **options)
    check_live_config(config)
    fps = parse_fps(config.encode.fps) or 25   # the source's rate is unknown until it connects
    per_stream = expand_outputs([str(s) for s in sources], outputs)
    for outs in per_stream:
        for out in outs:  # fail early on a bad destination, before loading the model or connecting
            if "://" not in out and ("%" in out or out.endswith("/")):  # a recording folder
                Path(out if out.endswith("/") else Path(out).parent).mkdir(parents=True, exist_ok=True)
            open_output(out, fps=fps, size=(64, 48))
    engine = Engine(config, live=True)
    job = LiveJob(sources, per_stream, engine, metrics_port=metrics_port, preview=preview)
    if on_job is not None:
        on_job(job)
    return job.run(duration=duration, stats_every=stats_every, print_fn=print_fn)
