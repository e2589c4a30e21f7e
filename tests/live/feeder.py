"""A test camera: muxes a synthetic clip as MPEG-TS over TCP or UDP at real-time rate.

Runs as its own process so that the live source under test sees a real network peer::

    python -m tests.live.feeder tcp 127.0.0.1:5000 --fps 10 --seconds 4 --stall-at 1 --stall 3

``tcp`` listens and serves one client at a time (a client that goes away is replaced by the
next one, the clock keeps running); ``udp`` sends datagrams to the address. ``--stall-at T
--stall S`` stops sending for S seconds at T seconds (the connection stays open);
``--drop-at T --drop S`` closes the connection (TCP: also stops listening) for S seconds.
Frames are intra-coded H.264 with a frame counter painted in, so any frame decodes on its
own after a reconnect. Prints ``listening`` (TCP) or ``sending`` once ready, ``back T``
(wall-clock seconds) when a stall or drop ends, and ``sent N`` at the end.
"""
from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction

import av
import numpy as np


def frame_image(index: int, size: tuple[int, int]) -> np.ndarray:
    """A moving gradient with some noise: cheap, deterministic per index."""
    width, height = size
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    base = 128 + 60 * np.sin((x + 2 * index) / 7.0) * np.cos(y / 9.0)
    rng = np.random.default_rng(index)
    noisy = base[..., None] + rng.normal(0, 20, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _open_output(proto: str, address: str, fps: int, size: tuple[int, int]):
    if proto == "tcp":
        url = f"tcp://{address}?listen=1&listen_timeout=2000"
    else:
        url = f"udp://{address}?pkt_size=1316"
    # flush_packets: write each frame out at once instead of filling a 32 KiB buffer first.
    container = av.open(url, "w", format="mpegts", options={"flush_packets": "1"})
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "1", "bf": "0"}
    stream.codec_context.time_base = Fraction(1, fps)
    return container, stream


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("proto", choices=["tcp", "udp"])
    p.add_argument("address", help="HOST:PORT")
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--size", default="64x48")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--stall-at", type=float, default=None)
    p.add_argument("--stall", type=float, default=0.0)
    p.add_argument("--drop-at", type=float, default=None)
    p.add_argument("--drop", type=float, default=0.0)
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    total = int(round(args.seconds * args.fps))
    start = time.monotonic()
    sent = 0
    stalled = dropped = started = False
    container = stream = None
    print("listening" if args.proto == "tcp" else "sending", flush=True)
    index = 0
    while index < total:
        due = start + index / args.fps
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t = index / args.fps
        if args.stall_at is not None and not stalled and t >= args.stall_at:
            stalled = True
            time.sleep(args.stall)
            start += args.stall  # the clip's clock pauses with the camera
            print(f"back {time.time():.3f}", flush=True)
            continue
        if args.drop_at is not None and not dropped and t >= args.drop_at:
            dropped = True
            if container is not None:
                _close(container)
                container = stream = None
            time.sleep(args.drop)
            start += args.drop
            print(f"back {time.time():.3f}", flush=True)
            continue
        if container is None:
            try:
                container, stream = _open_output(args.proto, args.address, args.fps, size)
            except (av.FFmpegError, OSError):  # no client within listen_timeout: try again
                continue
        vf = av.VideoFrame.from_ndarray(frame_image(index, size), format="rgb24")
        vf.pts = index
        vf.time_base = Fraction(1, args.fps)
        try:
            for packet in stream.encode(vf):
                container.mux(packet)  # the first mux waits for a TCP client to connect
            sent += 1
            if not started:  # the clip's clock starts with the first client
                started = True
                start = time.monotonic() - index / args.fps
        except (av.FFmpegError, OSError):  # the client went away: wait for the next one
            _close(container)
            container = stream = None
        index += 1
    if container is not None:
        _close(container)
    print(f"sent {sent}", flush=True)
    return 0


def _close(container) -> None:
    try:
        container.close()
    except (av.FFmpegError, OSError):
        pass


if __name__ == "__main__":
    sys.exit(main())
