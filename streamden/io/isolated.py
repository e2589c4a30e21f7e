"""Decode in a child process, so that a decoder crash cannot take the job down.

FFmpeg is C: on some damaged files a decoder can crash the whole process with a signal
(a segfault), which no ``try``/``except`` catches. :class:`IsolatedVideoSource` runs
:class:`~streamden.io.source.VideoFileSource` in a child process and takes its frames
through shared memory (a ring of a few frame-sized slots; a pipe carries the small
messages and hands slots back). If the child dies, the parent names the file, the frame
and the signal, and then either ends the stream cleanly with the frames it got
(``on_crash="finish"``, the default) or raises :class:`~streamden.errors.InputError`
(``"stop"``). A child silent for ``stall_seconds`` is killed the same way, so a decoder
that hangs cannot hang the job.

Children start from a fork server (one clean process started once, which imports PyAV
and numpy and then forks a child per file in a few milliseconds); where there is no
fork server (not on Linux), they are spawned. What stays in the parent: probing the
headers and, for MP4/MOV, decoding the first frame to read its display rotation.

It is the default for files (``input.isolate``): ``benchmarks/decode_isolation.py`` finds
it decodes 720p H.264 at 0.4-0.6x the in-process rate on two busy cores (the frame is
copied twice and the processes take turns), i.e. still 70-80 frames/s, far above what the
network denoises per second; ``--no-isolate`` is there for decode-bound uses.

>>> src = IsolatedVideoSource("clip.mp4")  # doctest: +SKIP
>>> src.open(); frames = list(src.generate()); src.close()  # doctest: +SKIP
>>> len(frames), src.problems.summary()  # doctest: +SKIP
(12, 'no problems')
"""
from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing import shared_memory
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError, InputError
from ..graph.node import SourceNode
from .frame import Frame
from .source import DecodeProblems, VideoFileSource, _fmt_time

__all__ = ["IsolatedVideoSource", "CRASH_ENV"]

log = logging.getLogger(__name__)

#: Tests only: the child kills itself with SIGSEGV before sending this frame index
#: ("7"), or stops answering there ("hang:7").
CRASH_ENV = "STREAMDEN_TEST_DECODER_CRASH_AT"

_SLOTS = 8                  # frames in flight between child and parent ...
_SLOT_BUDGET = 256 << 20    # ... but at most this much shared memory (4K 16-bit: 5 slots)
_context = None


def _mp_context():
    global _context
    if _context is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            _context = multiprocessing.get_context("forkserver")
            # What a child imports, once in the server rather than per child (PyAV + OpenCV: ~0.4 s).
            _context.set_forkserver_preload(["av", "av.video.reformatter", "streamden.io.isolated",
                                             "streamden.io.sequence"])
        else:
            _context = multiprocessing.get_context("spawn")
    return _context


def _attach(name: str) -> shared_memory.SharedMemory:
    """Attach to the parent's shared memory without registering it with a resource tracker:
    the parent owns and unlinks it (registering would also start a tracker process here,
    which costs about half a second per child)."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def _child(conn, shm_name: str, slot_bytes: int, slots: int, path: str, options: dict,
           crash_at: int | None, hang_at: int | None = None) -> None:
    """The child's body: decode, copy each frame into a free slot, describe it on the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    shm = _attach(shm_name)
    source = None
    try:
        source = VideoFileSource(path, **options)
        free = list(range(slots))
        for frame in source.generate():
            if crash_at is not None and frame.index >= crash_at:
                os.kill(os.getpid(), signal.SIGSEGV)
            if hang_at is not None and frame.index >= hang_at:
                time.sleep(3600)
            while not free:
                message = conn.recv()
                if message == "stop":
                    return
                free.append(message)
            slot = free.pop()
            image = np.ascontiguousarray(frame.image)
            view = np.ndarray(image.shape, image.dtype, buffer=shm.buf, offset=slot * slot_bytes)
            view[...] = image
            del view
            conn.send(("frame", slot, image.shape, image.dtype.str, frame.pts, frame.time_base,
                       frame.index, frame.bit_depth, frame.color, frame.new_sequence,
                       source.problems.to_dict()))
        conn.send(("end", source.problems.to_dict()))
    except InputError as exc:
        conn.send(("error", str(exc), source.problems.to_dict() if source else {}))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a decode failure
        conn.send(("error", f"{path}: decoding failed ({type(exc).__name__}: {exc})",
                   source.problems.to_dict() if source else {}))
    finally:
        if source is not None:
            source.close()
        shm.close()
        conn.close()


@contextlib.contextmanager
def _main_not_imported():
    """Start children without re-running the caller's script.

    multiprocessing re-imports a ``__main__`` that was run as a script in every spawned or
    fork-server child, which fails (or runs the script again) when it lacks an
    ``if __name__ == "__main__"`` guard. The child needs nothing from it: marking
    ``__main__`` as a module named "__main__" makes multiprocessing skip that import.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


class IsolatedVideoSource(SourceNode):
    """:class:`~streamden.io.source.VideoFileSource` decoding in a child process.

    Takes the same arguments (``stream``, ``max_corrupt_fraction``, ``max_pixels``,
    ``seek_pts``, ``first_index``, ...) plus ``on_crash`` ("finish" or "stop") and
    ``stall_seconds``, and has the same attributes, known before decoding: ``path``,
    ``width``, ``height``, ``fps``, ``time_base``, ``bit_depth``, ``color``,
    ``frame_count``, ``estimated_frame_count``, ``info``, ``rotation``; after the run
    ``problems`` (a :class:`~streamden.io.source.DecodeProblems`) tells what happened,
    a crash included. ``crash_at`` and ``hang_at`` are for tests: the child kills itself
    with SIGSEGV, or stops answering, at that frame (also read from the
    ``STREAMDEN_TEST_DECODER_CRASH_AT`` environment variable: "7" or "hang:7").

    >>> src = IsolatedVideoSource("clip.mp4", on_crash="stop")  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, stream: int | None = None, *,
                 on_crash: str = "finish", stall_seconds: float = 60.0,
                 crash_at: int | None = None, hang_at: int | None = None, name: str | None = None,
                 **options: Any) -> None:
        super().__init__(name=name or "VideoFileSource")  # it stands in for one
        if on_crash not in ("finish", "stop"):
            raise ConfigError(f"input.on_crash must be 'finish' or 'stop', got {on_crash!r}")
        # Probing reads headers only, in this process; decoding happens in the child.
        probe_only = VideoFileSource(path, stream, **options)
        for attr in ("path", "stream_number", "width", "height", "fps", "time_base", "bit_depth",
                     "color", "frame_count", "estimated_frame_count", "info", "rotation",
                     "pix_fmt", "first_index", "hwaccel_active", "decoder_name"):
            setattr(self, attr, getattr(probe_only, attr))
        # The child decodes as decided here: "auto" is settled once, in this process.
        self.options = dict(options, stream=stream, rotation=probe_only.rotation,
                            hwaccel="cuda" if probe_only.hwaccel_active else "none")
        self.on_crash = on_crash
        self.stall_seconds = float(stall_seconds)
        env = os.environ.get(CRASH_ENV, "")
        self.crash_at = crash_at if crash_at is not None else (int(env) if env.isdigit() else None)
        self.hang_at = hang_at if hang_at is not None else (
            int(env[5:]) if env.startswith("hang:") and env[5:].isdigit() else None)
        self.problems = DecodeProblems()
        self.crashed: str | None = None   # what killed the child, when it died
        self._process = None
        self._conn = None
        self._shm: shared_memory.SharedMemory | None = None

    def close(self) -> None:
        """Stop the child (if still running) and free the shared memory; safe to call twice."""
        process, self._process = self._process, None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.send("stop")
            except OSError:
                pass
        if process is not None:
            process.join(0.5)
            if process.is_alive():
                process.kill()
                process.join(5)
        if conn is not None:
            conn.close()
        shm, self._shm = self._shm, None
        if shm is not None:
            shm.close()
            try:
                shm.unlink()
            except FileNotFoundError:
                pass

    def _start(self) -> None:
        ctx = _mp_context()
        itemsize = 2 if self.bit_depth > 8 else 1
        slot_bytes = self.width * self.height * 3 * itemsize
        slots = max(2, min(_SLOTS, _SLOT_BUDGET // max(1, slot_bytes)))
        self._shm = shared_memory.SharedMemory(create=True, size=max(1, slot_bytes * slots))
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._process = ctx.Process(
            target=_child, name="streamden-decoder", daemon=True,
            args=(child_conn, self._shm.name, slot_bytes, slots, self.path, self.options, self.crash_at,
                  self.hang_at))
        with _main_not_imported():
            self._process.start()
        child_conn.close()  # only the child holds its end now: its death closes the pipe

    def _receive(self, last_index: int, last_time: float | None):
        """The child's next message, or None when it died or stalled (recorded as a crash)."""
        conn, process = self._conn, self._process
        deadline = time.monotonic() + self.stall_seconds
        while True:
            if self.stopping:
                return ("stopped",)
            try:
                if conn.poll(0.1):
                    return conn.recv()
            except (EOFError, OSError):
                pass  # the pipe closed: the child is gone
            else:
                if process.is_alive() and time.monotonic() < deadline:
                    continue
            process.join(1.0)
            if process.is_alive():  # stalled: stop it the hard way
                process.kill()
                process.join(5)
                why = f"stalled for {self.stall_seconds:g} s and was stopped"
            else:
                why = f"crashed ({_signal_name(process.exitcode)})"
            where = (f"at frame {last_index + 1}" if last_time is None
                     else f"at frame {last_index + 1} (after {_fmt_time(last_time)})")
            self.crashed = f"{self.path}: the video decoder {why} {where}"
            return None

    def generate(self) -> Iterator[Frame]:
        """Yield the frames the child decodes; see the class docstring for crashes and stalls.

        >>> [f.index for f in IsolatedVideoSource("clip.mp4").generate()][:3]  # doctest: +SKIP
        [0, 1, 2]
        """
        self.close()
        self.problems = DecodeProblems()
        self.crashed = None
        try:
            self._start()
        except OSError as exc:  # no shared memory or no process to be had: decode here instead
            self.close()
            log.warning("%s: cannot start the isolated decoder (%s); decoding in this process",
                        self.path, exc.strerror or exc)
            inner = VideoFileSource(self.path, **self.options)
            try:
                yield from inner.generate()
            finally:
                self.problems = inner.problems
                inner.close()
            return
        last_index, last_time = self.first_index - 1, None
        try:
            while True:
                message = self._receive(last_index, last_time)
                if message is None:
                    self.problems.add("crashed", self.crashed)
                    if self.on_crash == "stop" or last_index < self.first_index:
                        raise InputError(f"{self.crashed}; {last_index + 1 - self.first_index} "
                                         f"frames were decoded before")
                    log.warning("%s; finishing with the %d frames decoded before", self.crashed,
                                last_index + 1 - self.first_index)
                    return
                kind = message[0]
                if kind == "stopped":
                    return
                if kind == "end":
                    self._merge(message[1])
                    return
                if kind == "error":
                    self._merge(message[2])
                    raise InputError(message[1])
                (_, slot, shape, dtype, pts, time_base, index, bit_depth, color, new_sequence,
                 problems) = message
                self._merge(problems)
                itemsize = np.dtype(dtype).itemsize
                offset = slot * self.width * self.height * 3 * itemsize
                image = np.ndarray(shape, np.dtype(dtype), buffer=self._shm.buf, offset=offset).copy()
                try:
                    self._conn.send(slot)  # the copy is ours: the slot may be refilled
                except OSError:
                    pass  # the child has finished (its end message is still to be read) or died
                last_index = index
                last_time = None if pts is None or time_base is None else float(pts * time_base)
                yield Frame(image=image, pts=pts, time_base=time_base, index=index,
                            bit_depth=bit_depth, color=color, new_sequence=new_sequence)
        finally:
            self.close()

    def _merge(self, data: dict) -> None:
        crashed = self.problems.counts.get("crashed", 0)
        messages = [m for m in self.problems.messages if "decoder crashed" in m or "stalled" in m]
        self.problems = DecodeProblems.from_dict(data) if data else DecodeProblems()
        if crashed:
            self.problems.counts["crashed"] = crashed
            self.problems.messages += messages
