"""Per-node throughput, latency and queue-depth figures of a graph run.

Each node thread owns one :class:`NodeMeter` and updates it without locks (only that
thread writes to it); when the run ends the runner turns the meters into
:class:`NodeStats` records inside a :class:`GraphReport`, whose
:meth:`GraphReport.format_table` is what ``--stats`` prints.

>>> meter = NodeMeter("decode")
>>> meter.started(0.0)
>>> meter.got(queue_depth=2)
>>> meter.add_busy(0.5, processing=True)
>>> meter.emitted()
>>> meter.stopped(1.0)
>>> stats = meter.snapshot()
>>> stats.items_in, stats.items_out, stats.mean_latency_ms, stats.fps
(1, 1, 500.0, 1.0)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["NodeStats", "GraphReport", "NodeMeter"]


@dataclass
class NodeStats:
    """What one node did during a run.

    ``busy_seconds`` is the time spent inside the node's own code (``generate``,
    ``process``, ``flush``), excluding time waiting on its queues; ``wall_seconds`` runs
    from the end of ``open()`` to the end of the stream (``close()`` excluded).
    ``mean_latency_ms`` is the time in ``process`` per input item (for a source, in
    ``generate`` per item produced); ``fps`` is ``items_out / wall_seconds``. For a sink,
    ``items_out`` counts the items it consumed. Queue depths are those of the node's input
    queue, sampled just before each get (0 for a source).

    >>> NodeStats("encode", items_in=10, items_out=10, wall_seconds=2.0, fps=5.0).fps
    5.0
    """

    name: str
    items_in: int = 0
    items_out: int = 0
    busy_seconds: float = 0.0
    wall_seconds: float = 0.0
    mean_latency_ms: float = 0.0
    fps: float = 0.0
    mean_queue_depth: float = 0.0
    max_queue_depth: int = 0


@dataclass
class GraphReport:
    """The stats of every node of a run, in chain order, plus how the run ended.

    ``outcome`` is ``"complete"``, ``"cancelled"`` or ``"error"``; ``errors`` lists, one
    line each, every exception the nodes raised (including those from ``close()``) and any
    node that did not stop in time.

    >>> report = GraphReport([NodeStats("src", items_out=4, fps=8.0)], 0.5, "complete")
    >>> print(report.format_table())  # doctest: +NORMALIZE_WHITESPACE
    node  in  out  busy s  ms/item  fps  queue mean  queue max
    src    0    4    0.00     0.00  8.0        0.00          0
    wall 0.50 s, outcome complete
    """

    nodes: list[NodeStats]
    wall_seconds: float
    outcome: str
    errors: list[str] = field(default_factory=list)

    def format_table(self) -> str:
        """An aligned plain-text table, one row per node, then a summary line.

        >>> print(GraphReport([], 1.0, "cancelled").format_table().splitlines()[-1])
        wall 1.00 s, outcome cancelled
        """
        header = ["node", "in", "out", "busy s", "ms/item", "fps", "queue mean", "queue max"]
        rows = [
            [
                s.name,
                str(s.items_in),
                str(s.items_out),
                f"{s.busy_seconds:.2f}",
                f"{s.mean_latency_ms:.2f}",
                f"{s.fps:.1f}",
                f"{s.mean_queue_depth:.2f}",
                str(s.max_queue_depth),
            ]
            for s in self.nodes
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            # Names read left-aligned, numbers right-aligned.
            parts = [cells[0].ljust(widths[0])]
            parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join(parts).rstrip()

        lines = [line(header), *(line(r) for r in rows)]
        lines.append(f"wall {self.wall_seconds:.2f} s, outcome {self.outcome}")
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines)


class NodeMeter:
    """Accumulates one node's counters while it runs; :meth:`snapshot` makes the record.

    Only the node's own thread calls the updating methods, so there is no lock; reading
    a snapshot while the node still runs gives slightly stale but consistent-enough figures.

    >>> m = NodeMeter("sink")
    >>> m.snapshot().name
    'sink'
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.items_in = 0
        self.items_out = 0
        self.busy_seconds = 0.0
        self.process_seconds = 0.0
        self.depth_sum = 0
        self.depth_samples = 0
        self.depth_max = 0
        self.start: float | None = None
        self.end: float | None = None

    def started(self, now: float | None = None) -> None:
        """Mark the start of streaming (after ``open()``).

        >>> NodeMeter("n").started(3.0)
        """
        self.start = time.monotonic() if now is None else now

    def stopped(self, now: float | None = None) -> None:
        """Mark the end of streaming (before ``close()``); a no-op if never started.

        >>> NodeMeter("n").stopped()
        """
        if self.start is not None and self.end is None:
            self.end = time.monotonic() if now is None else now

    def got(self, queue_depth: int) -> None:
        """Count one input item and the input queue's depth seen just before getting it.

        >>> NodeMeter("n").got(queue_depth=3)
        """
        self.items_in += 1
        self.sample_depth(queue_depth)

    def sample_depth(self, queue_depth: int) -> None:
        """Record one sample of the input queue's depth.

        >>> NodeMeter("n").sample_depth(1)
        """
        self.depth_sum += queue_depth
        self.depth_samples += 1
        self.depth_max = max(self.depth_max, queue_depth)

    def emitted(self, count: int = 1) -> None:
        """Count items sent downstream (for a sink: items consumed).

        >>> NodeMeter("n").emitted()
        """
        self.items_out += count

    def add_busy(self, seconds: float, processing: bool) -> None:
        """Add time spent in the node's code; ``processing`` marks per-item work.

        >>> NodeMeter("n").add_busy(0.1, processing=False)
        """
        self.busy_seconds += seconds
        if processing:
            self.process_seconds += seconds

    def snapshot(self, is_source: bool = False) -> NodeStats:
        """The counters as a :class:`NodeStats` (latency per item produced for a source).

        >>> NodeMeter("n").snapshot().fps
        0.0
        """
        if self.start is None:
            wall = 0.0
        else:
            wall = (self.end if self.end is not None else time.monotonic()) - self.start
        per = self.items_out if is_source else self.items_in
        return NodeStats(
            name=self.name,
            items_in=self.items_in,
            items_out=self.items_out,
            busy_seconds=self.busy_seconds,
            wall_seconds=wall,
            mean_latency_ms=1000.0 * self.process_seconds / per if per else 0.0,
            fps=self.items_out / wall if wall > 0 else 0.0,
            mean_queue_depth=self.depth_sum / self.depth_samples if self.depth_samples else 0.0,
            max_queue_depth=self.depth_max,
        )
