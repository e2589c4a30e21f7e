"""Sources: decode a video file with PyAV, or read an image sequence, into :class:`Frame` records.

Pixel convention (the sinks follow the same one; see :mod:`streamden.io.pixels`):
``Frame.image`` is ``(H, W, 3)`` RGB; uint8 for 8-bit sources; **uint16 full-scale** for
sources above 8 bits, i.e. a 10-bit value ``v`` arrives as about ``v * 65535 / 1023`` (what
FFmpeg's 16-bit RGB conversion and a 16-bit PNG/TIFF both give), so ``image / 65535`` is in
[0, 1] whatever the bit depth. ``Frame.bit_depth`` still tells the source's real depth.
"""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..graph.node import SourceNode
from .frame import ColorInfo, Frame
from .pixels import video_frame_to_rgb
from .probe import MediaInfo, color_of, open_input, probe

__all__ = ["VideoFileSource", "ImageSequenceSource", "open_source"]

log = logging.getLogger(__name__)


def _fmt_time(seconds: float | None) -> str:
    return "unknown time" if seconds is None else f"{seconds:.3f} s"


class VideoFileSource(SourceNode):
    """Decode one video stream of a media file into :class:`Frame` records.

    ``stream`` counts video streams from 0 (None = the first). Everything below is known
    right after construction (from probing, before any decoding): ``path``, ``width``,
    ``height``, ``fps`` (average rate, a Fraction), ``time_base``, ``bit_depth``, ``color``
    (a :class:`ColorInfo`), ``frame_count`` (declared by the container, or None) and
    ``info`` (the whole :class:`MediaInfo`).

    Frames carry the container's ``pts`` and the stream's ``time_base`` untouched; a frame
    the container gave no pts gets a best-effort one (its dts, else the previous pts plus
    one frame). Images are uint8 for 8-bit sources and full-scale uint16 above (see the
    module docstring). A decode error raises :class:`InputError` naming the file and the
    position; ``strict=True`` (the default) also treats frames the decoder flags as corrupt
    as errors.

    >>> src = VideoFileSource("clip.mp4")  # doctest: +SKIP
    >>> src.open(); frames = list(src.generate()); src.close()  # doctest: +SKIP
    >>> frames[0].image.shape, frames[0].pts, src.fps  # doctest: +SKIP
    ((48, 64, 3), 0, Fraction(25, 1))
    """

    def __init__(self, path: str | os.PathLike, stream: int | None = None, *,
                 strict: bool = True, threads: int = 0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.path = str(path)
        self.stream_number = 0 if stream is None else int(stream)
        self.strict = strict
        self.threads = threads
        self.info: MediaInfo = probe(self.path, stream)
        s = self.info.video_streams[self.stream_number]
        self.stream_index: int = s.index
        self.width: int = int(s.width)
        self.height: int = int(s.height)
        self.fps: Fraction = s.fps or Fraction(25)
        self.time_base: Fraction = s.time_base or Fraction(1, 90000)
        self.bit_depth: int = s.bit_depth or 8
        self.color: ColorInfo = s.color or ColorInfo()
        self.frame_count: int | None = s.frame_count
        self.estimated_frame_count: int | None = s.estimated_frame_count  # for progress bars
        self.pix_fmt: str | None = s.pix_fmt
        self._container = None
        self._started = False

    def open(self) -> None:
        """Open the file for decoding (called by the runner; generate() opens lazily too)."""
        if self._container is None:
            self._container = open_input(self.path)

    def close(self) -> None:
        """Close the file; safe to call twice or without open()."""
        container, self._container = self._container, None
        self._started = False
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken input must not hide the real error
                log.debug("closing %s failed", self.path, exc_info=True)

    def _error(self, problem: str, index: int, last_time: float | None) -> InputError:
        where = (f"at frame {index}" if index == 0 or last_time is None
                 else f"at frame {index} (after {_fmt_time(last_time)})")
        return InputError(f"{self.path}: {problem} {where} of video stream #{self.stream_number}")

    def generate(self) -> Iterator[Frame]:
        """Yield every frame of the stream in presentation order.

        >>> next(VideoFileSource("clip.mp4").generate()).index  # doctest: +SKIP
        0
        """
        import av
        from av.video.reformatter import VideoReformatter

        if self._started:  # a second pass decodes from the start again
            self.close()
        self.open()
        self._started = True
        container = self._container
        stream = container.streams.get(video=self.stream_number)[0]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.thread_count = self.threads
        time_base = Fraction(stream.time_base) if stream.time_base else self.time_base
        frame_step = max(1, round(1 / (self.fps * time_base))) if self.fps else 1
        deep = self.bit_depth > 8
        reformatter = VideoReformatter()  # one scaler context for the whole stream
        index = 0
        last_pts: int | None = None
        last_duration = 0
        last_time: float | None = None
        color_cache: dict[tuple, ColorInfo] = {}

        def packets():
            # Demux errors (truncated or damaged container) surface here.
            try:
                yield from container.demux(stream)
            except av.FFmpegError as exc:
                raise self._error(f"cannot read the data ({_reason(exc)})", index, last_time) from None

        for packet in packets():
            try:
                frames = packet.decode()  # a None-data packet flushes the decoder at the end
            except av.FFmpegError as exc:
                raise self._error(f"corrupt video data ({_reason(exc)})", index, last_time) from None
            for vf in frames:
                if self.strict and vf.is_corrupt:
                    raise self._error("corrupt video data (the decoder flagged the frame)",
                                      index, last_time)
                pts = vf.pts
                if pts is None:
                    pts = vf.dts
                if pts is None:
                    pts = 0 if last_pts is None else last_pts + (vf.duration or frame_step)
                key = (vf.color_range, vf.colorspace, vf.color_primaries, vf.color_trc, vf.format.name)
                color = color_cache.get(key)
                if color is None:
                    color = color_cache[key] = color_of(vf)
                try:
                    image = video_frame_to_rgb(reformatter, vf, deep)
                except av.FFmpegError as exc:
                    raise self._error(f"cannot convert the frame to RGB ({_reason(exc)})",
                                      index, last_time) from None
                if image.shape[0] != self.height or image.shape[1] != self.width:
                    raise self._error(f"frame size changed to {image.shape[1]}x{image.shape[0]} "
                                      f"(expected {self.width}x{self.height}); not supported",
                                      index, last_time)
                frame = Frame(image=image, pts=int(pts), time_base=time_base, index=index,
                              bit_depth=self.bit_depth, color=color)
                last_pts = int(pts)
                last_duration = int(vf.duration or 0)
                last_time = float(pts * time_base)
                index += 1
                yield frame
        if index == 0:
            raise InputError(f"{self.path}: no frame could be decoded from video stream "
                             f"#{self.stream_number}; the file may be truncated or corrupt")
        if self.strict and last_pts is not None:
            self._check_complete(stream, time_base, last_pts, last_duration, index)

    def _check_complete(self, stream, time_base: Fraction, last_pts: int, last_duration: int,
                        count: int) -> None:
        # A truncated file often decodes without any error and just ends early: compare
        # where the frames ended with where the container says the stream ends.
        # Only MP4/MOV and Matroska store a stream's length; elsewhere (MPEG-TS, raw streams)
        # FFmpeg estimates it from the bit rate, which would give false alarms.
        if not any(name in self.info.format for name in ("mov", "matroska")):
            return
        declared = _declared_end(stream, time_base)
        if declared is None:
            return
        step = 1 / self.fps if self.fps else Fraction(1, 25)
        end = Fraction(last_pts) * time_base + (Fraction(last_duration) * time_base
                                                if last_duration else step)
        if declared - end > step * Fraction(3, 2):
            raise InputError(f"{self.path}: truncated or corrupt: video stream #{self.stream_number} "
                             f"ends after frame {count - 1} at {float(end):.3f} s, but the container "
                             f"says it lasts until {float(declared):.3f} s")


def _declared_end(stream, time_base: Fraction) -> Fraction | None:
    """Where the container says the stream ends, in seconds (None when it does not say)."""
    start = Fraction(stream.start_time or 0) * time_base
    if stream.duration:
        return start + Fraction(stream.duration) * time_base
    tag = (stream.metadata or {}).get("DURATION")  # Matroska's per-track statistics tag
    if tag:
        try:
            hours, minutes, seconds = str(tag).split(":")
            return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
        except ValueError:
            return None
    return None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(";")[0].strip()


class ImageSequenceSource(SourceNode):
    """Read an image sequence (``frames/%05d.png``, a folder, or ``shots/*.tif``) as Frames.

    8- and 16-bit PNG/TIFF (and other formats OpenCV reads) come out as RGB uint8 or
    full-scale uint16; every image must have the size and depth of the first. Timestamps
    are synthetic: ``pts = index`` with ``time_base = 1 / fps``. Attributes as for
    :class:`VideoFileSource` (``files`` lists the images).

    >>> src = ImageSequenceSource("frames/%05d.png", fps=Fraction(24))  # doctest: +SKIP
    >>> src.frame_count, src.bit_depth  # doctest: +SKIP
    (8, 16)
    """

    def __init__(self, spec: str | os.PathLike, fps: Fraction | int | float | str = Fraction(25),
                 *, name: str | None = None) -> None:
        from .sequence import list_images, read_image

        super().__init__(name=name)
        self.path = str(spec)
        self.files = list_images(self.path)
        first = read_image(self.files[0])
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        self.dtype = first.dtype
        self.bit_depth: int = 16 if first.dtype == np.uint16 else 8
        self.fps: Fraction = Fraction(fps).limit_denominator(1_000_000) if fps else Fraction(25)
        if self.fps <= 0:
            raise InputError(f"{self.path}: frame rate must be positive, got {fps}")
        self.time_base: Fraction = 1 / self.fps
        self.color = ColorInfo()
        self.frame_count: int | None = len(self.files)
        self.estimated_frame_count: int | None = self.frame_count

    def generate(self) -> Iterator[Frame]:
        """Yield one Frame per image, in order.

        >>> [f.pts for f in ImageSequenceSource("frames").generate()]  # doctest: +SKIP
        [0, 1, 2]
        """
        from .sequence import read_image

        for index, path in enumerate(self.files):
            image = read_image(path)
            if image.shape[:2] != (self.height, self.width):
                raise InputError(f"{path}: size {image.shape[1]}x{image.shape[0]} differs from the "
                                 f"first image's {self.width}x{self.height}")
            if image.dtype != self.dtype:
                raise InputError(f"{path}: {image.dtype.itemsize * 8}-bit image in a "
                                 f"{self.bit_depth}-bit sequence")
            yield Frame(image=image, pts=index, time_base=self.time_base, index=index,
                        bit_depth=self.bit_depth, color=self.color)


def open_source(spec: str | os.PathLike, stream: int | None = None,
                fps: Fraction | int | float | str | None = None) -> VideoFileSource | ImageSequenceSource:
    """The right source for ``spec``: a folder, a ``%d`` pattern or a glob are image
    sequences (at ``fps``, default 25); anything else is a media file (``stream`` picks the
    video stream; ``fps`` is ignored because the container's timestamps rule).

    >>> open_source("clip.mp4").fps  # doctest: +SKIP
    Fraction(25, 1)
    >>> open_source("frames/%05d.png", fps=24).frame_count  # doctest: +SKIP
    8
    """
    from .sequence import is_image_path, is_sequence_spec

    text = str(spec)
    if is_sequence_spec(text) or (is_image_path(text) and os.path.isfile(text)):
        if stream not in (None, 0):
            raise InputError(f"{text}: an image sequence has a single video stream; "
                             f"--stream {stream} does not exist")
        return ImageSequenceSource(text, fps=fps or Fraction(25))
    return VideoFileSource(text, stream)
