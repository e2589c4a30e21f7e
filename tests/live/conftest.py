"""Helpers of the live tests: free loopback ports, the feeder process, engines over a random model."""
from __future__ import annotations

import functools
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from streamden.config import make_config
from streamden.engine import Engine
from tests.nets import random_fastdvdnet

REPO = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Feeder:
    """``python -m tests.live.feeder`` in a child process; ``lines`` collects what it prints."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.live.feeder", *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, name="feeder-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.strip()))

    def wait_line(self, prefix: str, timeout: float = 10.0) -> tuple[float, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for when, line in list(self.lines):
                if line.startswith(prefix):
                    return when, line
            time.sleep(0.02)
        raise AssertionError(f"feeder did not print {prefix!r}; got {self.lines}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(2)


@pytest.fixture
def feeder():
    """Start feeders with ``feeder(*args)``; all are stopped at the end of the test."""
    started: list[Feeder] = []

    def start(*args: str) -> Feeder:
        f = Feeder(*args)
        started.append(f)
        f.wait_line("listening" if args[0] == "tcp" else "sending")
        return f
    yield start
    for f in started:
        f.stop()


@functools.cache
def _network() -> torch.nn.Module:
    """The random-weight FastDVDnet of the live tests, built once (each Engine copies it)."""
    return random_fastdvdnet(seed=0)


def live_engine(*overrides: str) -> Engine:
    """A live engine over the tests' random network with the surveillance preset plus dotted
    ``overrides`` (``"live.slate_after=1.5"``), on the CPU: live reads its settings from it.
    Speed and shapes match the real network; no alignment, as the preset."""
    return Engine(make_config("surveillance", None, list(overrides), door="live", device="cpu"), model=_network(),
                  live=True)


@pytest.fixture(scope="session")
def shared_model() -> Engine:
    """One live engine with the surveillance preset as it ships, shared by the streams of a test."""
    return live_engine()


def wait_threads_gone(before: set[threading.Thread], timeout: float = 10.0) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        left = [t for t in threading.enumerate()
                if t not in before and t.is_alive() and t.name != "feeder-reader"]
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny frames gain nothing from two threads, and on a loaded machine spinning OpenMP
    workers make each network call slower by orders of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
