"""A test receiver: FFmpeg in listen mode (an RTMP server) decoding what is pushed to it.

    python -m tests.live.receiver rtmp://127.0.0.1:1935/live/cam

Prints ``decoded N`` when the sender goes away (FFmpeg's RTMP server ends with an I/O
error rather than a clean end of stream; the frames decoded until then count).
"""
from __future__ import annotations

import sys

import av


def main(argv: list[str] | None = None) -> int:
    url = (argv or sys.argv[1:])[0]
    decoded = 0
    try:
        container = av.open(url, format="flv", timeout=(20, 5),
                            options={"listen": "1", "analyzeduration": "300000", "probesize": "32768"})
        for _ in container.decode(video=0):
            decoded += 1
    except (av.FFmpegError, OSError):
        pass
    print(f"decoded {decoded}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
