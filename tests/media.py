"""Small test media generated on the fly with PyAV and OpenCV (no pytest needed here).

Everything stays tiny (at most 256x256 and 16 frames by default) so the whole suite runs
in minutes on two cores. The content moves, so consecutive frames differ.

>>> from tests.media import make_video
>>> path = make_video(tmp_path / "clip.mp4", frames=8, audio="aac")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "synthetic_frame",
    "synthetic_frames",
    "make_video",
    "make_audio_only",
    "make_image_sequence",
    "make_text_file",
    "make_zero_byte_file",
    "make_truncated_copy",
    "has_codec",
    "read_frames",
    "packet_stats",
    "frame_times",
    "make_vfr_video",
    "make_resolution_change_video",
    "make_huge_declared_video",
    "corrupt_copy",
]

# Codecs that cannot take odd frame sizes in 4:2:0: an odd size asks for a 4:4:4 format.
_FOUR_TWO_ZERO = {"yuv420p", "yuvj420p", "yuv420p10le", "nv12"}

_SUBTITLE_LINES = (
    "streamden test subtitle one",
    "streamden test subtitle two",
    "streamden test subtitle three",
)


def has_codec(name: str) -> bool:
    """True when this PyAV build can encode/decode with ``name``.

    >>> has_codec("libx264")  # doctest: +SKIP
    True
    """
    import av

    return name in av.codecs_available


def synthetic_frame(index: int, size: tuple[int, int] = (64, 48), bit_depth: int = 8,
                    pattern: str = "moving", seed: int = 0) -> np.ndarray:
    """One RGB test image ``(H, W, 3)``: uint8 for 8 bits, else uint16 full-scale.

    ``size`` is ``(width, height)``. ``pattern`` is "moving" (a gradient that scrolls plus a
    bright square that travels), "static" (the same image every index) or "noise" (uniform
    random noise, different per index).

    >>> synthetic_frame(0, (8, 6)).shape
    (6, 8, 3)
    """
    width, height = size
    maxval = (1 << 16) - 1 if bit_depth > 8 else 255
    dtype = np.uint16 if bit_depth > 8 else np.uint8
    if pattern == "noise":
        rng = np.random.default_rng(seed * 1000 + index)
        return rng.integers(0, maxval + 1, size=(height, width, 3), dtype=np.int64).astype(dtype)
    shift = 0 if pattern == "static" else index
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = ((x + 3 * shift) % width) / max(width - 1, 1)
    g = ((y + 2 * shift) % height) / max(height - 1, 1)
    b = 0.5 + 0.5 * np.sin((x + y) / 5.0 + shift * 0.7)
    img = np.stack([r, g, b], axis=-1) * 0.8 + 0.1
    # A square that travels across the frame gives motion for alignment tests.
    side = max(2, min(width, height) // 4)
    ox = (4 * shift) % max(width - side, 1)
    oy = (3 * shift) % max(height - side, 1)
    img[oy:oy + side, ox:ox + side, :] = (0.95, 0.9, 0.2)
    return np.clip(np.rint(img * maxval), 0, maxval).astype(dtype)


def synthetic_frames(frames: int = 12, size: tuple[int, int] = (64, 48), bit_depth: int = 8,
                     pattern: str = "moving", seed: int = 0) -> list[np.ndarray]:
    """A list of ``frames`` images from :func:`synthetic_frame`.

    >>> len(synthetic_frames(3, (8, 6)))
    3
    """
    return [synthetic_frame(i, size, bit_depth, pattern, seed) for i in range(frames)]


def _bit_depth_of(pix_fmt: str) -> int:
    import av

    fmt = av.VideoFormat(pix_fmt)
    return max(c.bits for c in fmt.components)


def _write_srt(path: Path, seconds: float) -> Path:
    """An .srt file with a few cues spread over ``seconds``."""
    step = max(seconds / len(_SUBTITLE_LINES), 0.04)

    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    cues = []
    for i, line in enumerate(_SUBTITLE_LINES):
        start, end = i * step, (i + 0.9) * step
        cues.append(f"{i + 1}\n{stamp(start)} --> {stamp(end)}\n{line}\n")
    path.write_text("\n".join(cues), encoding="utf-8")
    return path


def _audio_samples(seconds: float, rate: int, channels: int) -> np.ndarray:
    n = max(1, int(round(seconds * rate)))
    t = np.arange(n) / rate
    tone = 0.2 * np.sin(2 * np.pi * 440.0 * t)
    return np.stack([tone * (1.0 - 0.3 * c) for c in range(channels)]).astype(np.float32)


def _add_audio(container, codec: str, rate: int = 48000, channels: int = 2):
    import av

    name = {"aac": "aac", "opus": "libopus" if has_codec("libopus") else "opus"}.get(codec, codec)
    layout = "stereo" if channels == 2 else "mono"
    stream = container.add_stream(name, rate=rate, layout=layout)
    fmt = "fltp" if name == "aac" else "flt"
    if stream.codec_context.codec.audio_formats:
        names = [f.name for f in stream.codec_context.codec.audio_formats]
        if fmt not in names:
            fmt = names[0]
    stream.format = av.AudioFormat(fmt)
    stream.time_base = Fraction(1, rate)
    return stream


def _encode_audio(container, stream, seconds: float, flush: bool = True) -> None:
    import av

    rate = stream.codec_context.sample_rate
    channels = stream.codec_context.channels
    fmt = stream.codec_context.format.name
    samples = _audio_samples(seconds, rate, channels)
    chunk = stream.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, samples.shape[1], chunk):
        block = samples[:, start:start + chunk]
        if block.shape[1] < chunk and stream.codec_context.frame_size:
            block = np.pad(block, ((0, 0), (0, chunk - block.shape[1])))
        if fmt.endswith("p"):
            arr = np.ascontiguousarray(block)
        else:
            arr = np.ascontiguousarray(block.T.reshape(1, -1))
        if fmt.startswith("s16"):
            arr = (arr * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(arr, format=fmt,
                                           layout=stream.codec_context.layout.name)
        frame.sample_rate = rate
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
        pts += block.shape[1]
        container.mux(stream.encode(frame))
    if flush:
        container.mux(stream.encode(None))


def _add_subtitles(container, path: Path, seconds: float):
    """A subtitle stream: subrip copied from a generated .srt, or mov_text for mp4/mov."""
    import av

    ext = path.suffix.lower()
    srt = _write_srt(path.with_name(path.name + ".tmp.srt"), seconds)
    try:
        if ext in (".mp4", ".m4v", ".mov"):
            # mp4 takes only mov_text: decode the subrip cues to ASS and re-encode them.
            stream = container.add_stream("mov_text")
            stream.time_base = Fraction(1, 1000)
            packets = []
            with av.open(str(srt)) as src:
                sub_in = src.streams.subtitles[0]
                for pkt in src.demux(sub_in):
                    if pkt.size == 0:
                        continue
                    sset = sub_in.codec_context.decode2(pkt)
                    if sset is None:
                        continue
                    if stream.codec_context.subtitle_header is None:
                        stream.codec_context.subtitle_header = sub_in.codec_context.subtitle_header
                    out = stream.codec_context.encode_subtitle(sset)
                    start_ms = sset.pts // 1000  # SubtitleSet.pts is in microseconds
                    out.stream = stream
                    out.time_base = stream.time_base
                    out.pts = out.dts = start_ms + sset.start_display_time
                    out.duration = sset.end_display_time - sset.start_display_time
                    packets.append(out)
            return stream, packets
        packets = []
        with av.open(str(srt)) as src:
            sub_in = src.streams.subtitles[0]
            stream = container.add_stream_from_template(sub_in)
            for pkt in src.demux(sub_in):
                if pkt.size == 0:
                    continue
                pkt.stream = stream
                packets.append(pkt)
        return stream, packets
    finally:
        os.unlink(srt)


def make_video(path, frames: int = 12, size: tuple[int, int] = (64, 48), fps=25,
               codec: str = "libx264", pix_fmt: str = "yuv420p", audio: str | None = None,
               subtitles: bool = False, pattern: str = "moving", crf: int | None = 10,
               color: dict | None = None, seed: int = 0, gop: int | None = None,
               rotation: int | None = None, start_pts: int = 0) -> Path:
    """Write a small video with real, moving content and return its path.

    ``size`` is ``(width, height)``. ``pix_fmt="yuv420p10le"`` (or any >8-bit format) makes a
    high-bit-depth clip. Odd sizes need a format that allows them (``yuv444p``, or
    ``codec="ffv1"``); an odd size with a 4:2:0 format is switched to ``yuv444p`` /
    ``yuv444p10le``. ``audio`` is None, "aac" or "opus" (a 440 Hz tone as long as the video).
    ``subtitles=True`` adds a text subtitle stream (subrip in .mkv, mov_text in .mp4/.mov).
    ``color`` may set ``range`` ("tv"/"pc"), ``matrix``, ``primaries``, ``transfer`` (FFmpeg
    enum ints) on the encoded stream. ``gop`` sets the keyframe interval; ``rotation`` writes
    a display matrix (counter-clockwise degrees, MP4/MOV); ``start_pts`` offsets the frames'
    pts (in frames).

    >>> make_video("clip.mkv", frames=4, codec="ffv1", size=(63, 47))  # doctest: +SKIP
    PosixPath('clip.mkv')
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    if (width % 2 or height % 2) and pix_fmt in _FOUR_TWO_ZERO and codec != "ffv1":
        pix_fmt = "yuv444p10le" if "10" in pix_fmt else "yuv444p"
    bit_depth = _bit_depth_of(pix_fmt)
    rate = Fraction(fps).limit_denominator(100000)
    seconds = float(frames / rate)

    with av.open(str(path), "w") as container:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width = width
        vstream.height = height
        vstream.pix_fmt = pix_fmt
        vstream.time_base = 1 / rate
        vstream.codec_context.time_base = 1 / rate
        opts = {}
        if codec in ("libx264", "libx265") and crf is not None:
            opts["crf"] = str(crf)
            opts["preset"] = "ultrafast"
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        if codec == "libsvtav1":
            opts["preset"] = "12"
        vstream.options = opts
        cc = vstream.codec_context
        if gop is not None:
            cc.gop_size = gop
        if rotation:
            vstream.set_display_rotation(rotation)
        if color:
            if "range" in color:
                cc.color_range = 2 if color["range"] == "pc" else 1
            if "matrix" in color:
                cc.colorspace = color["matrix"]
            if "primaries" in color:
                cc.color_primaries = color["primaries"]
            if "transfer" in color:
                cc.color_trc = color["transfer"]
        astream = _add_audio(container, audio) if audio else None
        sub_packets = []
        if subtitles:
            sstream, sub_packets = _add_subtitles(container, path, seconds)

        src_fmt = "rgb48le" if bit_depth > 8 else "rgb24"
        for i in range(frames):
            img = synthetic_frame(i, size, bit_depth, pattern, seed)
            vf = av.VideoFrame.from_ndarray(img, format=src_fmt)
            reformat_kw = {"format": pix_fmt}
            if color and "matrix" in color:
                reformat_kw["dst_colorspace"] = color["matrix"]
            if color and "range" in color:
                reformat_kw["dst_color_range"] = 2 if color["range"] == "pc" else 1
            vf = vf.reformat(**reformat_kw)
            # The muxer may change the stream's time_base on the header; the encoder's stays.
            vf.pts = i + start_pts
            vf.time_base = 1 / rate
            container.mux(vstream.encode(vf))
        container.mux(vstream.encode(None))
        if astream is not None:
            _encode_audio(container, astream, seconds)
        for pkt in sub_packets:
            container.mux(pkt)
    return path


def make_audio_only(path, seconds: float = 0.5, codec: str = "aac") -> Path:
    """Write a file holding only an audio stream (a tone) and return its path.

    >>> make_audio_only("tone.m4a")  # doctest: +SKIP
    PosixPath('tone.m4a')
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = _add_audio(container, codec)
        _encode_audio(container, stream, seconds)
    return path


def make_image_sequence(folder, frames: int = 8, size: tuple[int, int] = (64, 48),
                        ext: str = "png", bit_depth: int = 8, pattern: str = "moving",
                        name: str = "frame_%05d") -> Path:
    """Write ``frames`` numbered RGB images (8- or 16-bit PNG/TIFF) into ``folder``; return it.

    Names follow ``name % index`` (default ``frame_00000.png``), so ``folder / "frame_%05d.png"``
    is a matching printf pattern. 16-bit images hold full-scale uint16 values.

    >>> make_image_sequence("shots", frames=3, ext="tiff", bit_depth=16)  # doctest: +SKIP
    PosixPath('shots')
    """
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        img = synthetic_frame(i, size, 16 if bit_depth > 8 else 8, pattern)
        p = folder / f"{name % i}.{ext.lstrip('.')}"
        if not cv2.imwrite(str(p), np.ascontiguousarray(img[:, :, ::-1])):
            raise RuntimeError(f"OpenCV could not write {p}")
    return folder


def make_text_file(path, text: str = "this is not a video\n") -> Path:
    """Write a plain text file (e.g. named ``.mp4`` to test "not a media file").

    >>> make_text_file("fake.mp4")  # doctest: +SKIP
    PosixPath('fake.mp4')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text * 20, encoding="utf-8")
    return path


def make_zero_byte_file(path) -> Path:
    """Create an empty file and return its path.

    >>> make_zero_byte_file("empty.mp4")  # doctest: +SKIP
    PosixPath('empty.mp4')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_truncated_copy(src, dst, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst`` (a truncated file).

    >>> make_truncated_copy("clip.mkv", "cut.mkv", 0.6)  # doctest: +SKIP
    PosixPath('cut.mkv')
    """
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: max(1, int(len(data) * keep))])
    return dst


def make_dark_camera_clip(path, frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    """A lossless FFV1 clip of camera noise (iso3200) over a softly textured deep blue (13, 84, 226):
    its red channel is clipped at 0 on about half its pixels, so ``--sigma auto`` gives red its own
    level (:class:`streamden.noise.estimate.NoiseLevel`). ``size`` is ``(width, height)``."""
    import av
    import torch

    from streamden.noise.degrade import CAMERA_LEVELS, camera_noise

    width, height = size
    g = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.avg_pool2d(torch.rand(frames, 1, height, width, generator=g), 9, 1, 4)
    clean = (torch.tensor([13.0, 84.0, 226.0]).view(1, 3, 1, 1) / 255 + (texture - 0.5) * 0.05).clamp(0, 1)
    noisy, _ = camera_noise(clean, CAMERA_LEVELS["iso3200"], seed=1)
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for frame in noisy:
            image = (frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def read_frames(path) -> Sequence[np.ndarray]:
    """Decode every video frame of ``path`` as RGB uint8 (for quick checks in tests).

    >>> len(read_frames("clip.mp4"))  # doctest: +SKIP
    12
    """
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def packet_stats(path) -> dict[str, list[tuple[float | None, float | None, int]]]:
    """Per stream type, the non-empty packets of ``path`` as (pts s, duration s, size), in
    demux order; one pass over the file (seeking back would skip pre-roll packets).

    >>> len(packet_stats("clip.mp4")["audio"])  # doctest: +SKIP
    24
    """
    import av

    out: dict[str, list] = {}
    with av.open(str(path)) as c:
        for pkt in c.demux():
            if not pkt.size:
                continue
            tb = pkt.time_base
            pts = None if pkt.pts is None else float(pkt.pts * tb)
            dur = None if pkt.duration is None else float(pkt.duration * tb)
            out.setdefault(pkt.stream.type, []).append((pts, dur, pkt.size))
    return out


def frame_times(path, stream: int = 0) -> list[float]:
    """Presentation times in seconds of every decoded frame of video stream ``stream``.

    >>> frame_times("clip.mp4")[:3]  # doctest: +SKIP
    [0.0, 0.04, 0.08]
    """
    import av

    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=stream)]


def make_vfr_video(path, times_ms: Sequence[int], size: tuple[int, int] = (64, 48),
                   codec: str = "libx264") -> Path:
    """A video whose frames sit at the given presentation times (milliseconds): variable rate.

    >>> make_vfr_video("vfr.mkv", [0, 40, 80, 200, 240])  # doctest: +SKIP
    PosixPath('vfr.mkv')
    """
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": "10", "preset": "ultrafast", "bframes": "0"} if codec == "libx264" else {}
        for i, t in enumerate(times_ms):
            vf = av.VideoFrame.from_ndarray(synthetic_frame(i, size), format="rgb24").reformat(format="yuv420p")
            vf.pts = int(t)
            vf.time_base = Fraction(1, 1000)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return path


def make_resolution_change_video(path, frames: tuple[int, int] = (6, 6),
                                 sizes: tuple[tuple[int, int], tuple[int, int]] = ((64, 48), (96, 64)),
                                 fps: int = 25) -> Path:
    """An MPEG-TS file whose frame size changes mid-stream: two H.264 parts glued together,
    the second one's timestamps continuing the first's.

    >>> make_resolution_change_video("change.ts")  # doctest: +SKIP
    PosixPath('change.ts')
    """
    path = Path(path)
    first = make_video(path.with_name(path.stem + ".part0.ts"), frames=frames[0], size=sizes[0], fps=fps)
    second = make_video(path.with_name(path.stem + ".part1.ts"), frames=frames[1], size=sizes[1], fps=fps,
                        start_pts=frames[0], seed=1)
    path.write_bytes(first.read_bytes() + second.read_bytes())
    first.unlink()
    second.unlink()
    return path


def make_huge_declared_video(path, side: int = 16000) -> Path:
    """A tiny FFV1 Matroska file whose header declares ``side`` x ``side`` frames (patched
    PixelWidth/PixelHeight elements): what a hostile or broken file looks like to a prober.

    >>> make_huge_declared_video("huge.mkv")  # doctest: +SKIP
    PosixPath('huge.mkv')
    """
    src = make_video(Path(path).with_name("small-" + Path(path).name), frames=2, size=(256, 256), codec="ffv1")
    data = bytearray(src.read_bytes())
    src.unlink()
    for element in (0xB0, 0xBA):  # PixelWidth, PixelHeight; 2-byte values (256 = 0x0100)
        at = data.find(bytes([element, 0x82, 0x01, 0x00]))
        if at < 0:
            raise RuntimeError("Matroska PixelWidth/PixelHeight element not found")
        data[at + 2:at + 4] = int(side).to_bytes(2, "big")
    Path(path).write_bytes(bytes(data))
    return Path(path)


def corrupt_copy(src, dst, seed: int, flips: int = 4, bursts: int = 1, burst_bytes: int = 64,
                 keep_header: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with seeded damage: ``flips`` single-byte XORs and ``bursts``
    runs of ``burst_bytes`` random bytes, all after the first ``keep_header`` bytes.
    The same seed always gives the same file.

    >>> corrupt_copy("clip.mp4", "bad.mp4", seed=3)  # doctest: +SKIP
    PosixPath('bad.mp4')
    """
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    lo = min(keep_header, len(data) - 1)
    for _ in range(flips):
        at = int(rng.integers(lo, len(data)))
        data[at] ^= int(rng.integers(1, 256))
    for _ in range(bursts):
        at = int(rng.integers(lo, max(lo + 1, len(data) - burst_bytes)))
        data[at:at + burst_bytes] = rng.integers(0, 256, burst_bytes, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def rows_close(got, want, tol: float) -> bool:
    """Two lists of equal-length rows (tuples of numbers or None) equal within ``tol`` each
    (``pytest.approx`` no longer compares nested data since pytest 9.2).

    >>> rows_close([(0.0, None, 3)], [(0.0005, None, 3)], 1e-3)
    True
    """
    return len(got) == len(want) and all(
        len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None and abs(x - y) <= tol)
                                 for x, y in zip(a, b))
        for a, b in zip(got, want))
