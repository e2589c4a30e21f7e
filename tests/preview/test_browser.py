"""The preview page in a real browser: `streamden live --preview` on a loopback camera, opened in
headless Chromium (Debian's `chromium`; `.ci/run` installs it), both images loaded, the output
side different from the input side in the screenshot."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from tests.live.conftest import REPO, feeder, free_port  # noqa: F401 (feeder: the fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")

#: Flags for a quiet, self-contained headless run (no sandbox: CI runs as root).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


class _Images(HTMLParser):
    """The attributes of every <img> of the page as rendered (template content included)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        elif tag == "body":
            self.body = {k: v or "" for k, v in attrs}


class LiveJob:
    """``python -m streamden live`` in a child process; ``url`` is the preview address it prints."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "streamden", "live", *args], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if line.startswith("preview: "):
                self.url = line.split(" ", 1)[1].strip()

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "stats.json", timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()          # SIGTERM: the job stops cleanly
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._reader.join(5)


def test_page_in_headless_chromium_shows_input_and_a_different_output(feeder, random_weights, tmp_path):
    port = free_port()
    feeder("tcp", f"127.0.0.1:{port}", "--fps", "10", "--seconds", "60", "--size", "160x120")
    job = LiveJob(f"tcp://127.0.0.1:{port}", "--out", f"{tmp_path}/rec/", "--model", str(random_weights),
                  "--device", "cpu", "--sigma", "20", "--set", "live.latency=3", "--duration", "90",
                  "--preview", "0")
    try:
        end = time.monotonic() + 60
        while job.url is None:
            assert job.proc.poll() is None and time.monotonic() < end, f"no preview address: {job.lines}"
            time.sleep(0.1)
        # Until calibration is done frames go out as received (input = output): wait for the network.
        while True:
            (stream,) = job.stats()["streams"]
            if stream["version"] >= 1 and stream["path"] not in (None, "raw"):
                break
            assert time.monotonic() < end, f"no denoised frame in 60 s: {stream}"
            time.sleep(0.3)
        shot = tmp_path / "page.png"
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,720",
             "--virtual-time-budget=3000", f"--screenshot={shot}", "--dump-dom", job.url],
            capture_output=True, text=True, timeout=120)
    finally:
        code = job.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    assert code == 0, job.lines
    page = _Images()
    page.feed(result.stdout)
    assert page.body.get("data-ready") == "1", "the page did not load both images"
    shown = {img["alt"]: img for img in page.images if img.get("data-loaded") == "1" and img.get("data-rect")}
    assert set(shown) >= {"input", "output"}, page.images
    assert shown["input"]["data-version"] == shown["output"]["data-version"]        # one frame's pair

    picture = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] == 1280
    crops = {}
    for side in ("input", "output"):
        x, y, w, h = (int(v) for v in shown[side]["data-rect"].split(","))
        assert w > 100 and h > 75
        crops[side] = picture[y + 2:y + h - 2, x + 2:x + w - 2].astype(np.int16)
        assert crops[side].std() > 3, f"{side}: a blank area, not a frame"
    height = min(c.shape[0] for c in crops.values())
    width = min(c.shape[1] for c in crops.values())
    difference = np.abs(crops["input"][:height, :width] - crops["output"][:height, :width]).mean()
    assert difference > 5, f"output side looks like the input side (mean difference {difference:.1f})"
