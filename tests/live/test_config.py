"""Live reads the engine's typed config: each key it reads reaches its piece, a bad value is
refused when a stream or job is built (naming the key), and no key is accepted and ignored."""
from __future__ import annotations

import queue
import time
from fractions import Fraction

import numpy as np
import pytest

from streamden.bench_live import ClockedSource
from streamden.config import make_config
from streamden.errors import ConfigError
from streamden.graph.pacer import LiveCounters
from streamden.io.live import LiveSource
from streamden.live import (
    _RESTART,
    LiveJob,
    LiveStream,
    _Inbox,
    check_live_config,
    run_live,
)
from tests.live.conftest import live_engine


def frames() -> ClockedSource:
    return ClockedSource(np.zeros((2, 48, 64, 3), np.uint8), fps=10, count=2)


@pytest.mark.parametrize("override, key", [
    ("live.lookahead=3", "live.lookahead must be 0, 1 or 2"),
    ("live.lite_lookahead=-1", "live.lite_lookahead must be 0, 1 or 2"),
    ("live.latency=0", "live.latency must be positive"),
    ("live.paths=[full, light2]", "live.paths must be a subset"),
    ("live.paths=[raw, fast]", "live.paths must be a subset"),
    ("encode.codec=hevc", "encode.codec: streamden live writes H.264 (h264); got hevc"),
    ("encode.codec=av1", "encode.codec: streamden live writes H.264 (h264); got av1"),
])
def test_bad_values_are_refused_naming_the_key(override, key):
    config = make_config("surveillance", None, [override], door="live")
    with pytest.raises(ConfigError) as info:
        check_live_config(config)
    assert key in str(info.value)


def test_streams_jobs_and_run_live_check_the_config_before_anything_runs():
    engine = live_engine("encode.codec=hevc")
    with pytest.raises(ConfigError, match="encode.codec"):
        LiveStream("cam", frames(), engine, [])
    with pytest.raises(ConfigError, match="encode.codec"):
        LiveJob(["udp://127.0.0.1:9"], [[]], engine)
    # Refused before the model loads or the source is opened (nothing listens on port 9).
    with pytest.raises(ConfigError, match="live.lookahead"):
        run_live(["udp://127.0.0.1:9"], [], overrides=["live.lookahead=5"], device="cpu")


def test_stream_reads_its_settings_from_the_engine_config(shared_model):
    stream = LiveStream("cam", frames(), shared_model, [])
    config = shared_model.config
    assert stream.config is config
    assert stream._streams["full"].lookahead == config.live.lookahead == 1
    assert stream.paths == tuple(config.live.paths)
    assert stream.sigma is None and stream.fps is None                      # noise.sigma auto, encode.fps null
    assert stream._tracker.smoothing == config.noise.smoothing == 0.8       # the preset's, not a default
    assert stream._inbox.size == config.graph.queue_size == 2              # the preset's graph.queue_size
    assert {path: st.lookahead for path, st in stream._streams.items()} == {"full": 1, "lite": 0}
    assert config.live.lite_lookahead == 0                                  # lite gets two of the three periods
    assert stream.engines["lite"].config.model.name == config.live.lite_model == "lite"
    assert not stream.engines["lite"].aligns                               # the light network runs unaligned

    stream = LiveStream("cam", frames(), live_engine("noise.sigma=30", "encode.fps=30000/1001",
                                                     "graph.queue_size=5", "live.lookahead=0",
                                                     "live.lite_lookahead=2"), [])
    assert stream.sigma == 30.0 and stream.fps == Fraction(30000, 1001)
    assert stream._inbox.size == 5 and stream._streams["full"].lookahead == 0
    assert stream._streams["lite"].lookahead == 2


def test_job_opens_url_sources_with_the_configured_timeouts_and_backoff():
    engine = live_engine("live.open_timeout=1.5", "live.read_timeout=0.7", "live.backoff_base=0.2",
                         "live.backoff_cap=3.0")
    job = LiveJob(["udp://127.0.0.1:9"], [[]], engine)
    (source,) = [st.source for st in job.streams]
    assert isinstance(source, LiveSource)
    assert (source.open_timeout, source.read_timeout) == (1.5, 0.7)
    assert (source.backoff.base, source.backoff.cap) == (0.2, 3.0)


def test_outputs_get_the_configured_encoder_settings_and_slate(tmp_path):
    engine = live_engine("encode.crf=31", "encode.preset=ultrafast", "live.slate_after=4.5",
                         "live.paths=[raw]", "live.latency=0.9", "encode.fps=10")
    stream = LiveStream("cam", frames(), engine, [str(tmp_path / "rec.ts")])
    stream.start()
    try:
        assert stream.wait_emitted(1, timeout=15)
    finally:
        stream.stop()
    (output,) = stream.outputs
    assert (output.crf, output.preset) == (31, "ultrafast")
    assert stream.pacer.slate_after == 4.5 and stream.pacer.deadline == 0.9
    assert stream.fps == 10


def test_inbox_keeps_queue_size_frames_and_never_loses_a_restart():
    counters = LiveCounters()
    inbox = _Inbox(2, counters)
    for item in ("f0", "f1", _RESTART, _RESTART, "f2", "f3"):
        inbox.put(item)
    got = []
    while True:
        try:
            got.append(inbox.get(timeout=0.01))
        except queue.Empty:
            break
    # f0 and f1 were dropped for f2 and f3; the (collapsed) restart marker stayed in order.
    assert got == [_RESTART, "f2", "f3"] and counters.dropped == 2


@pytest.mark.parametrize("lookahead, lite_lookahead, periods", [(1, 0, 3), (0, 0, 2), (0, 1, 3), (2, 0, 4)])
def test_default_latency_follows_the_larger_lookahead(lookahead, lite_lookahead, periods):
    stream = LiveStream("cam", frames(), live_engine(f"live.lookahead={lookahead}",
                                                     f"live.lite_lookahead={lite_lookahead}"), [])
    stream.start()
    end = time.monotonic() + 10
    while stream.counters.emitted < 1 and time.monotonic() < end:
        time.sleep(0.02)
    stream.stop()
    assert stream.latency == pytest.approx(periods / 10)                 # the source runs at 10 fps
