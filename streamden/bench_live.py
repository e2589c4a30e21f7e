"""`streamden bench live`: latency, cadence and degraded share of the live pipeline per frame size.

A clocked in-process camera (a rendered scene with Gaussian noise, sigma 25) delivers
frames at ``fps`` in real time into a :class:`~streamden.live.LiveStream` over an
:class:`~streamden.engine.Engine` of the surveillance preset with ``live.lookahead`` and
``noise.sigma=25`` set (the shipped model, or ``model``); the pacer's emissions go to a
null output. Figures per size: frames in and out, how many went through each processing path
(the degraded share is everything but ``full``), late/dropped/repeated, arrival->emission
latency p50/p99, emission interval p99/max, and the path costs measured at calibration
(``full`` and ``lite`` are one output frame of the temporal path at the chosen look-ahead;
``-`` where the calibration had not finished when the run ended), and the share of frames
that went out denoised (any path but ``raw``).
Network decode is left out on purpose: it is the pacer and the degrade path that are timed.
With ``record`` the output is also encoded to a temporary H.264 file, so that the encoder
takes its share of the CPU as in a real job.

With ``viewer`` each size runs in pairs, first as above, then with a preview
(:mod:`streamden.preview`, default rate and width) watched by a :class:`PageViewer` that does
what the page does; the second row also gives the preview encoder's CPU time and stills,
and :meth:`LiveBenchResult.viewer_cost` compares the full-path frames of the two runs.
"""
from __future__ import annotations

import json
import os
import platform
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .graph.node import SourceNode
from .graph.pacer import PATHS
from .io.frame import Frame

__all__ = ["ClockedSource", "LiveBenchResult", "PageViewer", "run_live_bench"]


class ClockedSource(SourceNode):
    """Yields ``frames`` (looped) at ``fps`` in real time, each stamped with its ``arrival``.

    >>> src = ClockedSource(np.zeros((2, 8, 8, 3), np.uint8), fps=100, count=3)
    >>> [f.index for f in src.generate()]
    [0, 1, 2]
    """

    def __init__(self, frames: np.ndarray, fps: float, count: int | None = None) -> None:
        super().__init__(name="clocked-source")
        self.frames = frames
        self.fps = Fraction(fps).limit_denominator(1001)
        self.count = count

    def generate(self) -> Iterator[Frame]:
        """One frame per period until ``count`` frames or the run stops."""
        start = time.monotonic()
        period = 1.0 / float(self.fps)
        index = 0
        while self.count is None or index < self.count:
            wait = start + index * period - time.monotonic()
            if wait > 0 and self.wait_stopping(wait):
                return
            if self.stopping:
                return
            frame = Frame(image=self.frames[index % len(self.frames)], pts=index, time_base=1 / self.fps,
                          index=index)
            frame.arrival = time.monotonic()  # type: ignore[attr-defined]
            yield frame
            index += 1


@dataclass
class LiveBenchResult:
    """One row of figures per frame size, plus the conditions."""

    fps: float
    seconds: float
    device: str
    hardware: str
    threads: int
    lookahead: int
    record: bool = False
    lite_lookahead: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def format_table(self) -> str:
        """Aligned text: one line per size."""
        head = (f"streamden bench live: {self.fps:g} fps, {self.seconds:g} s per size, look-ahead "
                f"{self.lookahead} (lite {self.lite_lookahead}), device {self.device} ({self.hardware}), {self.threads} threads"
                f"{', output encoded (H.264)' if self.record else ''}")
        networks = [p for p in PATHS if p != "raw"]
        viewer = any("viewer" in r for r in self.rows)
        cols = (["size"] + (["viewer", "preview cpu %", "stills"] if viewer else []) +
                ["in", "out", *PATHS, "denoised %", "late", "dropped", "repeated", "lat p50 ms",
                 "lat p99 ms", "int p99 ms", "int max ms", f"cost {'/'.join(networks)} ms"])
        lines = [head, "  ".join(cols)]
        for r in self.rows:
            extra = ([("yes" if r["viewer"] else "no"), _pct(r.get("preview_cpu_pct")), r.get("stills", "-")]
                     if viewer else [])
            cells = [r["size"], *extra, r["received"], r["emitted"], *(r[f"path_{p}"] for p in PATHS),
                     f"{r['denoised_pct']:.1f}", r["late"], r["dropped"], r["repeated"],
                     f"{r['latency_p50_ms']:.1f}", f"{r['latency_p99_ms']:.1f}", f"{r['interval_p99_ms']:.1f}",
                     f"{r['interval_max_ms']:.1f}",
                     "/".join(_ms(r["path_costs_ms"].get(p)) for p in networks)]
            lines.append("  ".join(str(c).rjust(len(h)) for c, h in zip(cells, cols)))
        for size, without, with_viewer, change in self.viewer_cost():
            lines.append(f"{size}: full-path frames {with_viewer} with a viewer, {without} without "
                         f"({'-' if change is None else f'{change:+.1f} %'})")
        return "\n".join(lines)

    def viewer_cost(self) -> list[tuple[str, int, int, float | None]]:
        """Per size run with and without a viewer: (size, full-path frames without, with (each
        summed over the runs), change in percent; None when the runs without had none)."""
        out = []
        for size in dict.fromkeys(r["size"] for r in self.rows if r.get("viewer")):
            without = sum(r["path_full"] for r in self.rows if r["size"] == size and r.get("viewer") is False)
            watched = sum(r["path_full"] for r in self.rows if r["size"] == size and r.get("viewer"))
            out.append((size, without, watched, 100.0 * (watched - without) / without if without else None))
        return out

    def to_json(self, path: str | Path) -> None:
        """Write the result as JSON."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class PageViewer:
    """A viewer of a preview at ``url`` doing what its page does, in a thread: ``/stats.json``
    at the preview rate and, for each new still of each stream, its input and output
    snapshots. ``snapshots`` counts what it fetched.

    >>> viewer = PageViewer("http://127.0.0.1:8080/")  # doctest: +SKIP
    >>> viewer.start(); time.sleep(10); viewer.stop(); viewer.snapshots  # doctest: +SKIP
    100
    """

    def __init__(self, url: str, period: float = 0.2) -> None:
        self.url = url
        self.period = period
        self.snapshots = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="page viewer", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(10)

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read()

    def _run(self) -> None:
        shown: dict[int, int] = {}
        while not self._stop.wait(self.period):
            for stream in json.loads(self._get("stats.json"))["streams"]:
                index, version = stream["index"], stream["version"]
                if version > shown.get(index, 0):
                    for side in ("input", "output"):
                        self._get(f"snapshot.jpg?stream={index}&side={side}&v={version}")
                        self.snapshots += 1
                    shown[index] = version


def run_live_bench(sizes: Sequence[tuple[int, int]] = ((640, 360), (1280, 720)), seconds: float = 20.0,
                   fps: float = 25.0, device: str = "auto", lookahead: int = 1,
                   model: str | None = None, viewer: int = 0, overrides: Sequence[str] = (),
                   record: bool = False) -> LiveBenchResult:
    """Run the live pipeline for ``seconds`` at each size and collect its figures; with
    ``viewer`` N, N pairs of runs per size instead, each without and then with a watched
    preview (see the module docstring). ``overrides`` are dotted config keys set on top of
    the surveillance preset (``live.latency=30`` lets every frame take the full path, so
    its frame count measures the network's throughput); ``record`` encodes the output to a
    temporary H.264 file too.

    >>> print(run_live_bench([(64, 48)], seconds=2).format_table())  # doctest: +SKIP
    """
    from .config import make_config
    from .engine import Engine
    import tempfile

    from .io.live_sink import open_output
    from .live import LiveStream, attach_preview, lite_engine
    from .preview import Preview
    from .sample import render_scene

    config = make_config("surveillance", None, [f"live.lookahead={lookahead}", "noise.sigma=25", *overrides],
                         door="live", model=model, device=device)
    engine = Engine(config, allow_untrained=True, live=True)
    lite = lite_engine(engine)
    dev = engine.device
    hardware = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    result = LiveBenchResult(fps=fps, seconds=seconds, device=str(dev), hardware=f"{hardware}, {os.cpu_count()} cores",
                             threads=torch.get_num_threads(), lookahead=lookahead, record=record,
                             lite_lookahead=config.live.lite_lookahead)
    rng = np.random.default_rng(0)
    runs = [(size, watched) for size in sizes
            for watched in ((False, True) * viewer if viewer else (None,))]
    for (width, height), watched in runs:
        clean = render_scene(24, (width, height))
        noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
        with tempfile.TemporaryDirectory(prefix="streamden-bench-live-") as scratch:
            outputs = [open_output(os.path.join(scratch, "out.ts"), fps=Fraction(fps).limit_denominator(1001),
                                   size=(width, height), preset=config.encode.preset,
                                   crf=config.encode.crf)] if record else []
            stream = LiveStream(f"{width}x{height}", ClockedSource(noisy, fps), engine, outputs, lite=lite)
            preview = page = None
            if watched:
                preview = Preview(0, title="streamden bench live")
                attach_preview(preview, [stream])
                preview.start()
                page = PageViewer(preview.url)
                page.start()
            stream.start()
            time.sleep(seconds)
            stream.stop()
            if preview is not None:
                page.stop()
                preview.stop()
        row = stream.summary()
        if watched is not None:
            row["viewer"] = watched
        if preview is not None:
            row["preview_cpu_pct"] = 100.0 * preview.encoder.cpu_seconds / seconds
            row["stills"] = preview.encoder.stills
            row["snapshots"] = page.snapshots
        row.pop("outputs", None)
        row["size"] = f"{width}x{height}"
        processed = sum(row[f"path_{p}"] for p in PATHS)
        row["degraded_pct"] = 100.0 * row["degraded"] / processed if processed else 0.0
        row["denoised_pct"] = 100.0 * (processed - row["path_raw"]) / processed if processed else 0.0
        cost = stream.calibration.get("full")
        row["full_cost_ms"] = None if cost is None else 1000 * cost
        row["path_costs_ms"] = {k: 1000 * v for k, v in stream.calibration.items()}
        result.rows.append(row)
    return result
