"""A synthetic sample clip: a hand-held camera pan over a detailed scene, clean and noisy.

The project renders its own sample so the README's first command needs no download and
ships no third-party footage. The scene has fine texture, edges, text and a moving object,
so denoising quality and ghosting are both visible.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import ConfigError, OutputError
from .noise.synth import noisy_8bit


def _canvas(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for c in range(3):  # smooth colour fields plus a few fine gratings
        for _ in range(4):
            fx, fy = rng.uniform(-0.05, 0.05, 2)
            image[..., c] += rng.uniform(0.05, 0.2) * np.sin(fx * xx + fy * yy + rng.uniform(0, 6.3))
    image += 0.5
    stripes = (np.sin(xx * 0.9) * 0.12)[..., None]  # a fine texture patch
    region = (slice(height // 3, height // 3 + height // 5), slice(width // 4, width // 4 + width // 4))
    image[region] += stripes[region]
    image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    for _ in range(40):  # shapes with hard edges
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(4, 40)), colour, -1, cv2.LINE_AA)
        else:
            size = rng.integers(6, 60, 2)
            cv2.rectangle(image, centre, (centre[0] + int(size[0]), centre[1] + int(size[1])), colour, -1)
    for i in range(12):  # text: thin strokes the denoiser must keep
        # on a small canvas the text may run off the edge; max() only keeps the bounds valid
        org = (int(rng.integers(0, max(1, width - 120))), int(rng.integers(20, max(21, height))))
        cv2.putText(image, f"streamden {i:02d}", org, cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.4, 1.0)),
                    (12, 12, 12) if i % 2 else (242, 242, 230), 1, cv2.LINE_AA)
    return image.astype(np.float32) / 255


def render_scene(frames: int = 50, size: tuple[int, int] = (320, 180), seed: int = 0) -> np.ndarray:
    """Render ``(T, H, W, 3)`` uint8 RGB clean frames of a slow, shaky pan with a moving ball.

    >>> render_scene(3, (64, 48)).shape
    (3, 48, 64, 3)
    """
    width, height = size
    rng = np.random.default_rng(seed)
    canvas = _canvas(width * 2, height * 2, rng)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        # sub-pixel pan plus hand-held shake
        x = width * 0.3 + t * 1.37 + 2.0 * np.sin(t * 0.7)
        y = height * 0.3 + t * 0.41 + 1.5 * np.cos(t * 0.9)
        m = np.float32([[1, 0, -x], [0, 1, -y]])
        frame = cv2.warpAffine(canvas, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        cx = int(width * (0.2 + 0.6 * t / max(frames - 1, 1)))
        cy = int(height * (0.5 + 0.25 * np.sin(t * 0.3)))
        cv2.circle(frame, (cx, cy), max(4, height // 12), (0.9, 0.3, 0.1), -1, cv2.LINE_AA)
        out[t] = np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)
    return out


def add_gaussian_noise(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """uint8 frames plus white Gaussian noise (0-255 scale), clipped and rounded to 8 bits.

    The numpy face of :func:`streamden.noise.synth.noisy_8bit`, which eval uses too.

    >>> add_gaussian_noise(np.full((1, 2, 2, 3), 128, np.uint8), 0.0).max()
    np.uint8(128)
    """
    clean = torch.from_numpy(frames).float() / 255.0
    noisy = noisy_8bit(clean, sigma, torch.Generator().manual_seed(seed))
    return (noisy * 255.0).round().to(torch.uint8).numpy()


def write_clip(path: str | Path, frames: np.ndarray, fps: int = 25, crf: int = 10, audio: bool = True,
               pix_fmt: str = "yuv444p") -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB as H.264 (+ a quiet AAC tone) with PyAV.

    A low CRF and full-resolution chroma (4:4:4) keep the noise in the file: the denoiser
    should see it, not the encoder (4:2:0 would average the chroma noise away and leave
    about two thirds of the sigma).
    """
    import av  # lazily: the GPU machine renders scenes without PyAV
    from av.video.reformatter import VideoReformatter

    from .io.frame import ColorInfo
    from .io.pixels import rgb_to_video_frame

    path = Path(path)
    reformatter = VideoReformatter()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "medium"})
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = pix_fmt
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=48000)
            sound.layout = "mono"
        for image in frames:
            for packet in video.encode(rgb_to_video_frame(reformatter, image, pix_fmt, ColorInfo())):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = int(48000 * len(frames) / fps)
            t = np.arange(samples, dtype=np.float32) / 48000
            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start:start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = 48000
                frame.pts = start
                frame.time_base = Fraction(1, 48000)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


def write_sample(folder: str | Path, size: tuple[int, int] = (320, 180), seconds: float = 2.0, fps: int = 25,
                 sigma: float = 25.0, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write ``clean.mp4`` and ``noisy.mp4`` (sigma on the 0-255 scale) into ``folder``.

    >>> write_sample("/tmp/streamden-sample", size=(64, 48), seconds=0.2, overwrite=True)  # doctest: +SKIP
    """
    width, height = size
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ConfigError(f"sample size must be even and at least 16x16 (H.264 4:2:0), got {width}x{height}")
    if not seconds > 0:
        raise ConfigError(f"sample seconds must be positive, got {seconds}")
    if not fps > 0:
        raise ConfigError(f"sample fps must be positive, got {fps}")
    if not 0 <= sigma <= 255:
        raise ConfigError(f"sample sigma must lie in [0, 255] (0-255 scale), got {sigma}")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    paths = [folder / "clean.mp4", folder / "noisy.mp4"]
    for path in paths:
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: exists; pass --overwrite to replace it")
    clean = render_scene(max(1, round(seconds * fps)), size, seed)
    write_clip(paths[0], clean, fps)
    write_clip(paths[1], add_gaussian_noise(clean, sigma, seed), fps)
    return paths
