"""The pacer, the deadline chooser and the reconnect backoff, without any network."""
import random
import threading
import time

import numpy as np
import pytest

from streamden.graph.pacer import DeadlineChooser, LiveCounters, Pacer, no_signal_slate, percentile
from streamden.io.live import Backoff


def image(value: int) -> np.ndarray:
    return np.full((4, 6, 3), value, np.uint8)


def run_pacer(pacer: Pacer, feed, ticks: int) -> list[tuple[int, int, float]]:
    """Run ``feed(pacer)`` in a thread while the pacer emits ``ticks`` frames."""
    pacer.start()
    worker = threading.Thread(target=feed, args=(pacer,))
    worker.start()
    assert pacer.wait_emitted(ticks, timeout=30)
    worker.join()
    pacer.stop()
    return pacer.emitted_log


def make_pacer(period: float, **kwargs) -> Pacer:
    log: list[tuple[int, int, float]] = []
    pacer = Pacer(period, lambda img, slot, now: log.append((int(img[0, 0, 0]), slot, now)), **kwargs)
    pacer.emitted_log = log
    return pacer


def test_one_frame_per_period_with_repeats_when_input_is_slow():
    period = 0.02
    pacer = make_pacer(period)

    def feed(p: Pacer) -> None:   # frames at half the output rate
        for i in range(10):
            p.submit(image(i), arrival=p.clock(), path="full")
            time.sleep(2 * period)
    log = run_pacer(pacer, feed, ticks=20)
    slots = [s for _, s, _ in log]
    counters = pacer.counters
    # Consecutive slots unless the (loaded) machine starved the pacer thread.
    assert len(slots) + counters.skipped_ticks == slots[-1] + 1
    assert counters.repeated >= 5                 # the missing frames were filled in
    values = [v for v, _, _ in log]
    assert values == sorted(values)               # never out of order
    assert percentile(counters.intervals(), 99) <= 2.5 * period


def test_backlog_is_bounded_and_extra_frames_are_dropped():
    pacer = make_pacer(0.05, max_backlog=2)
    now = pacer.clock()
    for i in range(5):
        pacer.submit(image(i), arrival=now, path="raw")
    assert pacer.counters.dropped == 3
    pacer.start()
    assert pacer.wait_emitted(3, timeout=10)
    pacer.stop()
    assert [v for v, _, _ in pacer.emitted_log[:3]] == [3, 4, 4]   # oldest kept two, then a repeat


def test_slate_after_silence_and_late_frames_counted():
    pacer = make_pacer(0.02, slate_after=0.1, deadline=0.05)
    pacer.submit(image(7), arrival=pacer.clock() - 1.0, path="raw")   # already a second old: late
    pacer.mark_input(pacer.clock())
    pacer.start()
    assert pacer.wait_emitted(15, timeout=10)
    pacer.stop()
    c = pacer.counters
    assert c.late == 1 and c.latency(50) >= 1.0
    assert c.slate >= 3 and c.repeated >= c.slate
    last = pacer.emitted_log[-1][0]
    assert last == no_signal_slate(6, 4)[0, 0, 0]


def test_emit_error_stops_the_pacer_and_is_reraised():
    def broken(img, slot, now):
        raise RuntimeError("output exploded")
    pacer = Pacer(0.01, broken)
    pacer.submit(image(1), arrival=pacer.clock(), path="raw")
    pacer.start()
    time.sleep(0.1)
    assert not pacer.running
    with pytest.raises(RuntimeError, match="exploded"):
        pacer.stop()


def test_deadline_chooser_degrades_in_order_and_learns():
    chooser = DeadlineChooser({"full": 0.1, "light2": 0.03, "light4": 0.01})
    assert chooser.choose(1.0) == "full"
    assert chooser.choose(0.05) == "light2"
    assert chooser.choose(0.02) == "light4"
    assert chooser.choose(0.001) == "raw"
    assert chooser.choose(1.0, allowed=("light4", "raw")) == "light4"
    chooser.record("full", 1.1)
    assert chooser.costs["full"] > 0.2
    assert DeadlineChooser().choose(10.0) == "raw"   # nothing measured yet: the safe path


def test_backoff_grows_to_the_cap_with_jitter():
    backoff = Backoff(base=0.1, cap=0.8, rng=random.Random(1))
    waits = [backoff.next() for _ in range(8)]
    bounds = [min(0.8, 0.1 * 2 ** i) for i in range(8)]
    assert all(b / 2 <= w <= b for w, b in zip(waits, bounds))
    assert len({round(w, 6) for w in waits[4:]}) > 1     # jitter: capped waits still differ
    backoff.reset()
    assert backoff.bound() == 0.1
    with pytest.raises(ValueError):
        Backoff(base=1.0, cap=0.5)


def test_counters_summary_has_the_reported_figures():
    c = LiveCounters()
    c.latencies.extend([0.01, 0.02, 0.03])
    c.emit_times.extend([0.0, 0.04, 0.08])
    s = c.summary()
    assert s["latency_p50_ms"] == pytest.approx(20.0)
    assert s["interval_p99_ms"] == pytest.approx(40.0)
