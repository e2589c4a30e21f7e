"""Image sequences on disk: recognising a spec, listing its files, reading and writing one image.

A sequence spec is a printf pattern (``frames/%05d.png``), a folder (every image inside,
in natural order) or a glob (``shots/*.tif``). Images are RGB; 8-bit files give uint8,
16-bit files give uint16 (full-scale, as stored).
"""
from __future__ import annotations

import glob as _glob
import os
import re
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from .atomic import commit, discard

__all__ = [
    "IMAGE_EXTENSIONS", "is_sequence_spec", "is_image_path", "list_images",
    "read_image", "write_image",
]

#: Extensions (lower case, with the dot) read as still images.
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp")

_PRINTF = re.compile(r"%(0?)(\d*)d")
_GLOB_CHARS = set("*?[")


def is_image_path(path: str | os.PathLike) -> bool:
    """True when ``path`` ends with an image extension.

    >>> is_image_path("shot.TIFF"), is_image_path("clip.mp4")
    (True, False)
    """
    return Path(str(path)).suffix.lower() in IMAGE_EXTENSIONS


def is_sequence_spec(spec: str | os.PathLike) -> bool:
    """True when ``spec`` names an image sequence: a folder, a ``%d`` pattern or a glob.

    >>> is_sequence_spec("frames/%05d.png"), is_sequence_spec("shots/*.tif"), is_sequence_spec("a.mp4")
    (True, True, False)
    """
    text = str(spec)
    if _PRINTF.search(text) or any(c in _GLOB_CHARS for c in text):
        return True
    return os.path.isdir(text)


def _natural_key(path: Path) -> list:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def _list_printf(spec: str) -> list[Path]:
    folder, name = os.path.split(spec)
    folder = folder or "."
    if _PRINTF.search(folder):
        raise InputError(f"{spec}: a %d pattern is only supported in the file name")
    match = _PRINTF.search(name)
    width = match.group(2)
    digits = rf"\d{{{int(width)},}}" if width and match.group(1) else r"\d+"
    regex = re.compile(re.escape(name[:match.start()]) + f"({digits})" + re.escape(name[match.end():]) + r"\Z")
    if not os.path.isdir(folder):
        raise InputError(f"{spec}: directory {folder} does not exist")
    found = []
    for entry in os.listdir(folder):
        m = regex.match(entry)
        if m:
            found.append((int(m.group(1)), Path(folder) / entry))
    return [p for _, p in sorted(found)]


def list_images(spec: str | os.PathLike) -> list[Path]:
    """The image files of a sequence spec, in frame order; raises InputError when none.

    >>> list_images("frames/%05d.png")  # doctest: +SKIP
    [PosixPath('frames/00000.png'), PosixPath('frames/00001.png')]
    """
    text = str(spec)
    if _PRINTF.search(text):
        files = _list_printf(text)
    elif any(c in _GLOB_CHARS for c in text) and not os.path.exists(text):
        files = sorted((Path(p) for p in _glob.glob(text) if os.path.isfile(p)), key=_natural_key)
    elif os.path.isdir(text):
        files = sorted((p for p in Path(text).iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
    elif os.path.isfile(text):
        files = [Path(text)]
    else:
        raise InputError(f"{text}: no such file, folder or image pattern")
    if not files:
        raise InputError(f"{text}: no images match")
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image as ``(H, W, 3)`` RGB, uint8 or uint16; raises InputError if unreadable.

    Grey images are repeated to three channels and alpha is dropped.

    >>> read_image("frames/00000.png").dtype  # doctest: +SKIP
    dtype('uint8')
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    # imdecode from bytes sidesteps OpenCV's trouble with non-ASCII paths on some systems.
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not an image OpenCV can read")
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: unsupported sample type {img.dtype} (need 8- or 16-bit integers)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise InputError(f"{path}: unsupported channel count {img.shape[2]}")
    return np.ascontiguousarray(img)


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``(H, W, 3)`` RGB uint8/uint16 atomically (temporary name, then rename).

    >>> write_image("out/00000.png", np.zeros((4, 4, 3), np.uint16))  # doctest: +SKIP
    PosixPath('out/00000.png')
    """
    import cv2

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    try:
        ok, buf = cv2.imencode(path.suffix, bgr)
        if not ok:
            raise OutputError(f"{path}: OpenCV could not encode this image")
        buf.tofile(str(tmp))
    except OSError as exc:
        discard(tmp)
        raise OutputError(f"{path}: could not write ({exc.strerror})") from None
    except cv2.error as exc:
        discard(tmp)
        raise OutputError(f"{path}: OpenCV could not encode this image ({exc})") from None
    commit(tmp, path)
    return path
