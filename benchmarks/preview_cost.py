"""CPU time the preview spends per still (input and output side, scaled and JPEG-encoded), by frame size.

    python benchmarks/preview_cost.py [--sizes 640x360,1280x720,1920x1080,3840x2160] [--stills 30]

Runs :meth:`streamden.preview.feed.JpegEncoder.encode_pending` on a blurred random frame
(JPEG cost depends on content; blur makes it camera-like) at the default preview width
(960 px per side) and prints the process CPU time per still (OpenCV's worker threads
included) and what the default 5 stills a second cost as a share of one core.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from streamden.preview.feed import JpegEncoder, StreamFeed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080,3840x2160")
    parser.add_argument("--stills", type=int, default=30)
    args = parser.parse_args()
    print("size        cpu ms/still   at 5 stills/s (% of one core)")
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.split("x"))
        noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        frame = cv2.GaussianBlur(noise, (0, 0), 3)
        feed = StreamFeed("bench")
        encoder = JpegEncoder([feed])
        feed.offer(frame, frame)
        encoder.encode_pending()   # warm-up
        start = time.process_time()
        for _ in range(args.stills):
            feed.offer(frame, frame)
            encoder.encode_pending()
        per_still = (time.process_time() - start) / args.stills
        print(f"{text:<11} {1000 * per_still:12.1f}   {100 * 5 * per_still:8.1f}")


if __name__ == "__main__":
    main()
