"""Sinks: encode Frames into a video file (with audio/subtitles remuxed) or an image sequence.

Both sinks follow the source's pixel convention: ``(H, W, 3)`` RGB, uint8 or full-scale
uint16 (see :mod:`streamden.io.source`); a float array or a ``(3, H, W)`` float tensor in
[0, 1] is accepted too. Neither ever leaves a half-written file where the user asked for
the result: a video is written to ``.NAME.partial.EXT`` beside the target and renamed onto
it in :meth:`close` when the run completed or was cancelled (a cancelled run still gets a
playable file: the encoder is flushed and the trailer written); a failed run deletes it.

Choices, documented here once:

* **Constant frame rate.** The output time base is ``1 / fps``. Each frame goes to slot
  ``round((t - t0) * fps)``, ``t`` its source time (``pts * time_base``) and ``t0`` the
  first frame's, so a CFR source round-trips with the same count and timestamps. A frame
  landing on a slot already used is dropped; a gap is filled by repeating the previous
  frame. A frame without a timestamp takes the next slot.
* **Odd sizes.** 4:2:0 needs even sizes with x264/x265, so an odd width or height is
  encoded in 4:4:4 (``yuv444p`` / ``yuv444p10le``); AV1 (SVT) takes odd sizes in 4:2:0, and
  FFV1 always uses 4:4:4 (it is meant to be lossless).
* **Pixel formats.** 8-bit sources: ``yuv420p``; above 8 bits: ``yuv420p10le``
  (FFV1: 4:4:4 at 10, 12 or 16 bits).
* **Audio and subtitles** of ``remux_from`` are copied packet for packet, never decoded,
  shifted by the first video frame's time so that sync is kept. A stream whose codec the
  output container cannot hold (subrip in .mp4, aac in .webm, ...) is refused up front with
  an :class:`OutputError` that suggests .mkv; nothing is converted. Data and attachment
  streams are not copied.
"""
from __future__ import annotations

import io
import logging
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..graph.node import SinkNode
from .atomic import check_output_path, check_writable_dir, commit, discard, partial_path
from .frame import ColorInfo, Frame
from .pixels import rgb_to_video_frame, to_rgb_array

__all__ = ["VideoFileSink", "ImageSequenceSink", "open_sink", "to_rgb_array", "VIDEO_CODECS",
           "CONTAINERS", "IMAGE_CODECS"]

log = logging.getLogger(__name__)

#: Output extension -> FFmpeg muxer name.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}

#: Our codec names -> (FFmpeg codec name, encoders to try in order).
VIDEO_CODECS = {
    "h264": ("h264", ("libx264",)),
    "h265": ("hevc", ("libx265",)),
    "hevc": ("hevc", ("libx265",)),
    "av1": ("av1", ("libsvtav1", "libaom-av1")),
    "ffv1": ("ffv1", ("ffv1",)),
    "vp9": ("vp9", ("libvpx-vp9",)),
}

#: Muxer options that keep the file being written playable if the process is killed (kill -9,
#: power loss): MP4/MOV are written as fragments of at most a second behind an empty moov,
#: so everything up to the last fragment decodes; Matroska is readable when cut anyway.
_WHILE_WRITING = {
    "mp4": {"movflags": "empty_moov+default_base_moof+negative_cts_offsets", "frag_duration": "1000000",
            "flush_packets": "1"},
    "mov": {"movflags": "empty_moov+default_base_moof+negative_cts_offsets", "frag_duration": "1000000",
            "flush_packets": "1"},
}
#: Matroska: clusters of at most a second, each handed to the file system at once.
_MUXER_OPTIONS = dict(_WHILE_WRITING, matroska={"cluster_time_limit": "1000", "flush_packets": "1"},
                      webm={"cluster_time_limit": "1000", "flush_packets": "1"})

#: Codec names that mean "write an image sequence".
IMAGE_CODECS = {"png": "png", "tiff": "tiff", "tif": "tiff"}

_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow", "placebo")
# x264 speed names mapped onto SVT-AV1 presets (0 slowest .. 13 fastest) and libaom cpu-used.
_SVT_PRESET = dict(zip(_X264_PRESETS, ("12", "11", "10", "9", "8", "7", "5", "4", "2", "0")))
_AOM_CPU = dict(zip(_X264_PRESETS, ("8", "8", "7", "6", "5", "4", "3", "2", "1", "0")))
_VPX_CPU = dict(zip(_X264_PRESETS, ("8", "7", "6", "5", "4", "3", "2", "1", "0", "0")))


def _as_fps(fps: Any) -> Fraction:
    try:
        value = Fraction(str(fps)) if isinstance(fps, str) else Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise OutputError(f"frame rate must be a positive number such as 25 or 30000/1001, got {fps!r}") from None
    value = value.limit_denominator(1_000_000)
    if value <= 0:
        raise OutputError(f"frame rate must be positive, got {fps!r}")
    return value


def _frame_seconds(frame: Frame, fallback_tb: Fraction | None) -> Fraction | None:
    if frame.pts is None:
        return None
    tb = frame.time_base or fallback_tb
    return None if tb is None else Fraction(frame.pts) * Fraction(tb)


def _supported_codecs(fmt: str) -> set[str]:
    import av

    with av.open(io.BytesIO(), "w", format=fmt) as probe_container:
        return set(probe_container.supported_codecs)


class _Remuxer:
    """Copies the audio and subtitle packets of one input into an output, in time order."""

    def __init__(self, path: str, out_container, shift: Fraction, target: Path) -> None:
        import av

        # The MP4 muxer writes its own empty mov_text samples between cues; copying the
        # input's as well would double them.
        self.drop_empty_mov_text = out_container.format.name in ("mp4", "mov")

        try:
            self.container = av.open(path, "r")
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"{path}: cannot open to copy its audio/subtitles ({exc})") from None
        self.path = path
        self.target = target
        self.shift = shift
        self.map = {}
        for s in self.container.streams:
            if s.type in ("audio", "subtitle"):
                self.map[s.index] = out_container.add_stream_from_template(s)
        self._packets = (self.container.demux(*[self.container.streams[i] for i in self.map])
                         if self.map else iter(()))
        self._pending = None
        self.copied = 0

    def _next(self):
        if self._pending is None:
            for pkt in self._packets:
                if pkt.size == 0 or pkt.stream.index not in self.map:
                    continue
                if (self.drop_empty_mov_text and pkt.size == 2
                        and pkt.stream.codec_context.name == "mov_text" and bytes(pkt) == b"\0\0"):
                    continue
                self._pending = pkt
                break
            else:
                return None
        return self._pending

    def _time(self, pkt) -> Fraction | None:
        ts = pkt.dts if pkt.dts is not None else pkt.pts
        if ts is None or not pkt.time_base:
            return None
        return Fraction(ts) * pkt.time_base - self.shift

    def mux_until(self, out_container, limit: Fraction | None) -> None:
        """Mux every pending packet whose (shifted) time is <= limit (all when None)."""
        import av

        while True:
            try:
                pkt = self._next()
            except av.FFmpegError as exc:
                log.warning("%s: stopped copying audio/subtitles (%s)", self.path, exc)
                self._packets, self._pending = iter(()), None
                return
            if pkt is None:
                return
            t = self._time(pkt)
            if limit is not None and t is not None and t > limit:
                return
            self._pending = None
            if self.shift:
                ticks = round(self.shift / pkt.time_base)
                if pkt.pts is not None:
                    pkt.pts -= ticks
                if pkt.dts is not None:
                    pkt.dts -= ticks
            source_index = pkt.stream.index
            pkt.stream = self.map[source_index]
            try:
                out_container.mux(pkt)
            except av.FFmpegError as exc:
                raise OutputError(f"{self.target}: cannot copy stream #{source_index} of "
                                  f"{self.path} ({exc})") from None
            self.copied += 1

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass


class VideoFileSink(SinkNode):
    """Encode Frames into a video file at a constant frame rate, copying audio and subtitles.

    ``codec`` is h264 (libx264), h265 (libx265), av1 (libsvtav1, else libaom-av1), ffv1
    (lossless; .mkv) or vp9; the container comes from the extension (.mp4, .mkv, .mov,
    .webm). ``bit_depth`` above 8 encodes 10 bits. ``color`` is written to the stream and
    used for the RGB->YUV conversion. ``remux_from`` names a file whose audio and subtitle
    streams are copied packet for packet. ``source_time_base`` times frames that carry no
    ``time_base``. ``source_path`` (defaults to ``remux_from``) is the input, which the
    output may not overwrite. ``origin`` is the source time (seconds) of slot 0; by
    default the first frame's (a segment of a longer video passes the video's own, so that
    its slots, and timestamps, are those of the whole). See the module docstring for the
    CFR and odd-size rules. MP4/MOV are written in fragments while the run goes on (a
    killed process leaves a playable partial file) and rewritten as a plain file at the end.

    Everything is checked in the constructor, before any decoding: unknown extension or
    codec, codec not allowed in the container (also for the remuxed streams), output equal
    to the input, existing output without ``overwrite``, missing or unwritable directory.
    After the run, ``frames_written``, ``frames_dropped`` and ``frames_repeated`` tell what
    the CFR rule did (``frames_written`` counts every frame in the file, repeats included).

    Used directly (outside a graph), call open(), process(frame) per frame, set
    ``outcome`` and close(); or use it as a context manager:

    >>> with VideoFileSink("out.mp4", fps=Fraction(25), width=64, height=48,
    ...                    remux_from="in.mp4", overwrite=True) as sink:  # doctest: +SKIP
    ...     for frame in frames:
    ...         sink.process(frame)
    """

    def __init__(self, path: str | os.PathLike, *, fps: Fraction | int | float | str, width: int,
                 height: int, bit_depth: int = 8, color: ColorInfo | None = None,
                 codec: str = "h264", crf: int | None = 18, preset: str | None = "medium",
                 remux_from: str | os.PathLike | None = None, overwrite: bool = False,
                 source_time_base: Fraction | None = None,
                 source_path: str | os.PathLike | None = None, threads: int = 0,
                 origin: Fraction | None = None, name: str | None = None) -> None:
        import av

        super().__init__(name=name)
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in CONTAINERS:
            hint = (" (for images give a pattern such as out/%05d.png)"
                    if ext in (".png", ".tif", ".tiff") else "")
            raise OutputError(f"{self.path}: unknown output extension {ext or '(none)'!r}; use one "
                              f"of {', '.join(CONTAINERS)}{hint}")
        self.format = CONTAINERS[ext]
        codec = (codec or "h264").lower()
        if codec in IMAGE_CODECS:
            raise OutputError(f"{self.path}: codec {codec} writes image sequences; give a pattern "
                              f"such as out/%05d.{IMAGE_CODECS[codec]} or a folder")
        if codec not in VIDEO_CODECS:
            raise OutputError(f"{self.path}: unknown video codec {codec!r}; use one of "
                              f"{', '.join(sorted(set(VIDEO_CODECS) - {'hevc'}))}")
        self.codec = codec
        ff_name, encoders = VIDEO_CODECS[codec]
        available = [e for e in encoders if e in av.codecs_available]
        if not available:
            raise OutputError(f"{self.path}: no {codec} encoder in this FFmpeg build "
                              f"(looked for {', '.join(encoders)})")
        self.encoder = available[0]
        supported = _supported_codecs(self.format)
        if ff_name not in supported:
            raise OutputError(f"{self.path}: a {ext} file cannot hold {codec} video; use .mkv")
        self.fps = _as_fps(fps)
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise OutputError(f"{self.path}: bad frame size {width}x{height}")
        self.bit_depth = int(bit_depth)
        self.color = color or ColorInfo()
        if crf is not None and not (isinstance(crf, int) or str(crf).isdigit()):
            raise OutputError(f"{self.path}: crf must be a whole number, got {crf!r}")
        if preset is not None and preset.lower() not in _X264_PRESETS and not str(preset).isdigit():
            raise OutputError(f"{self.path}: unknown encoder preset {preset!r}; use one of "
                              f"{', '.join(_X264_PRESETS)}")
        self.crf = crf
        self.preset = preset
        self.threads = threads
        self.overwrite = overwrite
        self.source_time_base = Fraction(source_time_base) if source_time_base else None
        self.remux_from = str(remux_from) if remux_from is not None else None
        self.source_path = str(source_path) if source_path is not None else self.remux_from
        self.pix_fmt = self._choose_pix_fmt()
        check_output_path(self.path, overwrite=overwrite, inputs=(self.source_path, self.remux_from))
        if self.remux_from is not None:
            self._check_remux(supported, ext)
        self.tmp_path = partial_path(self.path)
        self.frames_written = 0
        self.frames_dropped = 0
        self.frames_repeated = 0
        self._container = None
        self._stream = None
        self._remux: _Remuxer | None = None
        self._reformatter = None
        self._t0: Fraction | None = None if origin is None else Fraction(origin)
        self._next_slot = 0
        self._first_slot: int | None = None
        self._last_vf = None
        self._last_video_time: Fraction | None = None
        self._closed = False

    # -- set-up -------------------------------------------------------------------------
    def _choose_pix_fmt(self) -> str:
        odd = self.width % 2 == 1 or self.height % 2 == 1
        deep = self.bit_depth > 8
        if self.codec == "ffv1":
            if not deep:
                return "yuv444p"
            return {9: "yuv444p10le", 10: "yuv444p10le", 11: "yuv444p12le",
                    12: "yuv444p12le"}.get(self.bit_depth, "yuv444p16le")
        if self.codec in ("h264", "h265", "hevc") and odd:
            return "yuv444p10le" if deep else "yuv444p"
        if self.codec == "vp9":
            return "yuv420p"  # this build's libvpx-vp9 encodes 8 bits only
        return "yuv420p10le" if deep else "yuv420p"

    def _check_remux(self, supported: set[str], ext: str) -> None:
        from .probe import probe

        info = probe(self.remux_from, require_video=False)
        for s in info.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            if s.codec not in supported:
                advice = "write .mkv instead" if ext != ".mkv" else "convert or drop that stream first"
                raise OutputError(
                    f"{self.path}: {s.type} stream #{s.index} of {self.remux_from} is {s.codec}, "
                    f"which a {ext} file cannot hold (streams are copied, never converted); {advice}")

    def _encoder_options(self) -> dict[str, str]:
        preset = (self.preset or "medium").lower()
        crf = None if self.crf is None else str(int(self.crf))
        opts: dict[str, str] = {}
        if self.encoder in ("libx264", "libx265"):
            if preset in _X264_PRESETS:
                opts["preset"] = preset
            if crf is not None:
                opts["crf"] = crf
            if self.encoder == "libx265":
                opts["x265-params"] = "log-level=error"
        elif self.encoder == "libsvtav1":
            opts["preset"] = _SVT_PRESET.get(preset, preset if preset.isdigit() else "8")
            if crf is not None:
                opts["crf"] = crf
        elif self.encoder == "libaom-av1":
            opts["cpu-used"] = _AOM_CPU.get(preset, "4")
            opts["b"] = "0"
            if crf is not None:
                opts["crf"] = crf
        elif self.encoder == "libvpx-vp9":
            opts["cpu-used"] = _VPX_CPU.get(preset, "4")
            opts["deadline"] = "good"
            opts["b"] = "0"
            if crf is not None:
                opts["crf"] = crf
        elif self.encoder == "ffv1":
            opts["level"] = "3"
            opts["slicecrc"] = "1"
        return opts

    def open(self) -> None:
        """Create the temporary output, the video stream and the copied streams.

        >>> sink.open()  # doctest: +SKIP
        """
        import av
        from av.video.reformatter import VideoReformatter

        if self._container is not None:
            return
        if self.encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT prints its banner to stderr otherwise
        if self.tmp_path.exists():  # left by a run that was killed (it stays playable until now)
            log.warning("%s: replacing %s, the partial output of an earlier run that was killed",
                        self.path, self.tmp_path.name)
            discard(self.tmp_path)
        try:
            self._container = av.open(str(self.tmp_path), "w", format=self.format,
                                      options=_MUXER_OPTIONS.get(self.format, {}))
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot create {self.tmp_path.name} ({exc})") from None
        stream = self._container.add_stream(self.encoder, rate=self.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = 1 / self.fps
        cc = stream.codec_context
        cc.time_base = 1 / self.fps
        cc.framerate = self.fps
        cc.color_range = 2 if self.color.range == "pc" else 1
        cc.colorspace = int(self.color.matrix)
        cc.color_primaries = int(self.color.primaries)
        cc.color_trc = int(self.color.transfer)
        if self.threads:
            cc.thread_count = self.threads
        stream.options = self._encoder_options()
        if self.format in ("mp4", "mov") and self.encoder == "libx265":
            cc.codec_tag = "hvc1"  # what Apple players expect for HEVC in MP4/MOV
        self._stream = stream
        self._reformatter = VideoReformatter()
        if self.remux_from is not None:
            # The shift is only known at the first frame; streams must exist before the header.
            self._remux = _Remuxer(self.remux_from, self._container, Fraction(0), self.path)

    # -- per frame ----------------------------------------------------------------------
    def _to_video_frame(self, image: Any):

        rgb = to_rgb_array(image, self.bit_depth)
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            raise ValueError(f"{self.path}: frame is {rgb.shape[1]}x{rgb.shape[0]}, the sink was "
                             f"opened for {self.width}x{self.height}")
        return rgb_to_video_frame(self._reformatter, rgb, self.pix_fmt, self.color)

    def _encode(self, vf, slot: int) -> None:
        import av

        vf.pts = slot
        vf.time_base = 1 / self.fps
        try:
            packets = self._stream.encode(vf)
            self._mux_video(packets)
        except av.FFmpegError as exc:
            raise OutputError(f"{self.path}: encoding failed at frame {slot} ({exc})") from None
        except OSError as exc:
            raise OutputError(f"{self.path}: write failed at frame {slot} ({exc.strerror or exc})") from None
        self._last_video_time = Fraction(slot + 1) / self.fps
        if self._first_slot is None:
            self._first_slot = slot
        self.frames_written += 1

    def _mux_video(self, packets) -> None:
        for pkt in packets:
            if self._remux is not None:
                ts = pkt.dts if pkt.dts is not None else pkt.pts
                limit = None if ts is None else Fraction(ts) * pkt.time_base
                if limit is not None:
                    self._remux.mux_until(self._container, limit)
            self._container.mux(pkt)

    def process(self, frame: Frame) -> None:
        """Encode one frame at its constant-rate slot (dropping or repeating as needed).

        >>> sink.process(frame)  # doctest: +SKIP
        """
        if self._container is None:
            self.open()
        t = _frame_seconds(frame, self.source_time_base)
        if self._t0 is None:
            self._t0 = t if t is not None else Fraction(0)
            if self._remux is not None:
                self._remux.shift = self._t0
        slot = self._next_slot if t is None else round((t - self._t0) * self.fps)
        if slot < self._next_slot:
            self.frames_dropped += 1
            return None
        vf = self._to_video_frame(frame.image)
        if slot > self._next_slot and self._last_vf is not None:
            gap = slot - self._next_slot
            if gap > self.fps * 10:
                log.warning("%s: %d-frame gap in the source timestamps (%.1f s) filled by repeating "
                            "a frame", self.path, gap, float(gap / self.fps))
            for fill in range(self._next_slot, slot):
                self._encode(self._last_vf, fill)
                self.frames_repeated += 1
        self._encode(vf, slot)
        self._last_vf = vf
        self._next_slot = slot + 1
        return None

    # -- end ------------------------------------------------------------------------------
    def _finalise(self) -> None:
        import av

        try:
            self._mux_video(self._stream.encode(None))
            if self._remux is not None:
                limit = None if self.outcome == "complete" else self._last_video_time
                self._remux.mux_until(self._container, limit)
            self._container.close()
        except av.FFmpegError as exc:
            raise OutputError(f"{self.path}: could not finish the file ({exc})") from None
        except OSError as exc:
            raise OutputError(f"{self.path}: could not finish the file ({exc.strerror or exc})") from None
        finally:
            self._container = None

    def _rewrite_plain(self) -> None:
        """Rewrite the finished fragmented MP4/MOV as a plain one: video packets copied from it,
        audio and subtitles copied again from ``remux_from`` (a fragmented file cannot hold
        their edit lists, such as AAC's priming delay, so its copies are a little off).

        Fragments keep the file playable while it is written (kill -9, power loss); the
        plain file has the index and edit lists players and tools expect. Costs one more
        pass over the file and the space of a second copy until the rename.
        """
        import av

        plain = self.tmp_path.with_name(f"{self.tmp_path.stem}.plain{self.tmp_path.suffix}")
        remux = None
        try:
            with av.open(str(self.tmp_path), "r") as src, av.open(str(plain), "w", format=self.format) as dst:
                vin = src.streams.video[0]
                vout = dst.add_stream_from_template(vin)
                vout.time_base = vin.time_base
                # With B-frames (and audio) the fragments start the video at its decode delay
                # instead of at the first slot: put the earliest frame back where it belongs.
                first = min((pkt.pts for pkt in src.demux(vin) if pkt.pts is not None), default=None)
                src.seek(0, stream=vin)
                want = round(Fraction(self._first_slot) / self.fps / vin.time_base)
                shift = 0 if first is None else first - want
                if self.remux_from is not None:
                    remux = _Remuxer(self.remux_from, dst, self._t0 or Fraction(0), self.path)
                for pkt in src.demux(vin):
                    if pkt.dts is None and pkt.pts is None:
                        continue  # the demuxer's end-of-stream marker
                    ts = pkt.dts if pkt.dts is not None else pkt.pts
                    if remux is not None:
                        remux.mux_until(dst, Fraction(ts - shift) * pkt.time_base)
                    if shift:
                        if pkt.pts is not None:
                            pkt.pts -= shift
                        if pkt.dts is not None:
                            pkt.dts -= shift
                    pkt.stream = vout
                    dst.mux(pkt)
                if remux is not None:
                    limit = None if (self.outcome or "complete") == "complete" else self._last_video_time
                    remux.mux_until(dst, limit)
        except (av.FFmpegError, OSError) as exc:
            discard(plain)
            reason = getattr(exc, "strerror", None) or exc
            raise OutputError(f"{self.path}: could not finish the file ({reason})") from None
        except BaseException:
            discard(plain)
            raise
        finally:
            if remux is not None:
                remux.close()
        os.replace(plain, self.tmp_path)

    def _abandon(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:
                log.debug("closing the abandoned %s failed", self.tmp_path, exc_info=True)
        discard(self.tmp_path)

    def close(self) -> None:
        """Finalise: keep the file (renamed onto the target) if the outcome is "complete" or
        "cancelled" (None counts as complete), delete it on "error". Safe to call twice.

        >>> sink.outcome = "cancelled"; sink.close()  # doctest: +SKIP
        """
        if self._closed:
            return
        self._closed = True
        try:
            outcome = self.outcome or "complete"
            if outcome == "error" or self._container is None:
                self._abandon()
                return
            if self.frames_written == 0:
                self._abandon()
                if outcome == "complete":
                    raise OutputError(f"{self.path}: no frames to write; nothing was written")
                return
            try:
                self._finalise()
                if self.format in _WHILE_WRITING:
                    self._rewrite_plain()
            except BaseException:
                self._abandon()
                raise
            commit(self.tmp_path, self.path)
        finally:
            if self._remux is not None:
                self._remux.close()
                self._remux = None

    def __enter__(self) -> "VideoFileSink":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.outcome is None:
            from ..errors import Cancelled

            if exc_type is None:
                self.outcome = "complete"
            elif issubclass(exc_type, (Cancelled, KeyboardInterrupt)):
                self.outcome = "cancelled"
            else:
                self.outcome = "error"
        self.close()


_PRINTF = re.compile(r"%0?\d*d")


class ImageSequenceSink(SinkNode):
    """Write each Frame as one 8- or 16-bit PNG/TIFF image, atomically (temp name, rename).

    ``target`` is a printf pattern (``out/%05d.png``), a folder (``out/``, files named
    ``frame_00000.png``...), or a single image path (``night.tiff``, one frame only).
    ``ext`` ("png" or "tiff") is taken from the pattern when it has one. ``bit_depth`` above
    8 writes 16-bit images (full-scale). Numbering starts at ``start_number``. Existing
    files are refused unless ``overwrite``; on outcome "error" the files this sink wrote
    are removed, on "cancelled" they stay.

    >>> sink = ImageSequenceSink("out/%05d.png", bit_depth=16)  # doctest: +SKIP
    >>> sink.open(); sink.process(frame); sink.outcome = "complete"; sink.close()  # doctest: +SKIP
    """

    def __init__(self, target: str | os.PathLike, ext: str | None = None, bit_depth: int = 8, *,
                 overwrite: bool = False, start_number: int = 0, name: str | None = None) -> None:
        super().__init__(name=name)
        text = str(target)
        self.target = text
        self.bit_depth = int(bit_depth)
        self.overwrite = overwrite
        self.start_number = int(start_number)
        want = IMAGE_CODECS.get((ext or "").lower().lstrip(".")) if ext else None
        if ext and want is None:
            raise OutputError(f"{text}: unknown image format {ext!r}; use png or tiff")
        suffix = Path(text).suffix.lower()
        self.single = False
        self._make_folder = False
        if _PRINTF.search(text):
            if len(_PRINTF.findall(text)) != 1 or _PRINTF.search(os.path.dirname(text)):
                raise OutputError(f"{text}: the pattern needs exactly one %d, in the file name")
            if suffix not in (".png", ".tif", ".tiff"):
                raise OutputError(f"{text}: image pattern must end in .png, .tif or .tiff")
            self.pattern = text
        elif os.path.isdir(text) or text.endswith(("/", os.sep)) or (
                not suffix and want is not None):
            self._make_folder = not os.path.isdir(text)
            self.pattern = os.path.join(text, f"frame_%05d.{want or 'png'}")
        elif suffix in (".png", ".tif", ".tiff"):
            self.single = True
            self.pattern = text
        else:
            raise OutputError(f"{text}: not an image pattern, folder or .png/.tiff path")
        pat_ext = Path(self.pattern).suffix.lower()
        if want is not None and IMAGE_CODECS.get(pat_ext.lstrip(".")) != want:
            raise OutputError(f"{text}: extension {pat_ext} does not match the format {ext}")
        self.ext = IMAGE_CODECS[pat_ext.lstrip(".")]
        self.folder = Path(os.path.dirname(self.pattern) or ".")
        if self._make_folder:
            parent = self.folder.parent
            check_writable_dir(parent, for_path=self.folder)
        else:
            check_writable_dir(self.folder, for_path=Path(text))
        if not overwrite:
            clash = self._existing()
            if clash is not None:
                raise OutputError(f"{clash}: exists; pass --overwrite to replace it")
        self.written: list[Path] = []
        self._count = 0

    def _existing(self) -> Path | None:
        if self.single:
            return Path(self.pattern) if os.path.exists(self.pattern) else None
        if not self.folder.is_dir():
            return None
        name = os.path.basename(self.pattern)
        match = _PRINTF.search(name)
        regex = re.compile(re.escape(name[:match.start()]) + r"\d+" + re.escape(name[match.end():]) + r"\Z")
        for entry in sorted(os.listdir(self.folder)):
            if regex.match(entry):
                return self.folder / entry
        return None

    @property
    def frames_written(self) -> int:
        """Images written so far (as :attr:`VideoFileSink.frames_written` counts frames)."""
        return self._count

    def path_for(self, number: int) -> Path:
        """The file the frame numbered ``number`` goes to.

        >>> ImageSequenceSink("out/%03d.png", overwrite=True).path_for(7).as_posix()  # doctest: +SKIP
        'out/007.png'
        """
        return Path(self.pattern if self.single else self.pattern % number)

    def open(self) -> None:
        """Create the output folder when it was named but does not exist yet."""
        if self._make_folder:
            try:
                self.folder.mkdir(exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{self.folder}: cannot create ({exc.strerror})") from None

    def process(self, frame: Frame) -> None:
        """Write one frame to the next numbered file.

        >>> sink.process(frame)  # doctest: +SKIP
        """
        from .sequence import write_image

        if self.single and self._count >= 1:
            raise OutputError(f"{self.pattern}: a single-image output got more than one frame; "
                              f"give a pattern such as out/%05d.{self.ext}")
        path = self.path_for(self.start_number + self._count)
        if path.exists() and not self.overwrite and path not in self.written:
            raise OutputError(f"{path}: exists; pass --overwrite to replace it")
        image = to_rgb_array(frame.image, self.bit_depth)
        write_image(path, image)
        self.written.append(path)
        self._count += 1
        return None

    def close(self) -> None:
        """On outcome "error", remove the images written by this run; otherwise keep them."""
        if self.outcome == "error":
            for path in self.written:
                discard(path)
            self.written = []
            if self._make_folder:
                try:
                    self.folder.rmdir()  # only if empty: it was created by this run
                except OSError:
                    pass

    def __enter__(self) -> "ImageSequenceSink":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.outcome is None:
            self.outcome = "complete" if exc_type is None else "error"
        self.close()


def open_sink(path: str | os.PathLike, **options: Any) -> VideoFileSink | ImageSequenceSink:
    """The right sink for ``path``: a ``%d`` pattern, a folder, an image extension, or codec
    png/tiff give an :class:`ImageSequenceSink`; anything else a :class:`VideoFileSink`.

    Options are those of the chosen sink; for images, the video-only ones (``fps``,
    ``width``, ``height``, ``color``, ``crf``, ``preset``, ``remux_from``, ...) are ignored.

    >>> sink = open_sink("out.mkv", fps=25, width=64, height=48, codec="ffv1")  # doctest: +SKIP
    >>> sink = open_sink("frames/%05d.png", bit_depth=16)  # doctest: +SKIP
    """
    text = str(path)
    codec = (options.get("codec") or "").lower()
    suffix = Path(text).suffix.lower()
    image_target = (bool(_PRINTF.search(text)) or os.path.isdir(text) or text.endswith(("/", os.sep))
                    or suffix in (".png", ".tif", ".tiff")
                    or (codec in IMAGE_CODECS and not suffix))
    if image_target:
        ext = codec if codec in IMAGE_CODECS else None
        if codec in IMAGE_CODECS and suffix in (".png", ".tif", ".tiff") \
                and IMAGE_CODECS[suffix.lstrip(".")] != IMAGE_CODECS[codec]:
            ext = None  # the explicit file name wins over a preset's codec
        return ImageSequenceSink(text, ext=ext, bit_depth=options.get("bit_depth", 8),
                                 overwrite=options.get("overwrite", False))
    if "fps" not in options or "width" not in options or "height" not in options:
        raise TypeError("open_sink for a video file needs fps=, width= and height=")
    return VideoFileSink(text, **options)
