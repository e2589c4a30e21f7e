"""Synthetic night bursts for the burst tests: real photos from the shared corpus, or a
generated scene when only structure (not quality) matters."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamden.burst.synth import NightBurst, make_night_burst

IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train" / "images"


def photo_crop(name: str, size: int = 192) -> np.ndarray:
    """A centre crop ``(size, size, 3)`` uint8 RGB of a corpus photo; skips the test if absent."""
    path = IMAGES / name
    if not path.is_file():
        pytest.skip(f"shared data not found: {path} (the corpus lives in ../shared/data)")
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def scene(size: int = 128, seed: int = 0) -> np.ndarray:
    """A generated textured scene ``(size, size, 3)`` uint8: blurred blobs and edges."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((size // 8, size // 8, 3)).astype(np.float32), (size, size),
                      interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    img = np.clip(0.15 + 0.6 * base + 0.5 * (fine - fine.mean()), 0, 1)
    return (img * 255).astype(np.uint8)


def burst_of(image: np.ndarray, frames: int = 8, sigma: float = 30.0, seed: int = 0) -> NightBurst:
    """A hand-held night burst of ``image`` with one moving object."""
    return make_night_burst(image, frames, sigma=sigma, seed=seed)


def write_burst(folder: Path, burst: NightBurst, ext: str = ".png") -> list[Path]:
    """Write the noisy frames as 16-bit PNG/TIFF (8-bit JPEG) files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(burst.noisy):
        if ext in (".jpg", ".jpeg"):
            pixels = (frame * 255).round().astype(np.uint8)
        else:
            pixels = (frame * 65535).round().astype(np.uint16)
        path = folder / f"shot_{i:02d}{ext}"
        cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths
