"""Several streams in one process over one model, the Prometheus endpoint, and `streamden live`."""
import socket
import threading
import time
import urllib.request

import av
import pytest

from streamden.cli import main
from streamden.live import LiveJob, prometheus_text
from tests.live.conftest import free_port, live_engine, wait_threads_gone


def test_two_streams_share_one_model_and_serve_metrics(feeder, shared_model):
    before = set(threading.enumerate())
    ports = [free_port(socket.SOCK_DGRAM) for _ in range(2)]
    for port in ports:
        feeder("udp", f"127.0.0.1:{port}", "--fps", "10", "--seconds", "8")
    job = LiveJob([f"udp://127.0.0.1:{p}" for p in ports], [[], []], shared_model, metrics_port=0)
    lines: list[str] = []
    scraped: list[str] = []

    def scrape() -> None:
        while not all(st.counters.emitted >= 20 for st in job.streams):
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{job.server.port}/metrics", timeout=5) as response:
            scraped.append(response.read().decode())
        job.stop()
    threading.Thread(target=scrape, daemon=True).start()
    summaries = job.run(duration=20, stats_every=0.5, print_fn=lines.append)
    assert [s["stream"] for s in summaries] == ["stream0", "stream1"]
    assert all(s["emitted"] >= 20 and s["received"] >= 10 for s in summaries)
    assert all(st.engine is shared_model for st in job.streams)
    text = scraped[0]
    for name in ("stream0", "stream1"):
        assert f'streamden_frames_emitted_total{{stream="{name}"}}' in text
        assert f'streamden_latency_seconds{{stream="{name}",quantile="0.99"}}' in text
        assert f'streamden_frames_path_total{{stream="{name}",path="raw"}}' in text
    assert "# TYPE streamden_frames_late_total counter" in text
    assert any(line.startswith("stream1:") for text in lines for line in text.splitlines())
    assert wait_threads_gone(before) == []


def test_prometheus_text_is_well_formed_without_streams():
    text = prometheus_text([])
    assert text.endswith("\n")
    assert all(line.startswith("# ") for line in text.splitlines())


def test_cli_live_records_and_reports(feeder, random_weights, tmp_path, capsys):
    port = free_port()
    feeder("tcp", f"127.0.0.1:{port}", "--fps", "10", "--seconds", "8")
    rec = tmp_path / "rec"
    one = tmp_path / "one"
    one.mkdir()
    code = main(["live", f"tcp://127.0.0.1:{port}", "--out", f"{rec}/", "--out", str(one / "rec.ts"),
                 "--model", str(random_weights), "--device", "cpu", "--sigma", "20", "--duration", "3",
                 "--stats", "1", "--set", "live.segment_seconds=1"])
    err = capsys.readouterr().err
    assert code == 0
    assert "stream0: emitted" in err and "interval p99" in err
    assert len(list(rec.glob("*.ts"))) >= 2
    assert [p.name for p in one.iterdir()] == ["rec.ts"]        # one file, exactly the name asked for
    emitted = int(err.split("stream0: emitted ")[-1].split()[0])
    with av.open(str(one / "rec.ts")) as container:
        recorded = sum(1 for _ in container.decode(video=0))
    assert 10 <= recorded <= emitted          # a loaded machine may drop a few at the output queue


def test_cli_live_bad_output_fails_before_connecting(tmp_path, capsys):
    code = main(["live", "udp://127.0.0.1:9", "--out", str(tmp_path / "out.mp4"), "--duration", "1"])
    assert code == 3
    assert "out.mp4" in capsys.readouterr().err


def test_cli_live_several_sources_need_a_stream_placeholder(tmp_path, capsys):
    code = main(["live", "udp://127.0.0.1:9", "udp://127.0.0.1:10", "--out", f"{tmp_path}/", "--duration", "1"])
    assert code == 4
    assert "{stream}" in capsys.readouterr().err


@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_full_temporal_path_carries_frames_when_the_deadline_allows(lookahead):
    import numpy as np

    from streamden.bench_live import ClockedSource
    from streamden.live import LiveStream

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    got = []
    engine = live_engine(f"live.lookahead={lookahead}", "live.latency=3.0", "noise.sigma=20", "live.paths=[full, raw]")
    stream = LiveStream("cam", ClockedSource(frames, fps=10), engine, [],
                        on_emit=lambda image, slot, now: got.append(image))
    stream.start()
    end = time.monotonic() + 20
    while stream.counters.paths["full"] < 5 and time.monotonic() < end:
        time.sleep(0.1)
    stream.stop()
    c = stream.counters
    assert c.paths["full"] >= 5 and c.paths["light2"] == c.paths["light4"] == 0
    assert c.latency(99) <= 3.0 + 0.5                     # the configured bound, plus one loaded tick
    assert any(not any(np.array_equal(image, f) for f in frames) for image in got)   # denoised, not raw


@pytest.mark.parametrize("full_cost, expected", [(10.0, "lite"), (0.001, "full")])
def test_lite_rung_carries_frames_where_the_full_network_cannot_keep_up(full_cost, expected):
    import numpy as np

    from streamden.bench_live import ClockedSource
    from streamden.graph.pacer import DeadlineChooser
    from streamden.live import LiveStream

    frames = np.random.default_rng(1).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    engine = live_engine("live.lookahead=1", "live.latency=3.0", "noise.sigma=20")
    stream = LiveStream("cam", ClockedSource(frames, fps=10), engine, [])
    assert stream.paths == ("full", "lite", "light2", "light4", "raw")
    assert stream.engines["lite"].single_stage
    # Calibrated already: the full network far too slow (or fast enough), the light one cheap.
    stream._calibrated = (64, 48)
    stream.chooser = DeadlineChooser({"full": full_cost, "lite": 0.001, "light2": 0.001, "light4": 0.001})
    stream.start()
    end = time.monotonic() + 20
    while stream.counters.paths[expected] < 5 and time.monotonic() < end:
        time.sleep(0.1)
    stream.stop()
    c = stream.counters
    assert c.paths[expected] >= 5 and c.paths["light2"] == c.paths["light4"] == 0
    assert c.paths["lite" if expected == "full" else "full"] == 0


def test_lite_rung_is_left_out_when_the_model_is_the_light_one():
    import numpy as np

    from streamden.bench_live import ClockedSource
    from streamden.config import make_config
    from streamden.engine import Engine
    from streamden.live import LiveStream, lite_engine

    engine = Engine(make_config("surveillance", None, [], door="live", model="lite", device="cpu"), live=True)
    assert lite_engine(engine) is None
    stream = LiveStream("cam", ClockedSource(np.zeros((2, 16, 16, 3), np.uint8), fps=10), engine, [])
    assert "lite" not in stream.paths and list(stream.engines) == ["full"]


def test_full_path_cost_is_predicted_from_lite_on_a_cpu():
    import numpy as np

    from streamden.bench_live import ClockedSource
    from streamden.live import LiveStream

    engine = live_engine("live.lookahead=1")
    stream = LiveStream("cam", ClockedSource(np.zeros((2, 16, 16, 3), np.uint8), fps=10), engine, [])
    assert stream._predicted_cost("full") is None                       # nothing measured yet
    stream.calibration["lite"] = 0.03
    full, lite = engine.multiply_adds_per_frame(1), stream.engines["lite"].multiply_adds_per_frame(1)
    assert full == pytest.approx(3 * 159_048, rel=0.01) and lite == pytest.approx(12_544)   # 3 blocks at look-ahead 1
    assert stream._predicted_cost("full") == pytest.approx(0.03 * full / lite)
    assert stream._predicted_cost("light2") is None                     # single-frame passes are always timed


def test_single_frame_passes_run_the_light_network():
    import numpy as np

    from streamden.bench_live import ClockedSource
    from streamden.graph.pacer import DeadlineChooser
    from streamden.live import LiveStream

    frames = np.random.default_rng(2).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    engine = live_engine("live.lookahead=1", "live.latency=3.0", "noise.sigma=20")
    stream = LiveStream("cam", ClockedSource(frames, fps=10), engine, [])
    light = stream.engines["lite"]
    assert stream._engine_of("light2") is light and stream._engine_of("full") is engine
    calls = {"full": 0, "lite": 0}
    for name, e in (("full", engine), ("lite", light)):
        def counted(*args, _run=e.single_frame, _name=name, **kwargs):
            calls[_name] += 1
            return _run(*args, **kwargs)
        e.single_frame = counted
    # Neither temporal network fits: the frames go out through the half-resolution pass.
    stream._calibrated = (64, 48)
    stream.chooser = DeadlineChooser({"full": 10.0, "lite": 10.0, "light2": 0.001, "light4": 0.001})
    stream.start()
    end = time.monotonic() + 20
    while stream.counters.paths["light2"] < 5 and time.monotonic() < end:
        time.sleep(0.1)
    stream.stop()
    assert stream.counters.paths["light2"] >= 5
    assert calls["lite"] >= 5 and calls["full"] == 0


def test_live_estimates_the_noise_on_one_frame_in_a_few():
    import types

    import numpy as np

    from streamden.bench_live import ClockedSource
    from streamden.live import ESTIMATE_EVERY, LiveStream

    rng = np.random.default_rng(3)
    engine = live_engine("noise.sigma=auto", "live.paths=[full, raw]")
    stream = LiveStream("cam", ClockedSource(np.zeros((2, 16, 16, 3), np.uint8), fps=10), engine, [])
    estimated = []
    stream.engine.estimate_sigma = lambda tensor: estimated.append(1) or 12.0
    frames = [types.SimpleNamespace(image=rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), tensor=None, sigma=None)
              for _ in range(4 * ESTIMATE_EVERY)]
    for frame in frames:
        stream._prepare(frame)
    assert len(estimated) == 4
    assert all(frame.sigma == 12.0 for frame in frames)                   # held frames keep the tracked level
    assert "over 16 frames" in stream._tracker.summary()                 # every frame counts as a level used
