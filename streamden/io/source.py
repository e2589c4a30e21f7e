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
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError, InputError
from ..graph.node import SourceNode
from .frame import ColorInfo, Frame
from .hwaccel import check_hwaccel_mode, check_nvdec, cuda_hwaccel, nvdec_problem
from .pixels import video_frame_to_rgb
from .probe import MediaInfo, color_of, open_input, probe

__all__ = ["VideoFileSource", "ImageSequenceSource", "open_source", "DecodeProblems",
           "check_pixels", "display_rotation"]

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

    ``hwaccel`` picks the decoder (see :mod:`streamden.io.hwaccel`): ``"none"`` decodes in
    software; ``"cuda"`` decodes with NVDEC or raises (no CUDA device: StreamdenError; a
    codec NVDEC lacks: InputError) here, before any decoding or output; ``"auto"`` uses
    NVDEC when it works, else software, and logs which. Frames are the same either way.
    ``hwaccel_active`` and ``decoder_name`` (e.g. ``"h264 (cuda)"``, ``"h264 (software)"``)
    tell which decoder runs.

    >>> src = VideoFileSource("clip.mp4")  # doctest: +SKIP
    >>> src.open(); frames = list(src.generate()); src.close()  # doctest: +SKIP
    >>> frames[0].image.shape, frames[0].pts, src.fps  # doctest: +SKIP
    ((48, 64, 3), 0, Fraction(25, 1))
    """

    def __init__(self, path: str | os.PathLike, stream: int | None = None, *,
                 strict: bool = True, threads: int = 0, name: str | None = None,
                 max_corrupt_fraction: float | None = None, max_pixels: int | None = None,
                 seek_pts: int | None = None, first_index: int = 0,
                 rotation: int | None = None, hwaccel: str = "none") -> None:
        super().__init__(name=name)
        self.hwaccel = check_hwaccel_mode(hwaccel)
        self.path = str(path)
        self.stream_number = 0 if stream is None else int(stream)
        self.strict = strict
        # None: the old all-or-nothing rule of ``strict``; a number: tolerate that much damage.
        if max_corrupt_fraction is None:
            max_corrupt_fraction = 0.0 if strict else 1.0
        if not 0.0 <= float(max_corrupt_fraction) <= 1.0:
            raise ConfigError(f"input.max_corrupt_fraction must lie in [0, 1], got {max_corrupt_fraction}")
        self.max_corrupt_fraction = float(max_corrupt_fraction)
        self.threads = threads
        self.seek_pts = seek_pts
        self.first_index = int(first_index)
        self.info: MediaInfo = probe(self.path, stream)
        s = self.info.video_streams[self.stream_number]
        check_pixels(self.path, int(s.width), int(s.height), max_pixels)
        self.stream_index: int = s.index
        self.coded_width: int = int(s.width)
        self.coded_height: int = int(s.height)
        #: Counter-clockwise display rotation (0, 90, 180, 270) applied to every frame.
        self.rotation: int = display_rotation(self.path, self.stream_number, self.info) \
            if rotation is None else int(rotation) % 360
        swap = self.rotation in (90, 270)
        self.width: int = self.coded_height if swap else self.coded_width
        self.height: int = self.coded_width if swap else self.coded_height
        #: What went wrong while decoding (filled by generate(); see :class:`DecodeProblems`).
        self.problems = DecodeProblems()
        self.fps: Fraction = s.fps or Fraction(25)
        self.time_base: Fraction = s.time_base or Fraction(1, 90000)
        self.bit_depth: int = s.bit_depth or 8
        self.color: ColorInfo = s.color or ColorInfo()
        self.frame_count: int | None = s.frame_count
        self.estimated_frame_count: int | None = s.estimated_frame_count  # for progress bars
        # The stream's length in frames for the damage budget: declared, else from durations.
        self.expected_frames: int | None = self.estimated_frame_count or (
            max(1, round(self.info.duration * self.fps)) if self.info.duration else None)
        self.pix_fmt: str | None = s.pix_fmt
        #: True when frames are decoded by NVDEC (``hwaccel`` "cuda", or "auto" where it works).
        self.hwaccel_active: bool = self._resolve_hwaccel()
        #: The decoder in use, for reports: "h264 (cuda)" or "h264 (software)".
        self.decoder_name: str = f"{s.codec} ({'cuda' if self.hwaccel_active else 'software'})"
        self._container = None
        self._started = False

    def _resolve_hwaccel(self) -> bool:
        """Whether to decode with NVDEC: tried on the first frame, raising for "cuda"."""
        if self.hwaccel == "none":
            return False
        if self.hwaccel == "cuda":
            check_nvdec(self.path, self.stream_number)
        else:
            problem = nvdec_problem(self.path, self.stream_number)
            if problem is not None:
                log.info("%s: decoding in software (NVDEC: %s)", self.path, problem[1])
                return False
        log.info("%s: decoding with NVDEC (hwaccel cuda)", self.path)
        return True

    def open(self) -> None:
        """Open the file for decoding (called by the runner; generate() opens lazily too)."""
        if self._container is None:
            self._container = (open_input(self.path, hwaccel=cuda_hwaccel()) if self.hwaccel_active
                               else open_input(self.path))

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

        Damage is handled by ``max_corrupt_fraction``: a packet the decoder rejects is
        skipped, a frame it flags as corrupt (concealed) is delivered, a truncated end is
        accepted; each is counted in ``problems``. Once the damaged frames exceed that
        fraction of the stream (its declared length, or the frames seen when larger) an
        :class:`InputError` names the file and the position. A change of frame size
        mid-stream is scaled to the first size and starts a new sequence
        (``Frame.new_sequence``), so the denoiser's window restarts there.

        >>> next(VideoFileSource("clip.mp4").generate()).index  # doctest: +SKIP
        0
        """
        import av
        from av.video.reformatter import VideoReformatter

        if self._started:  # a second pass decodes from the start again
            self.close()
        self.open()
        self._started = True
        self.problems = problems = DecodeProblems()
        container = self._container
        stream = container.streams.get(video=self.stream_number)[0]
        if not self.hwaccel_active:  # NVDEC decodes whole frames on the GPU: CPU threads idle
            stream.thread_type = "AUTO"
            if self.threads:
                stream.thread_count = self.threads
        time_base = Fraction(stream.time_base) if stream.time_base else self.time_base
        frame_step = max(1, round(1 / (self.fps * time_base))) if self.fps else 1
        deep = self.bit_depth > 8
        reformatter = VideoReformatter()  # one scaler context for the whole stream
        index = self.first_index
        last_pts: int | None = None
        last_duration = 0
        last_time: float | None = None
        last_size: tuple[int, int] | None = None
        color_cache: dict[tuple, ColorInfo] = {}
        turns = self.rotation // 90
        if self.seek_pts is not None:
            try:  # to the keyframe at or before seek_pts; earlier frames are dropped below
                container.seek(int(self.seek_pts), stream=stream, backward=True, any_frame=False)
            except av.FFmpegError as exc:
                raise self._error(f"cannot seek ({_reason(exc)})", index, None) from None

        def damaged(kind: str, detail: str) -> None:
            problems.add(kind, f"{detail} at frame {index}"
                               + ("" if last_time is None else f" (after {_fmt_time(last_time)})"))
            self._check_budget(index - self.first_index)

        def packets():
            # Demux errors (truncated or damaged container) surface here and end the data.
            try:
                yield from container.demux(stream)
            except av.FFmpegError as exc:
                if self.max_corrupt_fraction == 0.0:
                    raise self._error(f"cannot read the data ({_reason(exc)})", index,
                                      last_time) from None
                damaged("unreadable", f"cannot read the data ({_reason(exc)})")
                yield None  # flush the decoder: frames it holds are still good

        for packet in packets():
            try:
                frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
            except av.FFmpegError as exc:
                if self.max_corrupt_fraction == 0.0:
                    raise self._error(f"corrupt video data ({_reason(exc)})", index, last_time) from None
                damaged("skipped", f"corrupt packet skipped ({_reason(exc)})")
                continue
            for vf in frames:
                pts = vf.pts
                if pts is None:
                    pts = vf.dts
                if pts is None:
                    pts = 0 if last_pts is None else last_pts + (vf.duration or frame_step)
                if self.seek_pts is not None and pts < self.seek_pts:
                    continue  # decoded from the keyframe before the wanted start
                if vf.is_corrupt:
                    if self.max_corrupt_fraction == 0.0:
                        raise self._error("corrupt video data (the decoder flagged the frame)",
                                          index, last_time)
                    damaged("concealed", "damaged frame concealed by the decoder")
                key = (vf.color_range, vf.colorspace, vf.color_primaries, vf.color_trc, vf.format.name)
                color = color_cache.get(key)
                if color is None:
                    color = color_cache[key] = color_of(vf)
                size = (vf.width, vf.height)
                new_sequence = last_size is not None and size != last_size
                if size != (self.coded_width, self.coded_height) and size != last_size:
                    problems.add("resized", f"frames of {vf.width}x{vf.height} from frame {index} "
                                            f"scaled to the stream's {self.coded_width}x{self.coded_height}")
                last_size = size
                try:
                    if size != (self.coded_width, self.coded_height):
                        vf = vf.reformat(width=self.coded_width, height=self.coded_height,
                                         interpolation="BICUBIC")
                    image = video_frame_to_rgb(reformatter, vf, deep)
                except av.FFmpegError as exc:
                    raise self._error(f"cannot convert the frame to RGB ({_reason(exc)})",
                                      index, last_time) from None
                if turns:
                    image = np.ascontiguousarray(np.rot90(image, k=turns))
                frame = Frame(image=image, pts=int(pts), time_base=time_base, index=index,
                              bit_depth=self.bit_depth, color=color, new_sequence=new_sequence)
                last_pts = int(pts)
                last_duration = int(vf.duration or 0)
                last_time = float(pts * time_base)
                index += 1
                problems.frames = index - self.first_index
                yield frame
        if index == self.first_index:
            detail = f" ({problems.summary()})" if problems.count else ""
            raise InputError(f"{self.path}: no frame could be decoded from video stream "
                             f"#{self.stream_number}; the file may be truncated or corrupt{detail}")
        if last_pts is not None and self.seek_pts is None:
            self._check_complete(stream, time_base, last_pts, last_duration, index)
        self._check_budget(index - self.first_index, final=True)
        if problems.count:  # the caller reports them (the CLI prints a warning)
            log.info("%s: %s", self.path, problems.summary())

    def _check_budget(self, seen: int, final: bool = False) -> None:
        """Raise once the damaged frames exceed ``max_corrupt_fraction`` of the stream."""
        bad = self.problems.damaged
        if not bad or (not final and not self.expected_frames):
            return  # without a declared length, judge at the end only
        lost = self.problems.skipped + self.problems.counts.get("missing", 0)
        total = max(seen + lost, 0 if final else self.expected_frames)
        if bad > self.max_corrupt_fraction * max(total, 1):
            limit = f"{self.max_corrupt_fraction:.0%}"
            raise InputError(f"{self.path}: too much damaged video data: {self.problems.summary()}; "
                             f"the limit is {limit} of the frames (input.max_corrupt_fraction)")

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
            message = (f"truncated or corrupt: video stream #{self.stream_number} ends after frame "
                       f"{count - 1} at {float(end):.3f} s, but the container says it lasts until "
                       f"{float(declared):.3f} s")
            if self.max_corrupt_fraction == 0.0:
                raise InputError(f"{self.path}: {message}")
            missing = max(1, round((declared - end) / step))
            self.problems.add("missing", message, count=missing)


@dataclass
class DecodeProblems:
    """What a decode survived: counts per kind and the first few messages.

    Kinds: ``skipped`` (packets the decoder rejected), ``concealed`` (frames delivered but
    flagged corrupt), ``missing`` (frames a truncated file lacks, estimated from its
    declared length), ``unreadable`` (the container could not be read further),
    ``resized`` (frame size changes, scaled back), ``crashed`` (the decoder process died;
    see :mod:`streamden.io.isolated`). ``frames`` counts the frames delivered.

    >>> p = DecodeProblems(); p.add("skipped", "bad packet at frame 3"); p.damaged, p.summary()
    (1, '1 corrupt packet skipped')
    """

    counts: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    frames: int = 0

    def add(self, kind: str, message: str, count: int = 1) -> None:
        """Count ``count`` events of ``kind``; keep the first 20 messages."""
        self.counts[kind] = self.counts.get(kind, 0) + count
        if len(self.messages) < 20:
            self.messages.append(message)

    @property
    def skipped(self) -> int:
        """Packets skipped because the decoder rejected them."""
        return self.counts.get("skipped", 0)

    @property
    def damaged(self) -> int:
        """Frames lost or damaged: skipped packets, concealed frames, missing frames."""
        return sum(self.counts.get(k, 0) for k in ("skipped", "concealed", "missing", "crashed"))

    @property
    def count(self) -> int:
        """All events, size changes and unreadable tails included."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line for warnings and ``--stats``."""
        names = {"skipped": "corrupt packet{} skipped", "concealed": "damaged frame{} concealed",
                 "missing": "frame{} missing at the end (truncated)",
                 "unreadable": "unreadable tail{}", "resized": "frame size change{}",
                 "crashed": "decoder crash{}"}
        parts = [f"{n} " + names.get(k, k + "{}").format("" if n == 1 else "s")
                 for k, n in self.counts.items() if n]
        return ", ".join(parts) if parts else "no problems"

    def to_dict(self) -> dict:
        """Plain data (for the manifest and the isolated decoder's pipe)."""
        return {"counts": dict(self.counts), "messages": list(self.messages), "frames": self.frames}

    @classmethod
    def from_dict(cls, data: dict) -> "DecodeProblems":
        """The inverse of :meth:`to_dict`."""
        return cls(counts=dict(data.get("counts", {})), messages=list(data.get("messages", [])),
                   frames=int(data.get("frames", 0)))


def check_pixels(path: str, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse a declared frame size above ``max_pixels`` before anything is allocated.

    >>> check_pixels("big.mkv", 70000, 70000, 2 ** 26)
    Traceback (most recent call last):
    ...
    streamden.errors.InputError: big.mkv: declared frame size 70000x70000 (4900000000 pixels) is above the limit of 67108864 pixels (--max-pixels / input.max_pixels)
    """
    if max_pixels is not None and max_pixels > 0 and width * height > max_pixels:
        raise InputError(f"{path}: declared frame size {width}x{height} ({width * height} pixels) is "
                         f"above the limit of {max_pixels} pixels (--max-pixels / input.max_pixels)")


def display_rotation(path: str, stream: int = 0, info: MediaInfo | None = None) -> int:
    """The counter-clockwise rotation (0, 90, 180 or 270) a player applies to the stream.

    FFmpeg exposes the container's display matrix only on decoded frames, so this decodes
    the first frame, and only for MP4/MOV (the containers that carry one in practice);
    any failure reads as 0 (the decode proper reports real damage).

    >>> display_rotation("phone.mp4")  # doctest: +SKIP
    90
    """
    if info is not None and "mov" not in info.format:
        return 0
    import av

    try:
        with av.open(path, "r") as container:
            for vf in container.decode(video=stream):
                return int(round((vf.rotation or 0) / 90.0)) % 4 * 90
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return 0
    return 0


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
                fps: Fraction | int | float | str | None = None, *, isolate: bool = False,
                **decode: Any) -> VideoFileSource | ImageSequenceSource:
    """The right source for ``spec``: a folder, a ``%d`` pattern or a glob are image
    sequences (at ``fps``, default 25); anything else is a media file (``stream`` picks the
    video stream; ``fps`` is ignored because the container's timestamps rule).

    For a media file, ``isolate=True`` decodes in a child process
    (:class:`~streamden.io.isolated.IsolatedVideoSource`, which also takes ``on_crash`` and
    ``stall_seconds``); ``decode`` holds the other options of :class:`VideoFileSource`
    (``max_corrupt_fraction``, ``max_pixels``, ``seek_pts``, ...). Image sequences ignore them.

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
    if isolate:
        from .isolated import IsolatedVideoSource

        return IsolatedVideoSource(text, stream, **decode)
    decode.pop("on_crash", None)
    decode.pop("stall_seconds", None)
    return VideoFileSource(text, stream, **decode)
