"""What a media file holds: container, streams, sizes, rates, durations, bit depths.

:func:`probe` opens a file (or an image sequence) with PyAV without decoding it and turns
every problem into one :class:`~streamden.errors.InputError` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import InputError
from .frame import ColorInfo

__all__ = ["StreamInfo", "MediaInfo", "probe", "format_info", "open_input", "bit_depth_of",
           "color_of"]


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a container, in FFmpeg's vocabulary.

    ``index`` is the container-wide stream index; ``type_index`` its position among the
    streams of the same type (``--stream N`` counts video streams). ``fps`` is the average
    frame rate; ``frame_count`` is what the container declares (None when it does not).

    >>> StreamInfo(index=0, type="video", codec="h264", width=64, height=48).type
    'video'
    """

    index: int
    type: str
    codec: str
    type_index: int = 0
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    bit_depth: int | None = None
    fps: Fraction | None = None
    time_base: Fraction | None = None
    frame_count: int | None = None
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    language: str | None = None
    color: ColorInfo | None = None

    @property
    def estimated_frame_count(self) -> int | None:
        """The declared frame count, else duration x frame rate (for progress bars), else None.

        >>> StreamInfo(0, "video", "h264", fps=Fraction(25), duration=2.0).estimated_frame_count
        50
        """
        if self.frame_count:
            return self.frame_count
        if self.duration and self.fps:
            return max(1, round(self.duration * self.fps))
        return None


@dataclass(frozen=True)
class MediaInfo:
    """A probed media file (or image sequence) and its streams.

    >>> info = probe("clip.mp4")  # doctest: +SKIP
    >>> info.video.width, info.video.fps  # doctest: +SKIP
    (64, Fraction(25, 1))
    """

    path: str
    format: str
    duration: float | None
    streams: list[StreamInfo] = field(default_factory=list)
    bit_rate: int | None = None

    def of_type(self, kind: str) -> list[StreamInfo]:
        """The streams of one type ("video", "audio", "subtitle", ...), in order.

        >>> MediaInfo("x", "mp4", None).of_type("audio")
        []
        """
        return [s for s in self.streams if s.type == kind]

    @property
    def video_streams(self) -> list[StreamInfo]:
        """The video streams, in order."""
        return self.of_type("video")

    @property
    def audio_streams(self) -> list[StreamInfo]:
        """The audio streams, in order."""
        return self.of_type("audio")

    @property
    def subtitle_streams(self) -> list[StreamInfo]:
        """The subtitle streams, in order."""
        return self.of_type("subtitle")

    @property
    def video(self) -> StreamInfo | None:
        """The first video stream, or None."""
        streams = self.video_streams
        return streams[0] if streams else None


def bit_depth_of(pix_fmt: str | None) -> int:
    """Bits per component of an FFmpeg pixel format (8 when unknown).

    >>> bit_depth_of("yuv420p10le"), bit_depth_of("yuv420p"), bit_depth_of(None)
    (10, 8, 8)
    """
    if not pix_fmt:
        return 8
    import av

    try:
        fmt = av.VideoFormat(pix_fmt)
        return max((c.bits for c in fmt.components), default=8) or 8
    except (ValueError, av.FFmpegError):
        return 8


def color_of(obj) -> ColorInfo:
    """ColorInfo from anything with FFmpeg's colour fields (a codec context or a frame).

    Unspecified or unknown range counts as "tv" (limited), FFmpeg's default for YUV.

    >>> color_of(object())
    ColorInfo(range='tv', matrix=2, primaries=2, transfer=2)
    """
    rng = int(getattr(obj, "color_range", 0) or 0)
    pix = getattr(getattr(obj, "format", None), "name", None) or getattr(obj, "pix_fmt", None) or ""
    full = rng == 2 or str(pix).startswith("yuvj")

    def num(name: str) -> int:
        value = getattr(obj, name, None)
        try:
            value = int(value)
        except (TypeError, ValueError):
            return 2
        return value if value >= 0 else 2

    return ColorInfo(range="pc" if full else "tv", matrix=num("colorspace"),
                     primaries=num("color_primaries"), transfer=num("color_trc"))


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a media file")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def open_input(path: str | os.PathLike, **kwargs):
    """Open ``path`` with PyAV for reading, turning every failure into one InputError.

    >>> with open_input("clip.mp4") as container:  # doctest: +SKIP
    ...     container.streams.video[0].codec_context.name
    'h264'
    """
    import av

    path = str(path)
    _check_file(path)
    kwargs.setdefault("metadata_errors", "replace")  # damaged tags must not stop the open
    try:
        return av.open(path, "r", **kwargs)
    except av.error.InvalidDataError:
        raise InputError(f"{path}: not a media file FFmpeg can read (or the data is corrupt)") from None
    except av.error.PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except av.FFmpegError as exc:
        raise InputError(f"{path}: cannot open as media ({_ffmpeg_reason(exc)})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from None
    except (ValueError, IndexError) as exc:  # PyAV on nonsense headers
        raise InputError(f"{path}: cannot open as media ({type(exc).__name__}: {exc})") from None


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(";")[0].strip()


def _frac(value) -> Fraction | None:
    if value is None:
        return None
    try:
        value = Fraction(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _stream_info(stream, type_index: int) -> StreamInfo:
    cc = stream.codec_context
    kind = stream.type
    time_base = _frac(stream.time_base)
    duration = None
    if stream.duration is not None and time_base is not None and stream.duration > 0:
        duration = float(stream.duration * time_base)
    language = (stream.metadata or {}).get("language")
    frames = int(stream.frames or 0) or None
    if frames is None:
        tag = (stream.metadata or {}).get("NUMBER_OF_FRAMES") or (stream.metadata or {}).get(
            "NUMBER_OF_FRAMES-eng")
        if tag and str(tag).isdigit():
            frames = int(tag)
    # The canonical name ("av1", "subrip") rather than the decoder's ("libdav1d", "srt").
    codec = "unknown"
    if cc is not None and cc.codec is not None:
        codec = getattr(cc.codec, "canonical_name", None) or cc.name or codec
    common = dict(index=stream.index, type=kind, codec=codec, type_index=type_index,
                  time_base=time_base, duration=duration, language=language)
    if kind == "video":
        if cc is None:  # a damaged header can leave a video stream without any codec
            return StreamInfo(**common)
        pix_fmt = cc.format.name if cc.format is not None else None
        fps = _frac(stream.average_rate) or _frac(stream.guessed_rate) or _frac(stream.base_rate)
        return StreamInfo(**common, width=cc.width or None, height=cc.height or None,
                          pix_fmt=pix_fmt, bit_depth=bit_depth_of(pix_fmt), fps=fps,
                          frame_count=frames, color=color_of(cc))
    if kind == "audio" and cc is not None:
        channels = getattr(cc, "channels", None)
        return StreamInfo(**common, sample_rate=cc.sample_rate or None, channels=channels or None,
                          frame_count=frames)
    return StreamInfo(**common)


def _probe_sequence(spec: str) -> MediaInfo:
    from .sequence import list_images, read_image

    files = list_images(spec)
    first = read_image(files[0])
    height, width = first.shape[:2]
    depth = 16 if first.dtype.itemsize == 2 else 8
    stream = StreamInfo(index=0, type="video", codec=files[0].suffix.lstrip(".").lower(),
                        width=width, height=height, pix_fmt="rgb48le" if depth > 8 else "rgb24",
                        bit_depth=depth, frame_count=len(files))
    return MediaInfo(path=spec, format="image_sequence", duration=None, streams=[stream])


def probe(path: str | os.PathLike, stream: int | None = None, *,
          require_video: bool = True) -> MediaInfo:
    """Describe a media file (or an image sequence spec) without decoding it.

    ``stream`` (counting video streams from 0, like ``--stream N``) must exist when given.
    Raises :class:`InputError` naming the file for a missing or empty file, something that
    is not media, a file without a video stream (unless ``require_video`` is false), or an
    absent ``stream``.

    >>> info = probe("clip.mp4")  # doctest: +SKIP
    >>> [s.type for s in info.streams]  # doctest: +SKIP
    ['video', 'audio']
    """
    from .sequence import is_sequence_spec

    path = str(path)
    if is_sequence_spec(path):
        info = _probe_sequence(path)
    else:
        with open_input(path) as container:
            counts: dict[str, int] = {}
            streams = []
            for s in container.streams:
                n = counts.get(s.type, 0)
                counts[s.type] = n + 1
                streams.append(_stream_info(s, n))
            duration = container.duration / 1_000_000 if container.duration else None
            if duration is None:
                durations = [s.duration for s in streams if s.duration]
                duration = max(durations) if durations else None
            info = MediaInfo(path=path, format=container.format.name, duration=duration,
                             streams=streams, bit_rate=container.bit_rate or None)
    videos = info.video_streams
    if require_video and not videos:
        kinds = ", ".join(f"{s.type} ({s.codec})" for s in info.streams) or "no streams at all"
        raise InputError(f"{path}: no video stream (it holds {kinds})")
    if stream is not None and not 0 <= stream < len(videos):
        raise InputError(f"{path}: no video stream #{stream} (it has {len(videos)} video "
                         f"stream{'s' if len(videos) != 1 else ''}, numbered from 0)")
    if require_video:
        chosen = videos[stream or 0]
        if not chosen.width or not chosen.height:
            raise InputError(f"{path}: video stream #{stream or 0} has no frame size "
                             f"(codec {chosen.codec}); the file may be corrupt")
    return info


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, sec = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{sec:06.3f}"


def _fmt_fps(fps: Fraction | None) -> str:
    if fps is None:
        return "? fps"
    if fps.denominator == 1:
        return f"{fps.numerator} fps"
    return f"{float(fps):.3f} fps ({fps.numerator}/{fps.denominator})"


_RANGE = {"tv": "limited", "pc": "full"}


def format_info(info: MediaInfo) -> str:
    """Human-readable text for ``streamden info``: the container, then one line per stream.

    >>> print(format_info(MediaInfo("a.mkv", "matroska,webm", 1.5,
    ...     [StreamInfo(0, "video", "h264", width=64, height=48, pix_fmt="yuv420p",
    ...                 bit_depth=8, fps=Fraction(25))])))
    a.mkv
      container: matroska,webm, duration 0:00:01.500
      #0 video: h264 64x48 yuv420p 8-bit 25 fps
    """
    lines = [info.path]
    head = f"  container: {info.format}, duration {_fmt_duration(info.duration)}"
    if info.bit_rate:
        head += f", {info.bit_rate / 1000:.0f} kb/s"
    lines.append(head)
    for s in info.streams:
        parts = [f"  #{s.index} {s.type}: {s.codec}"]
        if s.type == "video":
            parts.append(f"{s.width}x{s.height}")
            if s.pix_fmt:
                parts.append(s.pix_fmt)
            if s.bit_depth:
                parts.append(f"{s.bit_depth}-bit")
            parts.append(_fmt_fps(s.fps))
            if s.frame_count:
                parts.append(f"{s.frame_count} frames")
            if s.color is not None and (s.color.range == "pc" or s.color.matrix != 2
                                        or s.color.primaries != 2 or s.color.transfer != 2):
                parts.append(f"[{_RANGE[s.color.range]} range, matrix {s.color.matrix}, "
                             f"primaries {s.color.primaries}, transfer {s.color.transfer}]")
        elif s.type == "audio":
            if s.sample_rate:
                parts.append(f"{s.sample_rate} Hz")
            if s.channels:
                parts.append(f"{s.channels} ch")
        if s.language and s.language != "und":
            parts.append(f"({s.language})")
        lines.append(" ".join(parts))
    return "\n".join(lines)
