"""Tests of the streaming graph runtime: flow, flush, errors, cancellation, signals, bounds, stats."""
from __future__ import annotations

import doctest
import os
import signal
import threading
import time
from typing import Any, Iterator

import numpy as np
import pytest

import streamden.graph
import streamden.graph.metrics
import streamden.graph.node
import streamden.graph.runner
from streamden.errors import Cancelled
from streamden.graph import FunctionNode, Graph, GraphReport, Node, NodeStats, SinkNode, SourceNode


class Boom(RuntimeError):
    """The error the test nodes raise on purpose."""


class Tracked:
    """Mixin recording hook calls; ``fail_in`` names a hook that raises Boom."""

    def setup(self, fail_in: str | None = None) -> None:
        self.calls: dict[str, int] = {"open": 0, "flush": 0, "close": 0}
        self.fail_in = fail_in
        self.closed_outcome: str | None = None
        self.close_thread: str | None = None
        self.closed = threading.Event()

    def open(self) -> None:
        self.calls["open"] += 1
        if self.fail_in == "open":
            raise Boom(f"{self.name} open")

    def flush(self) -> Any:
        self.calls["flush"] += 1
        if self.fail_in == "flush":
            raise Boom(f"{self.name} flush")
        return ()

    def close(self) -> None:
        self.calls["close"] += 1
        self.closed_outcome = self.outcome
        self.close_thread = threading.current_thread().name
        self.closed.set()
        if self.fail_in == "close":
            raise Boom(f"{self.name} close")


class Source(Tracked, SourceNode):
    """Yields 0, 1, 2, ... (``count`` items, or forever), ``delay`` seconds apart."""

    def __init__(self, count: int | None = None, delay: float = 0.0, fail_in: str | None = None,
                 fail_at: int = 0) -> None:
        SourceNode.__init__(self, name="source")
        self.setup(fail_in)
        self.count, self.delay, self.fail_at = count, delay, fail_at
        self.produced = 0
        self.generator_finalised = False

    def generate(self) -> Iterator[int]:
        try:
            i = 0
            while self.count is None or i < self.count:
                if self.fail_in == "generate" and i == self.fail_at:
                    raise Boom("source generate")
                if self.delay:
                    time.sleep(self.delay)
                self.produced += 1
                yield i
                i += 1
        finally:
            self.generator_finalised = True


class Middle(Tracked, Node):
    """Passes items through, after ``delay`` seconds; ``fail_in="process"`` fails at ``fail_at``."""

    def __init__(self, name: str = "middle", delay: float = 0.0, fail_in: str | None = None,
                 fail_at: int = 0) -> None:
        Node.__init__(self, name=name)
        self.setup(fail_in)
        self.delay, self.fail_at = delay, fail_at

    def process(self, item: Any) -> Any:
        if self.fail_in == "process" and item == self.fail_at:
            raise Boom(f"{self.name} process")
        if self.delay:
            time.sleep(self.delay)
        return [item]


class Sink(Tracked, SinkNode):
    """Collects items, taking ``delay`` seconds each."""

    def __init__(self, delay: float = 0.0, fail_in: str | None = None, fail_at: int = 0) -> None:
        SinkNode.__init__(self, name="sink")
        self.setup(fail_in)
        self.delay, self.fail_at = delay, fail_at
        self.items: list[Any] = []

    def process(self, item: Any) -> None:
        if self.fail_in == "process" and item == self.fail_at:
            raise Boom("sink process")
        if self.delay:
            time.sleep(self.delay)
        self.items.append(item)


def started_after(graph: Graph, sink: Sink, count: int, action: Any) -> threading.Thread:
    """Run ``action()`` from a helper thread once the sink has consumed ``count`` items."""

    def watch() -> None:
        deadline = time.monotonic() + 10
        while len(sink.items) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------- flow


def test_items_flow_in_order_and_all_arrive() -> None:
    source, sink = Source(count=300), Sink()
    nodes = [source, FunctionNode(lambda x: x + 1, name="plus"), Middle(), FunctionNode(str), sink]
    report = Graph(nodes, queue_size=2).run(handle_signals=False)
    assert sink.items == [str(i + 1) for i in range(300)]
    assert report.outcome == "complete"
    for node in (source, nodes[2], sink):
        assert node.calls == {"open": 1, "flush": 1, "close": 1}
        assert node.closed_outcome == "complete"
    # Every hook runs in the node's own thread.
    assert sink.close_thread != threading.current_thread().name
    assert source.close_thread != sink.close_thread


def test_flush_output_arrives_after_the_items() -> None:
    class Pairs(Node):
        """Emits items two by two; the odd one out waits for flush()."""

        def __init__(self) -> None:
            super().__init__()
            self.held: list[int] = []

        def process(self, item: int) -> Any:
            self.held.append(item)
            if len(self.held) == 2:
                pair, self.held = tuple(self.held), []
                yield pair

        def flush(self) -> Any:
            if self.held:
                yield tuple(self.held)
            yield "tail"

    sink = Sink()
    Graph([Source(count=5), Pairs(), sink]).run(handle_signals=False)
    assert sink.items == [(0, 1), (2, 3), (4,), "tail"]


def test_several_or_zero_outputs_per_input() -> None:
    class EvensTwice(Node):
        def process(self, item: int) -> Any:
            return [item, item] if item % 2 == 0 else []

    class NoneForThree(Node):
        def process(self, item: int) -> Any:
            return None if item == 4 else (item,)

    sink = Sink()
    report = Graph([Source(count=7), EvensTwice(), NoneForThree(), sink], queue_size=1).run(handle_signals=False)
    assert sink.items == [0, 0, 2, 2, 6, 6]
    assert [(s.items_in, s.items_out) for s in report.nodes] == [(0, 7), (7, 8), (8, 6), (6, 6)]


def test_on_item_is_called_in_the_sink_thread_after_each_item() -> None:
    sink = Sink()
    seen: list[tuple[Any, int, str]] = []
    Graph([Source(count=4), sink]).run(
        handle_signals=False,
        on_item=lambda item: seen.append((item, len(sink.items), threading.current_thread().name)),
    )
    assert [(item, n) for item, n, _ in seen] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert {name for _, _, name in seen} == {sink.close_thread}


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "where",
    ["source.generate", "source.open", "middle.process", "middle.open", "middle.flush",
     "sink.process", "sink.flush", "on_item"],
)
def test_an_error_anywhere_stops_and_closes_everything_and_is_re_raised(where: str) -> None:
    owner, _, hook = where.partition(".")
    endless = hook not in ("flush",)  # flush only happens at the end of a finite stream
    source = Source(count=None if endless else 20, fail_in=hook if owner == "source" else None, fail_at=3)
    middle = Middle(fail_in=hook if owner == "middle" else None, fail_at=5)
    sink = Sink(fail_in=hook if owner == "sink" else None, fail_at=7)

    def on_item(item: Any) -> None:
        if owner == "on_item" and item == 2:
            raise Boom("progress bar")

    started = time.monotonic()
    with pytest.raises(Boom) as info:
        Graph([source, middle, sink], queue_size=2).run(handle_signals=False, on_item=on_item)
    assert time.monotonic() - started < 5
    for node in (source, middle, sink):
        assert node.calls["close"] == 1, node.name
    # A node upstream of a failing flush() had already finished its stream cleanly.
    finished = {"middle.flush": [source], "sink.flush": [source, middle]}.get(where, [])
    for node in (source, middle, sink):
        assert node.closed_outcome == ("complete" if node in finished else "error"), node.name
    if hook != "flush":
        assert source.calls["flush"] == middle.calls["flush"] == sink.calls["flush"] == 0
    report = info.value.report
    assert isinstance(report, GraphReport)
    assert report.outcome == "error"
    assert any("Boom" in line for line in report.errors)
    if owner == "source" and hook == "generate":
        assert source.generator_finalised


def test_the_original_exception_object_is_raised_with_its_traceback() -> None:
    error = KeyError("missing")

    def explode(item: int) -> int:
        raise error

    with pytest.raises(KeyError) as info:
        Graph([Source(count=3), FunctionNode(explode), Sink()]).run(handle_signals=False)
    assert info.value is error
    assert any(entry.name == "explode" for entry in info.traceback)


def test_an_error_in_close_does_not_stop_the_others_closing() -> None:
    source, middle, sink = Source(count=10), Middle(fail_in="close"), Sink(fail_in="close")
    with pytest.raises(Boom, match="middle close") as info:
        Graph([source, middle, sink]).run(handle_signals=False)
    assert sink.items == list(range(10))
    assert [n.calls["close"] for n in (source, middle, sink)] == [1, 1, 1]
    assert sink.closed_outcome == "complete"  # the stream itself ended cleanly
    report = info.value.report
    assert report.outcome == "error"
    assert len(report.errors) == 2 and all("close()" in line for line in report.errors)


def test_a_processing_error_wins_over_close_errors() -> None:
    middle, sink = Middle(fail_in="process", fail_at=2), Sink(fail_in="close")
    with pytest.raises(Boom, match="middle process"):
        Graph([Source(count=None), middle, sink]).run(handle_signals=False)
    assert sink.calls["close"] == 1


# ---------------------------------------------------------------------------- cancellation


def test_cancel_from_another_thread_raises_cancelled_and_closes_the_sink() -> None:
    source, middle, sink = Source(count=None), Middle(), Sink(delay=0.01)
    graph = Graph([source, middle, sink], queue_size=2)
    started_after(graph, sink, 5, graph.cancel)
    started = time.monotonic()
    with pytest.raises(Cancelled) as info:
        graph.run(handle_signals=False)
    assert time.monotonic() - started < 5
    for node in (source, middle, sink):
        assert node.calls["close"] == 1 and node.calls["flush"] == 0
        assert node.closed_outcome == "cancelled"
    assert source.generator_finalised  # the source's generator was closed, not left hanging
    assert info.value.report.outcome == "cancelled"
    assert info.value.report.nodes[-1].items_in == len(sink.items) >= 5
    assert graph.report is info.value.report
    graph.cancel()  # idempotent, also after the run


def test_cancel_reaches_a_source_blocked_on_a_full_queue() -> None:
    release = threading.Event()

    class Stalled(Node):
        def process(self, item: Any) -> Any:
            release.wait(5)
            return [item]

    source, sink = Source(count=None), Sink()
    graph = Graph([source, Stalled(), sink], queue_size=2)
    threading.Timer(0.2, graph.cancel).start()
    threading.Timer(0.4, release.set).start()
    with pytest.raises(Cancelled):
        graph.run(handle_signals=False)
    # The source filled its queue, blocked in put(), and still noticed the cancellation.
    assert source.produced <= 2 + 2
    assert source.closed_outcome == sink.closed_outcome == "cancelled"


def test_run_from_a_worker_thread_with_handle_signals_and_cancel() -> None:
    sink = Sink()
    graph = Graph([Source(count=None, delay=0.001), sink])
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            graph.run(handle_signals=True)  # not the main thread: signals are left alone
        except BaseException as exc:  # noqa: BLE001
            result["exc"] = exc

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=target)
    thread.start()
    started_after(graph, sink, 3, graph.cancel)
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(result.get("exc"), Cancelled)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_sigint_cancels_the_run_and_restores_the_handlers() -> None:
    before_int = signal.getsignal(signal.SIGINT)
    before_term = signal.getsignal(signal.SIGTERM)
    during: list[Any] = []
    source, sink = Source(count=None), Sink(delay=0.005)
    graph = Graph([source, Middle(), sink], queue_size=2)

    def on_item(item: Any) -> None:
        if item == 0:
            during.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))

    started_after(graph, sink, 5, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(Cancelled):
        graph.run(on_item=on_item)
    assert sink.calls["close"] == 1 and sink.closed_outcome == "cancelled"
    assert source.closed_outcome == "cancelled"
    assert during and during[0][0] is not before_int and during[0][1] is not before_term
    assert signal.getsignal(signal.SIGINT) is before_int
    assert signal.getsignal(signal.SIGTERM) is before_term


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_without_signal_handling_a_keyboard_interrupt_still_closes_everything() -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        source, sink = Source(count=None), Sink(delay=0.005)
        graph = Graph([source, Middle(), sink], queue_size=2)
        started_after(graph, sink, 5, lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(KeyboardInterrupt) as info:
            graph.run(handle_signals=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert source.closed_outcome == sink.closed_outcome == "cancelled"
    assert sink.calls["close"] == 1
    assert info.value.report.outcome == "cancelled"


def test_a_node_stuck_in_process_is_abandoned_after_stop_timeout() -> None:
    release = threading.Event()

    class Stuck(Tracked, Node):
        def __init__(self) -> None:
            Node.__init__(self, name="stuck")
            self.setup()

        def process(self, item: Any) -> Any:
            if item == 3:
                release.wait(10)
            return [item]

    stuck, sink = Stuck(), Sink()
    graph = Graph([Source(count=None), stuck, sink], stop_timeout=0.3)
    started_after(graph, sink, 3, graph.cancel)
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled) as info:
            graph.run(handle_signals=False)
        assert time.monotonic() - started < 5
        assert sink.closed_outcome == "cancelled"
        assert any("stuck" in line and "abandoned" in line for line in info.value.report.errors)
    finally:
        release.set()
    # The abandoned node still gets its close() once it comes back.
    assert stuck.closed.wait(5)
    assert stuck.calls["close"] == 1 and stuck.closed_outcome == "cancelled"


# ---------------------------------------------------------------------------- bounds and stats


@pytest.mark.parametrize("middles", [0, 2])
def test_bounded_queues_bound_the_items_in_flight(middles: int) -> None:
    queue_size = 3
    lock = threading.Lock()
    counts = {"live": 0, "max": 0}

    class Counting(Source):
        def generate(self) -> Iterator[int]:
            for i in range(60):
                with lock:
                    counts["live"] += 1
                    counts["max"] = max(counts["max"], counts["live"])
                yield i

    class SlowSink(Sink):
        def process(self, item: Any) -> None:
            time.sleep(0.002)
            with lock:
                counts["live"] -= 1

    nodes: list[Node] = [Counting(), *(Middle(name=f"m{i}") for i in range(middles)), SlowSink()]
    report = Graph(nodes, queue_size=queue_size).run(handle_signals=False)
    assert report.outcome == "complete" and counts["live"] == 0
    # Each queue holds queue_size items and each node one more in its hands.
    bound = (len(nodes) - 1) * queue_size + len(nodes)
    assert counts["max"] <= bound
    assert counts["max"] >= queue_size  # the source really ran ahead of the slow sink
    assert all(s.max_queue_depth <= queue_size for s in report.nodes)
    assert report.nodes[-1].max_queue_depth >= queue_size - 1


def test_report_numbers_are_sane() -> None:
    source, sink = Source(count=20), Sink()
    nodes = [source, Middle(name="slow", delay=0.005), FunctionNode(lambda x: x, name="fast"), sink]
    report = Graph(nodes).run(handle_signals=False)
    assert [s.name for s in report.nodes] == ["source", "slow", "fast", "sink"]
    assert all(isinstance(s, NodeStats) for s in report.nodes)
    assert [s.items_in for s in report.nodes] == [0, 20, 20, 20]
    assert [s.items_out for s in report.nodes] == [20, 20, 20, 20]
    for s in report.nodes:
        assert s.fps > 0 and 0 < s.wall_seconds <= report.wall_seconds
        assert 0 <= s.busy_seconds <= s.wall_seconds + 1e-3
        assert 0 <= s.mean_queue_depth <= s.max_queue_depth <= 4
    slow = report.nodes[1]
    assert slow.mean_latency_ms >= 4.0 and slow.busy_seconds >= 0.09
    assert report.nodes[0].mean_queue_depth == report.nodes[0].max_queue_depth == 0
    table = report.format_table()
    for name in ("source", "slow", "fast", "sink", "fps", "outcome complete"):
        assert name in table
    widths = {len(line) for line in table.splitlines()[1:5]}
    assert len(widths) == 1  # rows are aligned


# ---------------------------------------------------------------------------- API edges


@pytest.mark.parametrize("returned", [7, "ab", np.zeros((2, 3))])
def test_a_single_item_returned_instead_of_a_list_is_an_error(returned: Any) -> None:
    class Forgetful(Node):
        def process(self, item: Any) -> Any:
            return returned

    with pytest.raises(TypeError, match=r"wrap one item as \[item\]"):
        Graph([Source(count=2), Forgetful(), Sink()]).run(handle_signals=False)


def test_a_sink_return_value_is_ignored_but_a_generator_sink_is_driven() -> None:
    written: list[int] = []

    class CountingSink(SinkNode):
        def process(self, item: int) -> int:
            written.append(item)
            return 123  # e.g. bytes written

    class GeneratorSink(SinkNode):
        def process(self, item: int) -> Iterator[None]:
            written.append(-item)
            yield

    Graph([Source(count=2), CountingSink()]).run(handle_signals=False)
    Graph([Source(count=2), GeneratorSink()]).run(handle_signals=False)
    assert written == [0, 1, 0, -1]



def test_a_graph_runs_only_once() -> None:
    graph = Graph([Source(count=1), Sink()])
    graph.run(handle_signals=False)
    with pytest.raises(RuntimeError, match="already run"):
        graph.run(handle_signals=False)


def test_invalid_chains_are_rejected() -> None:
    with pytest.raises(TypeError, match="first node"):
        Graph([Middle(), Sink()])
    with pytest.raises(TypeError, match="last node"):
        Graph([Source(), Middle()])
    with pytest.raises(TypeError, match="inside the chain"):
        Graph([Source(), Sink(), Sink()])
    with pytest.raises(ValueError, match="at least"):
        Graph([Source()])
    with pytest.raises(ValueError, match="queue_size"):
        Graph([Source(), Sink()], queue_size=0)
    middle = Middle()
    with pytest.raises(ValueError, match="twice"):
        Graph([Source(), middle, middle, Sink()])


def test_node_defaults() -> None:
    class Bare(SinkNode):
        def __init__(self) -> None:  # forgets super().__init__()
            pass

    assert Bare().name == "Bare"
    assert FunctionNode(len).name == "len"
    assert FunctionNode(lambda x: x).name == "FunctionNode"
    assert FunctionNode(len, name="size").name == "size"
    assert Node().stopping is False


@pytest.mark.parametrize(
    "module",
    [streamden.graph, streamden.graph.node, streamden.graph.runner, streamden.graph.metrics],
)
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
