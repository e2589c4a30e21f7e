"""Make the README's picture of the preview page: `streamden denoise --preview` on the sample
clip, photographed by headless Chromium mid-job.

    python demos/preview_page.py demo demos/preview_page.png

Renders a 640x360, 8-second sample (`streamden sample`) into FOLDER if it is not there,
starts `streamden denoise FOLDER/noisy.mp4 --preview 0` in a child process, waits until a
denoised frame is on the page (3 frames in), and screenshots the page (side by side, with a
1:1 zoom on some text of the scene) at 1000x780 with Debian's `chromium`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

from streamden.sample import write_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the sample clip is (rendered if missing)")
    parser.add_argument("output", type=Path, help="the PNG to write")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or sys.exit("needs Debian's chromium (apt-get install chromium)")
    noisy = args.folder / "noisy.mp4"
    if not noisy.exists():
        write_sample(args.folder, size=(640, 360), seconds=8.0, fps=25, sigma=25.0, overwrite=True)
    with tempfile.TemporaryDirectory() as scratch:
        job = subprocess.Popen([sys.executable, "-m", "streamden", "denoise", str(noisy), "-o",
                                f"{scratch}/out.mp4", "--no-progress", "--preview", "0"],
                               stderr=subprocess.PIPE, text=True)
        try:
            url = next(line.split(" ", 1)[1].strip() for line in job.stderr if line.startswith("preview: "))
            while True:   # a few frames in, so that speed and ETA are known
                with urllib.request.urlopen(url + "stats.json", timeout=30) as response:
                    (stream,) = json.loads(response.read())["streams"]
                if stream["version"] >= 1 and int(dict(stream["counters"])["frames"].split()[0]) >= 3:
                    break
                time.sleep(0.5)
            shot = Path(scratch) / "page.png"
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--hide-scrollbars", f"--user-data-dir={scratch}/profile", "--window-size=1000,780",
                            "--virtual-time-budget=3000", f"--screenshot={shot}", url + "?zoom=470,190"],
                           check=True, capture_output=True, timeout=120)
        finally:
            job.terminate()
            job.wait(60)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        # Noise does not compress: 5 bits per channel make the PNG half as large, and look the same.
        picture = (cv2.imread(str(shot)) >> 3) << 3
        cv2.imwrite(str(args.output), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
