"""Runs a linear chain of nodes, each in its own thread, joined by bounded queues.

How a run behaves:

- **Threads and queues.** Node ``i`` runs in thread ``i`` and reads the queue that node
  ``i - 1`` writes. Queues hold at most ``queue_size`` items, so a fast producer blocks
  on a slow consumer and memory stays bounded: at most about
  ``(len(nodes) - 1) * queue_size + len(nodes)`` items exist at once (plus whatever a node
  keeps inside itself, such as a sliding window). PyAV and torch release the GIL, so the
  threads really overlap.
- **End of stream travels down.** When the source's ``generate()`` returns it flushes,
  sends an end-of-stream marker and closes; each following node drains its input, calls
  ``flush()``, forwards the marker and closes; the sink closes last with outcome
  ``"complete"``.
- **Errors and cancellation stop everyone.** An exception in any hook of any node, or
  :meth:`Graph.cancel` (also called by the SIGINT/SIGTERM handlers that :meth:`Graph.run`
  installs), sets one shared stop flag. Every node notices it between items, including
  while blocked on a full or empty queue (queues are polled every 0.1 s, so nothing
  spins), stops without flushing and is closed with outcome ``"error"`` or
  ``"cancelled"``. Sources therefore stop producing, and the sink always gets its
  ``close()`` to finalise a playable file. Items still queued are dropped. A node busy
  inside one long ``process()`` call finishes that call first; nodes that have not stopped
  ``stop_timeout`` seconds after the stop are abandoned (their threads are daemons) so
  that shutdown cannot hang, except that a node already inside ``close()`` is always
  waited for, because that is where files are finalised.
- **The caller sees one result.** :meth:`Graph.run` returns a :class:`GraphReport` on
  success, raises :class:`streamden.errors.Cancelled` after a cancellation, and re-raises
  the original exception of the first failing node otherwise (an exception from a
  ``close()`` counts too when nothing else failed). The report rides on the exception as
  ``exc.report``.

>>> from streamden.graph import FunctionNode, SinkNode, SourceNode
>>> class Letters(SourceNode):
...     def generate(self):
...         yield from "abc"
>>> class Join(SinkNode):
...     text = ""
...     def process(self, item):
...         self.text += item
>>> sink = Join()
>>> report = Graph([Letters(), FunctionNode(str.upper), sink]).run(handle_signals=False)
>>> sink.text, report.outcome, [s.items_out for s in report.nodes]
('ABC', 'complete', [3, 3, 3])
"""
from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from types import FrameType
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import Cancelled
from .metrics import GraphReport, NodeMeter
from .node import Node, SinkNode, SourceNode

__all__ = ["Graph"]

logger = logging.getLogger(__name__)

#: How often a thread blocked on a queue (or the caller blocked in run()) looks at the stop flag.
_POLL_SECONDS = 0.1


class _Marker:
    """A unique object with a readable repr, used as an in-band queue signal."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<{self._name}>"


_END = _Marker("end of stream")
_STOPPED = _Marker("stopped")


class Graph:
    """A linear chain ``source -> node -> ... -> sink``, run once by :meth:`run`.

    ``nodes[0]`` must be a :class:`SourceNode`, ``nodes[-1]`` a :class:`SinkNode`, the
    ones in between plain :class:`Node` objects; each node object may appear only once.
    ``queue_size`` bounds every queue between two nodes. ``stop_timeout`` (seconds, or
    None for no limit) is how long :meth:`run` waits, after a cancellation or an error,
    for nodes stuck inside ``generate``/``process``/``flush`` before abandoning them.

    >>> from streamden.graph import SinkNode, SourceNode
    >>> class Three(SourceNode):
    ...     def generate(self):
    ...         yield from (1, 2, 3)
    >>> report = Graph([Three(), SinkNode()], queue_size=2).run(handle_signals=False)
    >>> report.outcome, report.nodes[-1].items_in
    ('complete', 3)
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        queue_size: int = 4,
        *,
        stop_timeout: float | None = 30.0,
    ) -> None:
        nodes = list(nodes)
        if len(nodes) < 2:
            raise ValueError(f"a graph needs at least a source and a sink, got {len(nodes)} node(s)")
        for i, node in enumerate(nodes):
            if not isinstance(node, Node):
                raise TypeError(f"node {i} is a {type(node).__name__}, not a streamden.graph.Node")
        if not isinstance(nodes[0], SourceNode):
            raise TypeError(f"the first node must be a SourceNode, got {nodes[0]!r}")
        if not isinstance(nodes[-1], SinkNode):
            raise TypeError(f"the last node must be a SinkNode, got {nodes[-1]!r}")
        for i, node in enumerate(nodes[1:-1], start=1):
            if isinstance(node, (SourceNode, SinkNode)):
                raise TypeError(f"node {i} ({node!r}) is a source or a sink but sits inside the chain")
        if len({id(n) for n in nodes}) != len(nodes):
            raise ValueError("the same node object appears twice in the graph")
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        if stop_timeout is not None and stop_timeout < 0:
            raise ValueError(f"stop_timeout must be >= 0 or None, got {stop_timeout!r}")

        self.nodes: list[Node] = nodes
        self.queue_size = queue_size
        self.stop_timeout = stop_timeout
        #: The report of the finished run (None before run() returns or raises).
        self.report: GraphReport | None = None

        n = len(nodes)
        self._queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=queue_size) for _ in range(n - 1)]
        self._stop = threading.Event()
        # A plain bool read before touching the Event: a signal handler runs in the main
        # thread between bytecodes, possibly while that thread is inside Event.set() from an
        # earlier cancel(); re-entering Event.set() there would deadlock on its lock.
        self._cancel_requested = False
        self._lock = threading.Lock()
        self._ran = False
        self._errors: list[tuple[str, str, BaseException]] = []        # (node, hook, exc)
        self._close_errors: list[tuple[str, str, BaseException]] = []
        self._where: list[str] = ["idle"] * n       # hook each node is in; read by run()
        # Set when a node's close() has returned. run() waits on these, not on Thread.join:
        # a KeyboardInterrupt landing inside join() on CPython < 3.13 can mark a running
        # thread as stopped, and run() would then return before that node has closed.
        self._closed = [threading.Event() for _ in range(n)]
        self._completed: list[bool] = [False] * n   # reached and forwarded end of stream
        self._meters: list[NodeMeter] = []
        self._on_item: Callable[[Any], None] | None = None

    # ------------------------------------------------------------------ public API

    def cancel(self) -> None:
        """Ask the run to stop: sources stop producing, every node closes, the sink too.

        Thread-safe, idempotent, and safe to call from a signal handler. Called before
        :meth:`run`, it makes the run stop right away.

        >>> from streamden.graph import SinkNode, SourceNode
        >>> class Endless(SourceNode):
        ...     def generate(self):
        ...         while True:
        ...             yield 0
        >>> graph = Graph([Endless(), SinkNode()])
        >>> graph.cancel()
        >>> graph.run(handle_signals=False)
        Traceback (most recent call last):
        ...
        streamden.errors.Cancelled: cancelled after 0 items reached SinkNode
        """
        if self._cancel_requested:
            return
        self._cancel_requested = True
        self._stop.set()

    def run(
        self,
        handle_signals: bool = True,
        on_item: Callable[[Any], None] | None = None,
    ) -> GraphReport:
        """Run the graph to the end and return its report; a graph runs only once.

        ``on_item(item)`` is called in the sink's thread after the sink processed each
        item (for progress bars); an exception from it fails the run like one from the sink.
        With ``handle_signals`` and when called from the main thread, SIGINT and SIGTERM
        call :meth:`cancel` during the run (a second Ctrl-C is ignored) and the previous
        handlers are restored afterwards; from another thread, signals are left alone.

        Raises :class:`streamden.errors.Cancelled` after a cancellation (once every node
        has closed, the sink with outcome ``"cancelled"``), or the original exception of
        the first node that failed (every node closed, the sink with outcome ``"error"``).
        Either carries the report as ``.report``.

        >>> from streamden.graph import SinkNode, SourceNode
        >>> class Two(SourceNode):
        ...     def generate(self):
        ...         yield from (1, 2)
        >>> seen = []
        >>> report = Graph([Two(), SinkNode()]).run(handle_signals=False, on_item=seen.append)
        >>> seen, report.outcome
        ([1, 2], 'complete')
        """
        with self._lock:
            if self._ran:
                raise RuntimeError("this Graph has already run; build a new one (nodes are single-use)")
            self._ran = True
        self._on_item = on_item
        self._meters = [NodeMeter(node.name) for node in self.nodes]
        for node in self.nodes:
            node._stop_event = self._stop  # lets long-blocking hooks use Node.wait_stopping()

        started = time.monotonic()
        previous_handlers = self._install_signal_handlers() if handle_signals else {}
        interrupt: BaseException | None = None
        abandoned: list[int] = []
        try:
            threads, interrupt = self._start_threads()
            abandoned, late_interrupt = self._wait(threads)
            interrupt = interrupt or late_interrupt
        finally:
            self._restore_signal_handlers(previous_handlers)
        report = self._finish(time.monotonic() - started, abandoned)
        self.report = report
        return self._conclude(report, interrupt)

    # ------------------------------------------------------------------ caller's thread

    def _install_signal_handlers(self) -> dict[int, Any]:
        """Point SIGINT and SIGTERM at cancel(); return the previous handlers."""
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal.signal() only works in the main thread
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                old = signal.getsignal(signum)
                signal.signal(signum, self._on_signal)
            except (ValueError, OSError):
                continue
            previous[signum] = old
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            # getsignal() gives None for a handler not installed from Python; the best
            # we can restore then is the default.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d received: cancelling the graph", signum)
        self.cancel()

    def _start_threads(self) -> tuple[list[threading.Thread], BaseException | None]:
        """Start one daemon thread per node; if that fails, stop and close the rest here."""
        threads: list[threading.Thread] = []
        interrupt: BaseException | None = None
        try:
            for i, node in enumerate(self.nodes):
                thread = threading.Thread(
                    target=self._work, args=(i,), name=f"streamden:{node.name}", daemon=True
                )
                thread.start()
                threads.append(thread)
        except BaseException as exc:  # noqa: BLE001 - nodes not started must still be closed
            if isinstance(exc, Exception):
                self._record_error("graph", "start", exc)
            else:
                interrupt = exc
                self.cancel()
            for i in range(len(threads), len(self.nodes)):
                self._close_node(i, completed=False)
        return threads, interrupt

    def _wait(self, threads: list[threading.Thread]) -> tuple[list[int], BaseException | None]:
        """Join the node threads; return the indices of abandoned nodes and any interrupt.

        Joins with a short timeout so that Python signal handlers run promptly and the
        stop deadline can be enforced. A KeyboardInterrupt raised here (when the caller
        did not let run() handle signals) cancels the run; it is re-raised at the end.
        """
        interrupt: BaseException | None = None
        deadline: float | None = None
        while True:
            # The whole body is guarded: a KeyboardInterrupt can land on any bytecode.
            try:
                alive = [i for i in range(len(threads)) if not self._closed[i].is_set()]
                if not alive:
                    return [], interrupt
                if self._stop.is_set() and self.stop_timeout is not None:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.stop_timeout
                    elif now >= deadline and all(self._where[i] not in ("close", "done") for i in alive):
                        return alive, interrupt
                self._closed[alive[0]].wait(_POLL_SECONDS)
            except BaseException as exc:  # noqa: BLE001 - a second Ctrl-C is ignored
                interrupt = interrupt or exc
                self.cancel()

    def _finish(self, wall: float, abandoned: list[int]) -> GraphReport:
        """Build the report, log what will not be raised, and release queued items."""
        for i in abandoned:
            logger.warning(
                "node %r did not stop within %s s (stuck in %s()); abandoned",
                self.nodes[i].name, self.stop_timeout, self._where[i],
            )
        errors = self._errors + self._close_errors
        if errors:
            outcome = "error"
        elif self._completed[-1]:
            outcome = "complete"
        else:
            outcome = "cancelled"
        lines = [f"{name}.{hook}(): {type(exc).__name__}: {exc}" for name, hook, exc in errors]
        lines += [
            f"{self.nodes[i].name}: did not stop within {self.stop_timeout} s "
            f"(stuck in {self._where[i]}()); abandoned"
            for i in abandoned
        ]
        stats = [m.snapshot(is_source=(i == 0)) for i, m in enumerate(self._meters)]
        for q in self._queues:  # drop references to frames (possibly on the GPU) now
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        return GraphReport(nodes=stats, wall_seconds=wall, outcome=outcome, errors=lines)

    def _conclude(self, report: GraphReport, interrupt: BaseException | None) -> GraphReport:
        """Return the report, or raise what the caller must see, with the report attached."""
        errors = self._errors + self._close_errors
        if errors:
            name, hook, exc = errors[0]
            for other_name, other_hook, other in errors[1:]:
                logger.warning("%s.%s() also raised: %r", other_name, other_hook, other, exc_info=other)
                _add_note(exc, f"also: {other_name}.{other_hook}() raised {type(other).__name__}: {other}")
            _add_note(exc, f"raised in graph node {name!r}, in {hook}()")
            _attach_report(exc, report)
            if interrupt is not None:
                logger.warning("interrupted while the graph was failing: %r", interrupt)
            raise exc
        if interrupt is not None:
            _attach_report(interrupt, report)
            raise interrupt
        if report.outcome == "cancelled":
            sink = report.nodes[-1]
            cancelled = Cancelled(f"cancelled after {sink.items_in} items reached {sink.name}")
            cancelled.report = report  # type: ignore[attr-defined]
            raise cancelled
        return report

    # ------------------------------------------------------------------ node threads

    def _work(self, i: int) -> None:
        """Body of node ``i``'s thread: open, stream, then always close."""
        node, meter = self.nodes[i], self._meters[i]
        completed = False
        try:
            self._where[i] = "open"
            node.open()
            meter.started()
            if i == 0:
                completed = self._run_source(node, meter)  # type: ignore[arg-type]
            else:
                completed = self._run_consumer(i, node, meter)
        except BaseException as exc:  # noqa: BLE001 - travels to the caller's thread
            self._record_error(node.name, self._where[i], exc)
        finally:
            meter.stopped()
            self._close_node(i, completed)

    def _close_node(self, i: int, completed: bool) -> None:
        """Tell node ``i`` its outcome and call its close(); a failure there is recorded."""
        node = self.nodes[i]
        self._completed[i] = completed
        if completed:
            node.outcome = "complete"
        else:
            with self._lock:
                node.outcome = "error" if self._errors else "cancelled"
        self._where[i] = "close"
        try:
            node.close()
        except BaseException as exc:  # noqa: BLE001 - must not stop the other nodes closing
            with self._lock:
                self._close_errors.append((node.name, "close", exc))
        self._where[i] = "done"
        self._closed[i].set()

    def _record_error(self, name: str, hook: str, exc: BaseException) -> None:
        # Record before setting the flag: a node that sees the flag then finds the error
        # and closes with outcome "error", not "cancelled".
        with self._lock:
            self._errors.append((name, hook, exc))
        self._stop.set()

    def _run_source(self, node: SourceNode, meter: NodeMeter) -> bool:
        """Pull items from generate() into the first queue; True if the stream ended cleanly."""
        out = self._queues[0]
        self._where[0] = "generate"
        items = node.generate()
        iterator = iter(items) if items is not None else iter(())
        try:
            while True:
                if self._stop.is_set():
                    return False
                t0 = time.monotonic()
                try:
                    item = next(iterator)
                except StopIteration:
                    meter.add_busy(time.monotonic() - t0, processing=False)
                    break
                meter.add_busy(time.monotonic() - t0, processing=True)
                if not self._put(out, item):
                    return False
                meter.emitted()
        finally:
            # Runs the generator's own finally blocks (closing a container) when we stop early.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        return self._finish_stream(0, node, meter, out)

    def _run_consumer(self, i: int, node: Node, meter: NodeMeter) -> bool:
        """Process items from the input queue until end of stream; True if it ended cleanly."""
        source_queue = self._queues[i - 1]
        is_sink = i == len(self.nodes) - 1
        out = None if is_sink else self._queues[i]
        on_item = self._on_item if is_sink else None
        while True:
            item = self._get(source_queue, meter)
            if item is _STOPPED:
                return False
            if item is _END:
                break
            self._where[i] = "process"
            t0 = time.monotonic()
            result = node.process(item)
            meter.add_busy(time.monotonic() - t0, processing=True)
            if not self._emit(result, out, meter, processing=True):
                return False
            if is_sink:
                meter.emitted()
                if on_item is not None:
                    self._where[i] = "on_item"
                    on_item(item)
        return self._finish_stream(i, node, meter, out)

    def _finish_stream(self, i: int, node: Node, meter: NodeMeter, out: queue.Queue[Any] | None) -> bool:
        """Flush node ``i`` and forward the end-of-stream marker; True if that succeeded."""
        self._where[i] = "flush"
        t0 = time.monotonic()
        result = node.flush()
        meter.add_busy(time.monotonic() - t0, processing=False)
        if not self._emit(result, out, meter, processing=False):
            return False
        return out is None or self._put(out, _END)

    def _emit(
        self, result: Iterable[Any] | None, out: queue.Queue[Any] | None, meter: NodeMeter, processing: bool
    ) -> bool:
        """Send a hook's outputs downstream (a sink's are consumed and dropped).

        Time spent producing each output counts as busy time, time blocked on the queue
        does not. Returns False if the run stopped meanwhile.
        """
        if result is None:
            return True
        if out is None and not hasattr(result, "__next__"):
            return True  # a sink's return value is ignored; only a generator must be driven
        iterator = _outputs(result)
        while True:
            t0 = time.monotonic()
            try:
                item = next(iterator)
            except StopIteration:
                meter.add_busy(time.monotonic() - t0, processing=processing)
                return True
            meter.add_busy(time.monotonic() - t0, processing=processing)
            if out is None:
                continue
            if not self._put(out, item):
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
                return False
            meter.emitted()

    def _get(self, source_queue: queue.Queue[Any], meter: NodeMeter) -> Any:
        """The next item, _END, or _STOPPED once the run is stopping."""
        depth = source_queue.qsize()  # how much work waited when this node became ready
        while True:
            if self._stop.is_set():
                return _STOPPED
            try:
                item = source_queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is not _END:
                meter.got(depth)
            return item

    def _put(self, target: queue.Queue[Any], item: Any) -> bool:
        """Put ``item``, waiting for room; False (item dropped) once the run is stopping."""
        while True:
            if self._stop.is_set():
                return False
            try:
                target.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue


def _outputs(result: Any) -> Iterator[Any]:
    """Iterate a hook's return value, refusing the single items that merely look iterable.

    A tensor, an array or a string returned by mistake instead of ``[item]`` would
    otherwise be split into rows or characters downstream.
    """
    if hasattr(result, "shape") or isinstance(result, (str, bytes, dict)):
        raise TypeError(
            f"a node hook returned a {type(result).__name__}; process() and flush() must return "
            "an iterable of items (a list, a tuple, a generator) or None: wrap one item as [item]"
        )
    try:
        return iter(result)
    except TypeError:
        raise TypeError(
            f"a node hook returned a {type(result).__name__}, which is not iterable; process() and "
            "flush() must return a list, a tuple, a generator or None: wrap one item as [item]"
        ) from None


def _attach_report(exc: BaseException, report: GraphReport) -> None:
    try:
        exc.report = report  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # some extension exceptions refuse new attributes
        pass


def _add_note(exc: BaseException, note: str) -> None:
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)
