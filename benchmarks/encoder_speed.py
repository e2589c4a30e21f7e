"""Does the CPU encoder bound end-to-end speed? libx264 presets through streamden's own sink.

Renders noise-free frames (``streamden.sample.render_scene``: a shaky pan over sharp text,
stripes and a moving ball) at each size, or takes the first frames of ``--clip``, and encodes
them with :class:`streamden.io.VideoFileSink` (RGB->YUV conversion plus libx264, as in a
denoise run) at crf 18 with each x264 preset and each ``--threads`` value (0 = libx264's
own choice). Reports per size, preset and thread count: encode fps, bitrate in Mbit/s at
25 fps (video packets only), and PSNR of the decoded file against the input frames; per
size also the software decode fps (:class:`streamden.io.VideoFileSource` to RGB, of the
``medium`` file) and the fps of the sink's RGB->YUV conversion alone (one thread). Writes a
markdown table to ``--out`` and prints it, with the CPU, core count and PyAV/FFmpeg
versions in the header.

    python benchmarks/encoder_speed.py --sizes 540p,1080p --frames 60 --threads 0 --out encoder.md
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from streamden.io import VideoFileSink, VideoFileSource, open_source
from streamden.io.frame import ColorInfo, Frame
from streamden.metrics import psnr

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080),
         "1440p": (2560, 1440), "2160p": (3840, 2160)}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
FPS = Fraction(25)


def cpu_model() -> str:
    """The CPU's model name (and family/model numbers, which tell the generation)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.processor() or "unknown CPU")
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def input_frames(size: tuple[int, int], count: int, clip: str | None) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames: the first ``count`` of ``clip`` (a video or an image
    folder) scaled to ``size``, or rendered."""
    if clip is None:
        from streamden.sample import render_scene

        return render_scene(count, size)
    import cv2

    frames = []
    for frame in open_source(clip).generate():
        image = frame.image if frame.image.dtype == np.uint8 else (frame.image >> 8).astype(np.uint8)
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        if len(frames) == count:
            break
    return np.stack(frames)


def encode(frames: np.ndarray, path: Path, preset: str, crf: int, threads: int) -> tuple[float, float]:
    """Encode with streamden's sink; returns wall seconds and CPU seconds (all threads), open
    to finalised file. CPU seconds give fps per core, which other load on the machine
    disturbs far less than the wall clock."""
    height, width = frames.shape[1:3]
    started, cpu_started = time.perf_counter(), time.process_time()
    with VideoFileSink(path, fps=FPS, width=width, height=height, codec="h264", crf=crf,
                       preset=preset, threads=threads, overwrite=True) as sink:
        for i, image in enumerate(frames):
            sink.process(Frame(image=image, pts=i, time_base=1 / FPS, index=i))
    return time.perf_counter() - started, time.process_time() - cpu_started


def video_bits(path: Path) -> int:
    """Bits of the video packets of ``path`` (container overhead left out)."""
    import av

    with av.open(str(path)) as container:
        return 8 * sum(p.size for p in container.demux(video=0) if p.size)


def decode(path: Path) -> tuple[np.ndarray, float]:
    """All frames of ``path`` as RGB uint8, and the seconds it took."""
    started = time.perf_counter()
    frames = [f.image for f in VideoFileSource(path).generate()]
    return np.stack(frames), time.perf_counter() - started


def to_yuv(frames: np.ndarray) -> tuple[float, float]:
    """The sink's RGB->YUV 4:2:0 conversion alone: its fps (one thread), and the PSNR (dB) of
    converting back without encoding, the ceiling for any crf (4:2:0 halves the chroma)."""
    from av.video.reformatter import VideoReformatter

    from streamden.io.pixels import rgb_to_video_frame, video_frame_to_rgb

    reformatter, color = VideoReformatter(), ColorInfo()
    started = time.perf_counter()
    converted = [rgb_to_video_frame(reformatter, image, "yuv420p", color) for image in frames]
    fps = len(frames) / (time.perf_counter() - started)
    back = np.stack([video_frame_to_rgb(reformatter, vf, deep=False) for vf in converted])
    return fps, frames_psnr(frames, back)


def frames_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB) over frames of two uint8 stacks."""
    scores = [float(psnr(torch.from_numpy(x).float() / 255, torch.from_numpy(y).float() / 255))
              for x, y in zip(a, b)]
    return float(np.mean(scores))


def header(args: argparse.Namespace, content: str) -> list[str]:
    import av

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"CPU: {cpu_model()}, {cores} cores available ({os.cpu_count()} online); "
        f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info} (libavcodec "
        f"{'.'.join(map(str, av.library_versions['libavcodec']))}), libx264 through "
        f"`streamden.io.VideoFileSink` (RGB->yuv420p + encode), crf {args.crf}, 8 bit.",
        f"Content: {content}; {args.frames} frames per run; bitrate = video packets at 25 fps; "
        f"PSNR = decoded file against the input frames (RGB, mean over frames).",
        f"Command: `python benchmarks/encoder_speed.py {' '.join(sys.argv[1:])}`",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="540p,1080p", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", default="0", help="comma-separated encoder thread counts (0 = auto)")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--clip", help="encode the first frames of this video instead of rendered ones")
    parser.add_argument("--out", help="write the markdown here too")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; use {', '.join(SIZES)}")
    threads = [int(t) for t in args.threads.split(",")]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    content = (f"first frames of {Path(args.clip).name}, scaled" if args.clip else
               "`streamden.sample.render_scene` (noise-free synthetic pan: sharp text, stripes, a ball)")

    rows, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in sizes:
            size = SIZES[size_name]
            frames = input_frames(size, args.frames, args.clip)
            decode_fps = None
            for n in threads:
                for preset in presets:
                    path = Path(tmp) / f"{size_name}-{preset}-{n}.mp4"
                    seconds, cpu_seconds = encode(frames, path, preset, args.crf, n)
                    mbps = video_bits(path) / (len(frames) / float(FPS)) / 1e6
                    decoded, decode_seconds = decode(path)
                    if preset == "medium" or decode_fps is None:
                        decode_fps = len(decoded) / decode_seconds
                    quality = frames_psnr(frames, decoded)
                    row = (size_name, preset, n, len(frames) / seconds, len(frames) / cpu_seconds,
                           mbps, quality)
                    rows.append(row)
                    print("  " + " | ".join(str(round(v, 2)) if isinstance(v, float) else str(v)
                                            for v in row), file=sys.stderr, flush=True)
                    path.unlink()
            summary.append((size_name, decode_fps, *to_yuv(frames[:min(len(frames), 30)])))

    lines = header(args, content)
    lines += ["| size | preset | threads | encode fps | fps per core (frames / CPU s) | Mbit/s @25 fps "
              "| PSNR (dB) |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {s} | {p} | {'auto' if n == 0 else n} | {fps:.1f} | {per_core:.1f} | {mbps:.2f} | {q:.2f} |"
              for s, p, n, fps, per_core, mbps, q in rows]
    lines += ["", "| size | software decode fps (H.264 crf 18 medium -> RGB) | RGB->YUV fps (sink's "
              "conversion alone, 1 thread) | PSNR of RGB->YUV 4:2:0->RGB alone (dB, the ceiling) |",
              "|---|---:|---:|---:|"]
    lines += [f"| {s} | {d:.1f} | {c:.1f} | {q:.2f} |" for s, d, c, q in summary]
    load = os.getloadavg()
    lines += ["", f"Load average at the end: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min); wall-clock "
                  f"fps are only clean when it stayed below the core count."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
