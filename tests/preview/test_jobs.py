"""The preview on the front doors: denoise_video (plain and --resume), the CLI options and their errors."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from streamden.api import denoise_video
from streamden.cli import main
from streamden.preview import Preview
from tests.media import make_video


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read()


@pytest.mark.parametrize("resume", [False, True])
def test_denoise_video_shows_its_frames_and_progress(tmp_path, random_weights, resume):
    src = make_video(tmp_path / "in.mp4", frames=12, size=(64, 48))
    preview = Preview(0)
    seen: dict = {}

    def on_frame(frame) -> None:
        if frame.index == 8:   # mid-job, from the sink's thread: what a viewer sees now
            seen["stats"] = json.loads(fetch(preview.port, "/stats.json"))
            for side in ("input", "output"):
                body = fetch(preview.port, f"/snapshot.jpg?stream=0&side={side}")
                seen[side] = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    denoise_video(src, tmp_path / "out.mp4", model=str(random_weights), device="cpu", sigma=20,
                  preview=preview, on_frame=on_frame, resume=resume, handle_signals=False,
                  overrides=["job.segment_frames=6"] if resume else ())
    stats = seen["stats"]
    assert stats["kind"] == "file"
    (stream,) = stats["streams"]
    rows = dict(stream["counters"])
    assert stream["name"] == "in.mp4" and stream["size"] == [64, 48]
    assert rows["frames"].startswith("9 / 12") and rows["sigma"] == "20.0" and rows["size"] == "64x48"
    assert set(rows) >= {"speed", "elapsed", "ETA"}
    assert seen["input"].shape == seen["output"].shape == (48, 64, 3)
    assert np.abs(seen["input"].astype(int) - seen["output"].astype(int)).mean() > 2   # a random network
    assert preview.closing                                    # the job stopped its preview
    with pytest.raises(OSError):
        fetch(preview.port, "/stats.json")


@pytest.mark.parametrize("args, message", [
    (["--preview-host", "0.0.0.0"], "--preview-host needs --preview PORT"),
    (["--preview", "70000"], "--preview must be a TCP port"),
    (["--preview", "0", "--preview-host", "no.such.host.invalid"], "cannot listen on no.such.host.invalid"),
    (["--preview", "0", "--ray"], "--preview shows a job that runs in this process"),
])
def test_denoise_preview_option_errors(tmp_path, capsys, args, message):
    src = make_video(tmp_path / "in.mp4", frames=2)
    code = main(["denoise", str(src), "-o", str(tmp_path / "out.mp4"), *args])
    err = capsys.readouterr().err
    assert code == 4 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out.mp4").exists()


def test_busy_port_is_one_error_before_any_work(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["live", "udp://127.0.0.1:9", "--out", f"{tmp_path}/", "--preview", str(port), "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 4 and f"--preview {port}: cannot listen on 127.0.0.1:{port}" in err


def test_cli_denoise_prints_the_preview_address(tmp_path, random_weights, capsys):
    src = make_video(tmp_path / "in.mp4", frames=4)
    code = main(["denoise", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(random_weights),
                 "--device", "cpu", "--sigma", "20", "--no-progress", "--preview", "0",
                 "--preview-host", "127.0.0.1"])
    err = capsys.readouterr().err
    assert code == 0
    (line,) = [line for line in err.splitlines() if line.startswith("preview: ")]
    assert line.startswith("preview: http://127.0.0.1:") and "/?token=" in line


def test_live_job_shows_each_stream_with_its_counters():
    from streamden.bench_live import ClockedSource
    from streamden.live import LiveJob
    from tests.live.conftest import live_engine

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    preview = Preview(0)
    job = LiveJob([ClockedSource(frames, fps=10), ClockedSource(frames[::-1], fps=10)], [[], []],
                  live_engine("noise.sigma=20"), preview=preview)
    seen: dict = {}

    def watch() -> None:
        while not all(st.counters.emitted >= 5 for st in job.streams):
            time.sleep(0.05)
        seen["stats"] = json.loads(fetch(preview.port, "/stats.json"))
        seen["both"] = fetch(preview.port, "/snapshot.jpg?stream=1&side=both")
        job.stop()
    threading.Thread(target=watch, daemon=True).start()
    lines: list[str] = []
    job.run(duration=30, print_fn=lines.append)
    assert f"preview: {preview.url}" in lines
    stats = seen["stats"]
    assert stats["kind"] == "live" and [s["name"] for s in stats["streams"]] == ["stream0", "stream1"]
    rows = dict(stats["streams"][1]["counters"])
    assert set(rows) == {"source", "frames out / in", "output rate", "paths", "latency p50 / p99",
                         "late / dropped / repeated", "sigma"}
    assert rows["paths"].startswith("full ") and rows["latency p50 / p99"].endswith(" ms")
    picture = cv2.imdecode(np.frombuffer(seen["both"], np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (48, 128, 3)
    assert preview.closing


def test_bench_live_with_a_viewer_compares_runs(random_weights):
    from streamden.bench_live import run_live_bench

    result = run_live_bench([(64, 48)], seconds=2, fps=10, device="cpu", model=str(random_weights), viewer=1,
                            overrides=["live.latency=3"])
    without, watched = result.rows
    assert without["viewer"] is False and "stills" not in without
    assert watched["viewer"] is True and watched["stills"] >= 1 and watched["snapshots"] >= 2
    assert watched["preview_cpu_pct"] >= 0
    ((size, full_without, full_with, _),) = result.viewer_cost()
    assert size == "64x48" and (full_without, full_with) == (without["path_full"], watched["path_full"])
    table = result.format_table()
    assert "preview cpu %" in table and "64x48: full-path frames" in table


@pytest.mark.parametrize("args, message", [
    (["bench", "--viewer"], "--set and --viewer are options of bench live"),
    (["bench", "live", "--viewer", "-1"], "--viewer takes a number of pairs"),
])
def test_bench_viewer_option_errors(capsys, args, message):
    assert main(args) == 4
    assert message in capsys.readouterr().err
