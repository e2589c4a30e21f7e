"""Live outputs: network streams, HLS and segmented recording, each in its own writer thread.

The pacer hands every output one frame per period through :meth:`LiveOutput.offer`, which
never blocks: frames wait in a small queue and, when an output cannot keep up (a slow
network peer, a full disk), the oldest waiting frame is dropped and counted. The writer
thread encodes (H.264, ``tune=zerolatency``, a keyframe every second) and muxes; when
writing fails it closes the output and re-opens it with capped exponential backoff, so a
receiver that goes away never stops the stream or the other outputs.

Which output a destination string gives (:func:`open_output`):

===================================  ==================================================
destination                          output
===================================  ==================================================
``udp://``, ``tcp://``, ``srt://``   MPEG-TS stream (``tcp://host:port?listen=1`` serves)
``rtmp://``, ``rtmps://``            FLV push to an RTMP server
``rtsp://``                          RTSP push (ANNOUNCE/RECORD over TCP) to a server
``*.m3u8``                           HLS: playlist plus 2 s ``.ts`` segments (browsers)
a folder (``rec/``) or a strftime    segmented recording: ``.ts`` files of N seconds named
pattern (``rec/cam-%Y%m%d-%H%M%S.ts``)  by wall-clock start time, rotated
``NAME.ts`` (no ``%`` field, e.g.    one MPEG-TS file at exactly that path for the whole
``rec.ts``, ``cams/front.ts``)       session (:class:`FileRecorder`); never overwritten
===================================  ==================================================

Recordings are crash-safe, and a file under the name the user asked for is always a finished
one: a segment or a one-file recording is written as ``.NAME.partial.ts`` beside its final
name and renamed when complete (a segment when it rotates, ``NAME.ts`` when the output closes
cleanly: ``--duration`` reached, Ctrl-C, SIGTERM). MPEG-TS needs no trailer and stays
playable when cut anywhere, so a crash or ``kill -9`` leaves the recording so far, playable,
in ``.NAME.partial.ts`` (a hidden file in the same folder; rename it to keep it).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..errors import OutputError
from .atomic import check_writable_dir, partial_path
from .frame import ColorInfo
from .live import Backoff
from .pixels import rgb_to_video_frame

__all__ = ["LiveOutput", "StreamOutput", "HLSOutput", "SegmentRecorder", "FileRecorder", "open_output"]

log = logging.getLogger(__name__)

#: URL scheme -> FFmpeg muxer of a network output.
STREAM_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtmp": "flv", "rtmps": "flv",
                  "rtsp": "rtsp"}


class LiveOutput:
    """Base of the live outputs: a bounded drop-oldest queue and a writer thread.

    Subclasses implement :meth:`_open_container` (returning an open PyAV output container)
    and may override :meth:`_before_frame` (segment rotation). ``fps`` and ``size``
    (width, height) are fixed; ``queue_size`` frames may wait. After a run: ``written``,
    ``dropped`` (frames the output could not take in time), ``errors`` and ``reopens``.

    >>> out = open_output("udp://127.0.0.1:5000", fps=25, size=(64, 48))  # doctest: +SKIP
    >>> out.start(); out.offer(image, slot=0); out.close()  # doctest: +SKIP
    """

    def __init__(self, target: str, *, fps: Fraction | int | float, size: tuple[int, int],
                 preset: str = "veryfast", crf: int = 23, queue_size: int = 8,
                 backoff: Backoff | None = None, write_timeout: float = 5.0) -> None:
        self.target = str(target)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.width, self.height = int(size[0]), int(size[1])
        self.preset = preset
        self.crf = crf
        self.write_timeout = float(write_timeout)
        self.backoff = backoff or Backoff(0.5, 5.0)
        self.pix_fmt = "yuv420p" if self.width % 2 == 0 and self.height % 2 == 0 else "yuv444p"
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.reopens = 0
        self.last_error: str | None = None
        self._queue: deque[tuple[np.ndarray, int]] = deque()
        self._queue_size = max(1, int(queue_size))
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container = None
        self._stream = None
        self._reformatter = None
        self._first_slot: int | None = None
        self._retry_at = 0.0

    # -- the pacer's side ----------------------------------------------------------------
    def offer(self, image: np.ndarray, slot: int) -> None:
        """Queue a frame for output slot ``slot``; never blocks (drops the oldest when full)."""
        with self._cond:
            self._queue.append((image, slot))
            while len(self._queue) > self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify()

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"output {self.target}", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (within ``timeout``), finalise the output, stop the thread."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: writer did not stop within %.0f s", self.target, timeout)
            self._thread = None
        else:
            self._finish()

    # -- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stop.is_set():
                        self._cond.wait(0.5)
                    if not self._queue:
                        break  # stopping and drained
                    image, slot = self._queue.popleft()
                self._write(image, slot)
        finally:
            self._finish()

    def _write(self, image: np.ndarray, slot: int) -> None:
        import av

        if self._container is None and (self._stop.is_set() or not self._try_open()):
            self.dropped += 1   # closing: frames still queued for a dead receiver are not worth a reconnect
            return
        try:
            self._before_frame(slot)
            if self._first_slot is None:
                self._first_slot = slot
            vf = rgb_to_video_frame(self._reformatter, _fit(image, self.width, self.height),
                                    self.pix_fmt, ColorInfo())
            vf.pts = slot - self._first_slot
            vf.time_base = 1 / self.fps
            for packet in self._stream.encode(vf):
                self._container.mux(packet)   # PyAV connects at the first mux: open errors land here too
            self.written += 1
            self.backoff.reset()
        except (av.FFmpegError, OSError, OutputError) as exc:
            self.errors += 1
            self.dropped += 1
            self.last_error = str(exc)
            wait = self.backoff.next()
            self._retry_at = time.monotonic() + wait
            log.warning("%s: write failed (%s); re-opening in %.1f s", self.target, exc, wait)
            self._abandon()

    def _try_open(self) -> bool:
        """Open the output unless a backoff wait since the last failure is still running."""
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            self._container = self._open_container()
            self._stream = self._add_video_stream(self._container)
            from av.video.reformatter import VideoReformatter
            self._reformatter = VideoReformatter()
            self._first_slot = None
            if self.errors:
                self.reopens += 1
            return True
        except Exception as exc:  # noqa: BLE001 - an unreachable receiver is retried, never fatal
            self.errors += 1
            self.last_error = str(exc)
            self._abandon()
            self._retry_at = now + self.backoff.next()
            log.info("%s: cannot open (%s)", self.target, exc)
            return False

    def _add_video_stream(self, container):
        stream = container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        stream.codec_context.time_base = 1 / self.fps
        keyint = str(max(1, round(float(self.fps))))
        stream.options = {"preset": self.preset, "crf": str(self.crf), "tune": "zerolatency",
                          "g": keyint, "keyint_min": keyint, "bf": "0", "sc_threshold": "0"}
        return stream

    def _before_frame(self, slot: int) -> None:
        """Hook run before each frame is encoded (segment rotation)."""

    def _open_container(self):
        raise NotImplementedError

    def _finalise_container(self, ok: bool) -> None:
        """Flush the encoder and close the container (``ok``: the output is healthy)."""
        container, stream = self._container, self._stream
        self._container = self._stream = None
        if container is None:
            return
        try:
            if ok and stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
        except Exception:  # noqa: BLE001 - a dead receiver cannot take the last packets
            ok = False
        try:
            container.close()
        except Exception:  # noqa: BLE001
            pass
        self._after_close(ok)

    def _after_close(self, ok: bool) -> None:
        """Hook run after the container closed (segment rename)."""

    def _abandon(self) -> None:
        self._finalise_container(ok=False)

    def _finish(self) -> None:
        self._finalise_container(ok=True)

    def stats(self) -> dict[str, Any]:
        """``written``, ``dropped``, ``errors``, ``reopens`` and ``last_error`` as a dict."""
        return {"target": self.target, "written": self.written, "dropped": self.dropped,
                "errors": self.errors, "reopens": self.reopens, "last_error": self.last_error}


class StreamOutput(LiveOutput):
    """MPEG-TS over UDP/TCP/SRT, FLV to RTMP, or RTSP push (see the module table).

    >>> StreamOutput("udp://127.0.0.1:5000", fps=25, size=(64, 48)).format
    'mpegts'
    """

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        scheme = urlparse(self.target).scheme.lower()
        if scheme not in STREAM_FORMATS:
            raise OutputError(f"{target}: unknown stream scheme {scheme!r}; use one of "
                              f"{', '.join(sorted(STREAM_FORMATS))}")
        self.format = STREAM_FORMATS[scheme]
        self.scheme = scheme

    def _open_container(self):
        import av

        micro = str(int(self.write_timeout * 1_000_000))
        options = {"flush_packets": "1"}
        target = self.target
        if self.scheme == "udp" and "pkt_size" not in target:
            # 7 TS packets per datagram (a protocol option: it must ride on the URL).
            target += ("&" if "?" in target else "?") + "pkt_size=1316"
        elif self.scheme == "tcp" and "timeout=" not in target:
            # A peer that stops reading fails the write instead of hanging (a protocol option: on the URL).
            target += ("&" if "?" in target else "?") + f"timeout={micro}"
        elif self.scheme == "rtsp":
            options["rtsp_transport"] = "tcp"
        elif self.scheme != "udp":
            options["rw_timeout"] = micro
        return av.open(target, "w", format=self.format, options=options,
                       timeout=(self.write_timeout, self.write_timeout))


class HLSOutput(LiveOutput):
    """HLS: ``NAME.m3u8`` plus ``NAME-N.ts`` segments of ``segment_seconds``, the last ``list_size`` kept.

    >>> HLSOutput("live/cam.m3u8", fps=25, size=(64, 48)).segment_seconds  # doctest: +SKIP
    2.0
    """

    def __init__(self, target: str, *, segment_seconds: float = 2.0, list_size: int = 6,
                 **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        path = Path(self.target)
        if not path.parent.is_dir():
            raise OutputError(f"{path}: folder {path.parent} does not exist")
        self.segment_seconds = float(segment_seconds)
        self.list_size = int(list_size)

    def _open_container(self):
        import av

        path = Path(self.target)
        options = {"hls_time": f"{self.segment_seconds:g}", "hls_list_size": str(self.list_size),
                   "hls_flags": "delete_segments+temp_file+independent_segments",
                   "hls_segment_filename": str(path.with_name(f"{path.stem}-%d.ts"))}
        return av.open(str(path), "w", format="hls", options=options)


class SegmentRecorder(LiveOutput):
    """Recording to MPEG-TS segments of ``segment_seconds``, named by wall-clock start time.

    ``target`` is a folder (segments named ``%Y%m%d-%H%M%S.ts`` inside it) or a strftime
    pattern ending in ``.ts``. Each segment starts with a keyframe; it is written as
    ``.NAME.partial.ts`` and renamed when complete. ``keep`` > 0 deletes the oldest
    complete segments beyond that many (rotation). ``segments`` lists the completed files.

    >>> SegmentRecorder("rec/", fps=25, size=(64, 48)).pattern  # doctest: +SKIP
    'rec/%Y%m%d-%H%M%S.ts'
    """

    def __init__(self, target: str, *, segment_seconds: float = 60.0, keep: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        if "%" in self.target:
            pattern = Path(self.target)
        else:
            pattern = Path(self.target) / "%Y%m%d-%H%M%S.ts"
        if pattern.suffix.lower() != ".ts":
            raise OutputError(f"{target}: segmented recording writes MPEG-TS; end the pattern in .ts")
        if not pattern.parent.is_dir():
            raise OutputError(f"{target}: folder {pattern.parent} does not exist")
        if not os.access(pattern.parent, os.W_OK):
            raise OutputError(f"{target}: folder {pattern.parent} is not writable")
        self.pattern = str(pattern)
        self.segment_frames = max(1, round(float(segment_seconds) * float(self.fps)))
        self.keep = int(keep)
        self.segments: list[Path] = []
        self._segment_start_slot: int | None = None
        self._current: Path | None = None

    def _segment_name(self) -> Path:
        name = Path(datetime.now().strftime(self.pattern))
        if name == self._current or name.exists() or partial_path(name).exists():
            stem, n = name.stem, 1
            while name.exists() or partial_path(name).exists() or name == self._current:
                name = name.with_name(f"{stem}-{n}{name.suffix}")
                n += 1
        return name

    def _open_container(self):
        import av

        self._current = self._segment_name()
        self._segment_start_slot = None
        return av.open(str(partial_path(self._current)), "w", format="mpegts")

    def _before_frame(self, slot: int) -> None:
        if self._segment_start_slot is None:
            self._segment_start_slot = slot
        elif slot - self._segment_start_slot >= self.segment_frames:
            self._finalise_container(ok=True)       # completes and renames the segment
            if not self._try_open():
                raise OutputError(f"{self.target}: cannot start a new segment ({self.last_error})")
            self._segment_start_slot = slot

    def _after_close(self, ok: bool) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        tmp = partial_path(current)
        if tmp.exists():
            os.replace(tmp, current)   # a broken segment is still playable TS: keep it too
            self.segments.append(current)
        if self.keep > 0:
            while len(self.segments) > self.keep:
                old = self.segments.pop(0)
                try:
                    old.unlink()
                except OSError:
                    pass


class FileRecorder(LiveOutput):
    """Recording to one MPEG-TS file at exactly ``target`` (a ``.ts`` path, no strftime field).

    The file is written as ``.NAME.partial.ts`` beside ``target`` and renamed to ``target``
    when the output closes cleanly, as segments are: a ``NAME.ts`` that exists is a finished
    recording, never one still growing or cut by a crash. Writing under the final name would
    be playable too, but a crash would then leave a cut file that looks complete.
    Every packet goes to the operating system as it is muxed (``flush_packets``, an
    unbuffered file) and MPEG-TS needs no trailer, so after a crash or ``kill -9`` the
    partial file holds a playable recording up to the last frame encoded (only the frames
    still queued, at most ``queue_size``, are lost); it stays at ``.NAME.partial.ts`` until
    the user renames it, and a later run to the same ``target`` refuses to start while it
    is there, naming it.

    Nothing is overwritten: an existing ``target`` (or a left-over partial file) is refused
    up front, and the partial file is created exclusively. After a write error (a full
    disk) the output re-opens with backoff like every live output and appends to the same
    partial file with timestamps continuing, so an error costs the frames dropped meanwhile,
    never what was already written. ``recorded`` is ``target`` once it is in place.

    >>> FileRecorder("rec.ts", fps=25, size=(64, 48)).path  # doctest: +SKIP
    PosixPath('rec.ts')
    """

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        path = Path(self.target)
        if path.suffix.lower() != ".ts" or "%" in self.target:
            raise OutputError(f"{target}: a one-file recording is a .ts path without strftime fields")
        check_writable_dir(path.parent, for_path=path)
        if path.exists() or path.is_symlink():
            raise OutputError(f"{target}: exists; a live recording never replaces a file: "
                              "remove it or choose another name")
        if partial_path(path).exists():
            raise OutputError(f"{target}: {partial_path(path)} is left from an interrupted recording "
                              "(playable MPEG-TS); rename or remove it first")
        self.path = path
        self.recorded: Path | None = None
        self._file = None
        self._created = False          # the partial file is ours: re-opens append to it
        self._base_slot: int | None = None

    def _open_container(self):
        import av

        if self._file is None:
            # "xb": never truncate a file that appeared since the check; "ab" after a write error:
            # keep what was written.
            self._file = open(partial_path(self.path), "ab" if self._created else "xb",  # noqa: SIM115
                              buffering=0)   # lives as long as the container; closed in _after_close
            self._created = True
        try:
            return av.open(self._file, "w", format="mpegts", options={"flush_packets": "1"})
        except Exception:
            self._close_file()
            raise

    def _before_frame(self, slot: int) -> None:
        # One timeline for the whole file: after a re-open the timestamps continue.
        if self._base_slot is None:
            self._base_slot = slot
        self._first_slot = self._base_slot

    def _after_close(self, ok: bool) -> None:
        self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass

    def _finish(self) -> None:
        super()._finish()
        tmp = partial_path(self.path)
        if not self._created or not tmp.exists():
            return
        if self.path.exists() or self.path.is_symlink():
            log.warning("%s: appeared during the recording; the recording stays in %s", self.path, tmp)
            return
        try:
            os.replace(tmp, self.path)   # a recording cut by a write error is still playable TS: keep it
        except OSError as exc:
            log.warning("%s: cannot rename %s into place (%s); the recording stays there",
                        self.path, tmp, exc.strerror)
            return
        self.recorded = self.path


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The image at the output size (a source that came back at another size is resized)."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def open_output(target: str, *, fps: Fraction | int | float, size: tuple[int, int],
                segment_seconds: float = 60.0, keep: int = 0, hls_seconds: float = 2.0,
                **kwargs: Any) -> LiveOutput:
    """The live output for a destination string (see the module table); checked up front.

    A ``.ts`` path is one file (:class:`FileRecorder`) unless it holds a strftime ``%``
    field or names a folder: those are segmented (:class:`SegmentRecorder`).

    >>> open_output("udp://127.0.0.1:5000", fps=25, size=(64, 48)).format
    'mpegts'
    """
    scheme = urlparse(target).scheme.lower()
    if scheme in STREAM_FORMATS:
        return StreamOutput(target, fps=fps, size=size, **kwargs)
    if len(scheme) > 1:
        raise OutputError(f"{target}: unknown output scheme {scheme!r}; use udp, tcp, srt, rtmp, rtsp, "
                          "an .m3u8 path, a .ts file, a folder or a strftime .ts pattern")
    path = Path(target)
    if path.suffix.lower() == ".m3u8":
        return HLSOutput(target, fps=fps, size=size, segment_seconds=hls_seconds, **kwargs)
    if "%" in target or target.endswith(("/", os.sep)) or path.is_dir():
        return SegmentRecorder(target, fps=fps, size=size, segment_seconds=segment_seconds, keep=keep,
                               **kwargs)
    if path.suffix.lower() == ".ts":
        return FileRecorder(target, fps=fps, size=size, **kwargs)
    raise OutputError(f"{target}: a live output is a stream URL, an .m3u8 playlist, a .ts file, a folder or "
                      "a strftime .ts pattern for segmented recording")
