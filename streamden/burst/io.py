"""Reading a burst (PNG, JPEG, TIFF, camera RAW) and writing the fused photo with its metadata.

Inputs are a list of files, folders, or globs. 8- and 16-bit images are read with OpenCV
as stored (no EXIF rotation, so the carried-over EXIF still describes the pixels). RAW files
(DNG and camera formats) need the optional ``raw`` extra (rawpy, LibRaw): they are
developed to *linear* RGB with the camera's black and white levels and white balance, no
gamma and no auto-brightening, so the noise stays Poisson-Gaussian.

The output is 16-bit PNG or TIFF, or 8-bit JPEG, written atomically (a hidden temporary
name, then a rename). The EXIF block and ICC profile of the reference frame are copied
into PNG (``eXIf``, ``iCCP`` chunks) and JPEG (APP1, APP2 segments) outputs when the
reference is a PNG or JPEG that carries them; TIFF outputs carry pixels only.
"""
from __future__ import annotations

import glob as _glob
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError, OutputError
from ..io.atomic import commit, discard, partial_path
from ..io.sequence import IMAGE_EXTENSIONS, read_image

__all__ = ["RAW_EXTENSIONS", "OUTPUT_EXTENSIONS", "Metadata", "list_burst", "read_frame", "read_burst",
           "read_metadata", "check_output_format", "write_photo"]

RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw", ".raw")
OUTPUT_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_READABLE = tuple(IMAGE_EXTENSIONS) + RAW_EXTENSIONS
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Metadata:
    """What is carried from the reference frame into the output: raw EXIF (TIFF-structured,
    without the ``Exif\\0\\0`` header) and an ICC profile."""

    exif: bytes | None = None
    icc: bytes | None = None


def _natural_key(path: Path) -> list:
    import re
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_burst(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The image files of a burst from files, folders and globs, in the order given.

    A folder contributes its images (and RAW files) in natural order; a glob its matches.
    Raises InputError naming the entry that is missing or matches nothing.

    >>> list_burst(["shots/*.dng"])  # doctest: +SKIP
    [PosixPath('shots/IMG_0001.dng'), PosixPath('shots/IMG_0002.dng')]
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for entry in inputs:
        text = str(entry)
        if os.path.isdir(text):
            found = sorted((p for p in Path(text).iterdir() if p.is_file() and p.suffix.lower() in _READABLE),
                           key=_natural_key)
            if not found:
                raise InputError(f"{text}: folder holds no images")
        elif os.path.exists(text):
            found = [Path(text)]
        elif any(c in text for c in "*?["):
            found = sorted((Path(p) for p in _glob.glob(text) if os.path.isfile(p)), key=_natural_key)
            if not found:
                raise InputError(f"{text}: no images match")
        else:
            raise InputError(f"{text}: no such file or folder")
        files.extend(found)
    return files


def _read_raw(path: Path) -> np.ndarray:
    try:
        import rawpy
    except ImportError:
        raise InputError(f"{path}: reading RAW files needs rawpy; install the extra: "
                         "pip install 'streamden[raw]'") from None
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(gamma=(1, 1), no_auto_bright=True, output_bps=16,
                                  use_camera_wb=True, user_flip=0)
    except Exception as exc:  # LibRaw's errors have no common base worth naming
        raise InputError(f"{path}: not a RAW file LibRaw can read ({exc})") from None
    return rgb.astype(np.float32) / 65535.0


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """One burst frame as ``(H, W, 3)`` float32 in [0, 1]; raises InputError if unreadable.

    >>> read_frame("shots/IMG_0001.dng").shape  # doctest: +SKIP
    (3000, 4000, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in RAW_EXTENSIONS:
        return _read_raw(path)
    image = read_image(path)
    return image.astype(np.float32) / float(np.iinfo(image.dtype).max)


def read_burst(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """All frames ``(N, H, W, 3)`` float32; InputError when sizes differ or fewer than 2.

    >>> read_burst(["a.png", "b.png"]).shape  # doctest: +SKIP
    (2, 480, 640, 3)
    """
    if len(paths) < 2:
        names = ", ".join(str(p) for p in paths) or "no files"
        raise InputError(f"a burst needs at least 2 frames, got {len(paths)} ({names})")
    first = read_frame(paths[0])
    out = np.empty((len(paths), *first.shape), np.float32)
    out[0] = first
    for i, path in enumerate(paths[1:], start=1):
        frame = read_frame(path)
        if frame.shape != first.shape:
            raise InputError(f"{path}: size {frame.shape[1]}x{frame.shape[0]} differs from "
                             f"{first.shape[1]}x{first.shape[0]} of {paths[0]}; a burst needs one size")
        out[i] = frame
    return out


def _jpeg_segments(data: bytes) -> Iterable[tuple[int, bytes]]:
    """``(marker, payload)`` of a JPEG's segments up to the start of scan."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:
            return
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        yield marker, data[pos + 4:pos + 2 + length]
        pos += 2 + length


def _png_chunks(data: bytes) -> Iterable[tuple[bytes, bytes]]:
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def read_metadata(path: str | os.PathLike) -> Metadata:
    """The EXIF block and ICC profile of a JPEG or PNG file (empty for other formats).

    >>> read_metadata("missing.png")
    Metadata(exif=None, icc=None)
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return Metadata()
    exif, icc_parts = None, {}
    try:
        if data[:2] == b"\xff\xd8":
            for marker, payload in _jpeg_segments(data):
                if marker == 0xE1 and payload.startswith(b"Exif\x00\x00") and exif is None:
                    exif = payload[6:]
                elif marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"):
                    icc_parts[payload[12]] = payload[14:]
        elif data.startswith(_PNG_SIGNATURE):
            for kind, payload in _png_chunks(data):
                if kind == b"eXIf":
                    exif = payload
                elif kind == b"iCCP":
                    name_end = payload.index(b"\x00")
                    icc_parts[0] = zlib.decompress(payload[name_end + 2:])
    except (ValueError, IndexError, struct.error, zlib.error):
        return Metadata()        # damaged metadata is dropped, never fatal
    icc = b"".join(icc_parts[k] for k in sorted(icc_parts)) if icc_parts else None
    return Metadata(exif or None, icc)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _with_png_metadata(data: bytes, meta: Metadata) -> bytes:
    extra = b""
    if meta.icc:
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc))
    if meta.exif:
        extra += _png_chunk(b"eXIf", meta.exif)
    ihdr_end = len(_PNG_SIGNATURE) + 25          # IHDR is always first and 13 bytes long
    return data[:ihdr_end] + extra + data[ihdr_end:]


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _with_jpeg_metadata(data: bytes, meta: Metadata) -> bytes:
    extra = b""
    if meta.exif and len(meta.exif) <= 65527:
        extra += _jpeg_segment(0xE1, b"Exif\x00\x00" + meta.exif)
    if meta.icc:
        step = 65519
        parts = [meta.icc[i:i + step] for i in range(0, len(meta.icc), step)]
        for n, part in enumerate(parts, start=1):
            extra += _jpeg_segment(0xE2, b"ICC_PROFILE\x00" + bytes([n, len(parts)]) + part)
    # After SOI and the JFIF APP0 OpenCV writes, before everything else.
    pos = 2
    if data[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:pos] + extra + data[pos:]


def check_output_format(path: str | os.PathLike) -> str:
    """The lower-case extension of an output path; OutputError for a format we cannot write.

    >>> check_output_format("night.TIFF")
    '.tiff'
    """
    ext = Path(path).suffix.lower()
    if ext not in OUTPUT_EXTENSIONS:
        raise OutputError(f"{path}: cannot write {ext or 'files without an extension'}; "
                          f"use one of {', '.join(OUTPUT_EXTENSIONS)}")
    return ext


def write_photo(path: str | os.PathLike, image: np.ndarray, metadata: Metadata = Metadata(),
                quality: int = 95) -> tuple[str, ...]:
    """Write ``(H, W, 3)`` RGB (16-bit for PNG/TIFF, 8-bit for JPEG) atomically.

    ``image`` is float in [0, 1], uint8 or uint16. Returns which metadata was carried over
    (``"exif"``, ``"icc"``).

    >>> write_photo("night.png", np.zeros((4, 4, 3), np.float32))  # doctest: +SKIP
    ()
    """
    import cv2

    from ..io.pixels import to_rgb_array

    path = Path(path)
    ext = check_output_format(path)
    jpeg = ext in (".jpg", ".jpeg")
    pixels = to_rgb_array(image, 8 if jpeg else 16)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)] if jpeg else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(pixels[:, :, ::-1]), params)
    if not ok:
        raise OutputError(f"{path}: OpenCV could not encode this image")
    data = buf.tobytes()
    carried: tuple[str, ...] = ()
    if ext != ".tif" and ext != ".tiff" and (metadata.exif or metadata.icc):
        data = _with_jpeg_metadata(data, metadata) if jpeg else _with_png_metadata(data, metadata)
        carried = tuple(name for name in ("exif", "icc") if getattr(metadata, name))
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        discard(tmp)
        raise OutputError(f"{path}: could not write ({exc.strerror})") from None
    commit(tmp, path)
    return carried
