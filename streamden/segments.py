"""Resumable jobs: a long video denoised as segments, each its own file, joined at the end.

How it works (``streamden denoise IN -o OUT --resume``, or :func:`denoise_segmented`):

1. **Plan.** The video's packets are read (not decoded) to list every frame's pts and the
   keyframes. Segments are frame ranges ``[first, stop)`` of about ``job.segment_frames``
   frames, each starting at a keyframe when one is near (so decoding can seek there).
2. **Work folder.** ``.OUT.segments/`` beside the output holds one file per segment
   (``seg_00000.mkv``, same container and codec as the output) and ``manifest.json``,
   which records the source's identity (path, size, mtime), the settings, and for each
   finished segment its file, frame count and SHA-256. The manifest is replaced
   atomically after each segment, so a kill at any moment leaves a consistent one.
3. **Exactness.** FastDVDnet's output for frame ``t`` depends only on the frames
   ``t-2 .. t+2`` (reflected at the ends of the whole video) and their sigmas. Each segment
   therefore decodes 2 frames of context on each side, denoises them too, and keeps only
   its own frames, so the joined result equals an uninterrupted run frame for frame. With
   ``sigma: auto`` the per-frame estimate is smoothed by an exponential moving average,
   which depends on all earlier frames: the manifest records, per segment, the tracker's
   value after its last frame and the sigmas of its last two frames, and the next segment
   starts from them. Segments must then run in order (as resuming does); running them in
   parallel (scale-out) needs a fixed sigma, or a first pass that estimates the sigmas.
4. **Join.** Video packets of the segments are copied into the output, in order, packet
   for packet (timestamps are already those of the whole video: each segment's sink
   slots frames from the video's first frame); audio and subtitles are copied once from
   the source. The output is written under a temporary name and renamed; the work
   folder is removed after that.

Resuming checks the manifest against the source and the settings (a mismatch starts the
job over, with a warning) and each finished segment's checksum (a damaged or missing
segment is redone).

>>> report = denoise_segmented("in.mp4", "out.mp4", sigma=20)  # doctest: +SKIP
>>> report.segments_done, report.segments_skipped  # doctest: +SKIP
(4, 0)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import Cancelled, InputError, OutputError
from .graph import Graph, GraphReport, Node, SourceNode
from .io.atomic import check_output_path, commit, discard, partial_path
from .io.frame import Frame

__all__ = ["SegmentPlan", "plan_segments", "work_dir", "Manifest", "join_segments",
           "denoise_segmented", "CONTEXT"]

log = logging.getLogger(__name__)

#: Frames of context on each side of a segment: FastDVDnet's window is t-2 .. t+2.
CONTEXT = 2
MANIFEST_VERSION = 1


@dataclass
class SegmentPlan:
    """Every frame's pts (presentation order), the keyframe indices, and the segment bounds.

    ``bounds`` are ``(first, stop)`` frame ranges; ``seekable`` is false when some packet
    had no pts (then every segment decodes from the start and skips ahead).

    >>> plan = SegmentPlan(pts=list(range(10)), keyframes=[0, 5], bounds=[(0, 5), (5, 10)])
    >>> plan.frames
    10
    """

    pts: list[int]
    keyframes: list[int]
    bounds: list[tuple[int, int]]
    seekable: bool = True

    @property
    def frames(self) -> int:
        """Number of frames in the video."""
        return len(self.pts)


def plan_segments(path: str | os.PathLike, stream: int = 0, segment_frames: int = 250) -> SegmentPlan:
    """Read the packets of video stream ``stream`` (no decoding) and cut it into segments.

    A boundary goes to the first keyframe at or after each multiple of ``segment_frames``
    when that keyframe is less than half a segment away, else to the multiple itself.

    >>> plan_segments("in.mp4", segment_frames=8).bounds  # doctest: +SKIP
    [(0, 8), (8, 16)]
    """
    import av

    from .io.probe import open_input

    if segment_frames < 1:
        raise OutputError(f"job.segment_frames must be at least 1, got {segment_frames}")
    packets: list[tuple[int | None, bool]] = []
    with open_input(path) as container:
        vstream = container.streams.video[stream]
        try:
            for pkt in container.demux(vstream):
                if pkt.size:
                    packets.append((pkt.pts, bool(pkt.is_keyframe)))
        except av.FFmpegError as exc:
            raise InputError(f"{path}: cannot read the packets to plan segments ({exc})") from None
    seekable = all(pts is not None for pts, _ in packets)
    if seekable:
        order = sorted(range(len(packets)), key=lambda i: packets[i][0])
        pts = [packets[i][0] for i in order]
        keys = sorted(pos for pos, i in enumerate(order) if packets[i][1])
    else:
        pts = list(range(len(packets)))
        keys = []
    total = len(pts)
    bounds: list[tuple[int, int]] = []
    first = 0
    while first < total:
        target = first + segment_frames
        if target >= total:
            stop = total
        else:
            near = [k for k in keys if target <= k < target + segment_frames // 2]
            stop = near[0] if near else target
        bounds.append((first, stop))
        first = stop
    return SegmentPlan(pts=pts, keyframes=keys, bounds=bounds, seekable=seekable)


def work_dir(dst: str | os.PathLike) -> Path:
    """The hidden work folder of a resumable job writing ``dst``.

    >>> work_dir("videos/out.mp4").as_posix()
    'videos/.out.mp4.segments'
    """
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.segments")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    """The state of a resumable job, kept as ``manifest.json`` in its work folder.

    ``segments`` maps a segment number (as a string) to its record: ``file``, ``first``,
    ``stop``, ``frames``, ``sha256``, and for ``sigma: auto`` ``tracker`` (the smoothed
    sigma after its last frame) and ``tail_sigmas`` (the sigmas of its last two frames).

    >>> m = Manifest(source={"path": "in.mp4"}, settings={}, bounds=[[0, 8]])
    >>> m.done(0)
    False
    """

    source: dict[str, Any]
    settings: dict[str, Any]
    bounds: list[list[int]]
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    @classmethod
    def load(cls, folder: Path) -> "Manifest | None":
        """The manifest in ``folder``, or None when there is none or it cannot be read."""
        path = folder / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(**data)
        except (OSError, ValueError, TypeError):
            return None
        return manifest if manifest.version == MANIFEST_VERSION else None

    def save(self, folder: Path) -> None:
        """Write atomically (temporary file, fsync, rename): a kill leaves the old or the new one."""
        path = folder / "manifest.json"
        tmp = folder / ".manifest.json.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(asdict(self), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            discard(tmp)
            raise OutputError(f"{path}: cannot write the job manifest ({exc.strerror or exc})") from None

    def done(self, number: int) -> bool:
        """True when segment ``number`` is recorded as finished."""
        return str(number) in self.segments

    def verified(self, number: int, folder: Path) -> bool:
        """True when segment ``number`` is finished and its file is intact (checksum)."""
        record = self.segments.get(str(number))
        if record is None:
            return False
        path = folder / record["file"]
        return path.is_file() and _sha256(path) == record["sha256"]


def _source_identity(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class _RangeSource(SourceNode):
    """Frames ``[start, stop)`` of a decoder that was sought to ``start``; checks each pts."""

    def __init__(self, inner: SourceNode, plan: SegmentPlan, start: int, stop: int) -> None:
        super().__init__(name="decode")
        self.inner, self.plan, self.start, self.stop = inner, plan, start, stop

    def generate(self) -> Iterator[Frame]:
        expected = self.start
        frames = self.inner.generate()
        try:
            for frame in frames:
                if frame.index < self.start:
                    continue  # decoded from the start: frames before the context are not needed
                if self.plan.seekable and frame.pts != self.plan.pts[frame.index]:
                    raise InputError(f"{self.inner.path}: frame {frame.index} has pts {frame.pts}, the "
                                     f"plan says {self.plan.pts[frame.index]}; this file cannot be "
                                     "split exactly, run it without --resume")
                if frame.index != expected:
                    raise InputError(f"{self.inner.path}: expected frame {expected}, the decoder gave "
                                     f"{frame.index}; run it without --resume")
                expected += 1
                yield frame
                if expected >= self.stop:
                    break
        finally:
            frames.close()
        if expected < self.stop:
            raise InputError(f"{self.inner.path}: the decoder gave frames up to {expected - 1}, the "
                             f"plan has {self.stop - 1}; the file may be damaged")

    def close(self) -> None:
        self.inner.close()


class _SegmentUpload(Node):
    """Upload with the sigma rule of an uninterrupted run (see the module docstring)."""

    def __init__(self, device, sigma: float | None, smoothing: float, first: int, stop: int,
                 tracker: float | None, tail: list[float]) -> None:
        from .noise.estimate import SigmaTracker

        super().__init__(name="upload")
        self.device, self.sigma, self.first, self.stop = device, sigma, first, stop
        self.tracker = SigmaTracker(smoothing)
        self.tracker.value = tracker
        self.context = dict(zip(range(first - len(tail), first), tail))
        self.tail: dict[int, float] = {}
        self.tracker_after: float | None = None

    def process(self, frame: Frame) -> Iterable[Frame]:
        from .noise.estimate import estimate_sigma
        from .tensors import image_to_tensor

        tensor = image_to_tensor(frame.image, self.device)
        if self.sigma is not None:
            sigma = self.sigma
        elif frame.index < self.first:
            sigma = self.context[frame.index]
        else:
            sigma = self.tracker.update(estimate_sigma(tensor))
            if frame.index >= self.stop - CONTEXT and frame.index < self.stop:
                self.tail[frame.index] = sigma
            if frame.index == self.stop - 1:
                self.tracker_after = self.tracker.value
        out = frame.with_image(tensor)
        out.sigma = sigma
        yield out


class _KeepRange(Node):
    """Passes only the frames of the segment itself (context frames were for the window)."""

    def __init__(self, first: int, stop: int) -> None:
        super().__init__(name="keep")
        self.first, self.stop = first, stop

    def process(self, frame: Frame) -> Iterable[Frame]:
        if self.first <= frame.index < self.stop:
            yield frame


def join_segments(files: list[Path], dst: str | os.PathLike, *, remux_from: str | None,
                  origin: Fraction, overwrite: bool = False) -> int:
    """Concatenate segment files packet for packet into ``dst``, copying audio and subtitles
    of ``remux_from`` once; written under a temporary name and renamed. Returns the number
    of video packets written.

    >>> join_segments([Path("seg_00000.mkv"), Path("seg_00001.mkv")], "out.mkv",
    ...               remux_from="in.mkv", origin=Fraction(0))  # doctest: +SKIP
    16
    """
    import av

    from .io.sink import CONTAINERS, _Remuxer

    dst = Path(dst)
    fmt = CONTAINERS[dst.suffix.lower()]
    tmp = partial_path(dst)
    discard(tmp)
    count = 0
    remux = None
    try:
        with av.open(str(tmp), "w", format=fmt) as out:
            with av.open(str(files[0])) as first:
                template = first.streams.video[0]
                vout = out.add_stream_from_template(template)
                vout.time_base = template.time_base
                extradata = template.codec_context.extradata
            if remux_from is not None:
                remux = _Remuxer(remux_from, out, origin, dst)
            last_dts = None
            for path in files:
                with av.open(str(path)) as seg:
                    vin = seg.streams.video[0]
                    if vin.codec_context.extradata != extradata:
                        raise OutputError(f"{path}: its codec set-up differs from the first segment's; "
                                          "the segments cannot be joined (delete the work folder and rerun)")
                    for pkt in seg.demux(vin):
                        if pkt.dts is None and pkt.pts is None:
                            continue
                        ts = pkt.dts if pkt.dts is not None else pkt.pts
                        when = Fraction(ts) * pkt.time_base
                        if last_dts is not None and when <= last_dts:
                            raise OutputError(f"{path}: its timestamps overlap the previous segment's; "
                                              "the segments cannot be joined")
                        last_dts = when
                        if remux is not None:
                            remux.mux_until(out, when)
                        pkt.stream = vout
                        out.mux(pkt)
                        count += 1
            if remux is not None:
                remux.mux_until(out, None)
    except av.FFmpegError as exc:
        discard(tmp)
        raise OutputError(f"{dst}: could not join the segments ({exc})") from None
    except OSError as exc:
        discard(tmp)
        raise OutputError(f"{dst}: could not join the segments ({exc.strerror or exc})") from None
    except BaseException:
        discard(tmp)
        raise
    finally:
        if remux is not None:
            remux.close()
    commit(tmp, dst)
    return count


def denoise_segmented(src: str | Path, dst: str | Path, *, config, stream: int | None = None,
                      overwrite: bool = False, handle_signals: bool = True,
                      on_frame: Callable[[Frame], None] | None = None,
                      on_start: Callable[[Any], None] | None = None,
                      after_segment: Callable[[int], None] | None = None) -> GraphReport:
    """Denoise ``src`` into ``dst`` as a resumable job (see the module docstring).

    ``config`` is a :class:`~streamden.config.DenoiseConfig`. Finished segments found in
    the work folder are kept (checksums verified), the rest are denoised, then everything
    is joined. ``after_segment(number)`` is called after each segment is recorded (tests
    use it to interrupt a job at a known point). On Ctrl-C the finished segments stay and
    :class:`~streamden.errors.Cancelled` says to rerun with ``--resume``. Returns the
    report of the last segment run with ``segments_done``, ``segments_skipped`` and
    ``input_problems`` added.

    >>> from streamden.config import make_config
    >>> denoise_segmented("in.mp4", "out.mkv", config=make_config(sigma=20))  # doctest: +SKIP
    """
    from .config import to_dict
    from .io.sink import VideoFileSink
    from .io.source import DecodeProblems, open_source
    from .pipeline import DownloadNode, load_network, make_denoise_node, parse_fps, parse_sigma
    from .tensors import resolve_device

    src, dst = str(src), Path(dst)
    if not Path(src).is_file():
        raise InputError(f"{src}: --resume needs a video file (image sequences are not segmented)")
    check_output_path(dst, overwrite=overwrite, inputs=(src,))
    sigma = parse_sigma(config.noise.sigma)
    decode = dict(isolate=config.input.isolate, max_corrupt_fraction=config.input.max_corrupt_fraction,
                  max_pixels=config.input.max_pixels, on_crash=config.input.on_crash,
                  stall_seconds=config.input.stall_seconds, hwaccel=config.input.hwaccel)
    probe_source = open_source(src, stream=stream, **dict(decode, isolate=False))
    fps = parse_fps(config.encode.fps) or probe_source.fps
    plan = plan_segments(src, probe_source.stream_number, config.job.segment_frames)
    if not plan.frames:
        raise InputError(f"{src}: no video packets to denoise")
    origin = Fraction(plan.pts[0]) * probe_source.time_base
    # Everything that can be refused is checked before the work folder exists: the output
    # (codec, container, copied streams: a sink that is never opened) and the model.
    VideoFileSink(dst, fps=fps, width=probe_source.width, height=probe_source.height,
                  bit_depth=probe_source.bit_depth, color=probe_source.color, codec=config.encode.codec,
                  crf=config.encode.crf, preset=config.encode.preset, remux_from=src, overwrite=overwrite)
    device = resolve_device(config.model.device)
    model = load_network(config, device)
    folder = work_dir(dst)
    settings = {"config": to_dict(config), "stream": stream, "fps": str(fps), "output": dst.suffix.lower()}
    identity = _source_identity(src)
    manifest = Manifest.load(folder) if folder.is_dir() else None
    if manifest is not None and (manifest.source != identity or manifest.settings != settings
                                 or manifest.bounds != [list(b) for b in plan.bounds]):
        log.warning("%s: the unfinished job there was for another input or other settings; starting over",
                    folder)
        manifest = None
    if manifest is None:
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.mkdir()
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the work folder ({exc.strerror})") from None
        manifest = Manifest(source=identity, settings=settings, bounds=[list(b) for b in plan.bounds])
        manifest.save(folder)
    if on_start:
        on_start(probe_source)

    ext = dst.suffix.lower()
    files: list[Path] = []
    problems = DecodeProblems()
    report: GraphReport | None = None
    done = skipped = 0
    started = time.monotonic()
    for number, (first, stop) in enumerate(plan.bounds):
        name = f"seg_{number:05d}{ext}"
        files.append(folder / name)
        if manifest.verified(number, folder):
            skipped += 1
            continue
        previous = manifest.segments.get(str(number - 1), {}) if number else {}
        if number and sigma is None and "tracker" not in previous:
            raise OutputError(f"{folder}: segment {number - 1} has no recorded noise level; "
                              "delete the work folder and rerun")
        start, end = max(0, first - CONTEXT), min(plan.frames, stop + CONTEXT)
        seek = plan.pts[start] if start > 0 and plan.seekable else None
        inner = open_source(src, stream=stream, seek_pts=seek, first_index=start if seek is not None else 0,
                            rotation=probe_source.rotation, **decode)
        upload = _SegmentUpload(device, sigma, config.noise.smoothing, first, stop,
                                previous.get("tracker"), previous.get("tail_sigmas", []))
        sink = VideoFileSink(folder / name, fps=fps, width=probe_source.width, height=probe_source.height,
                             bit_depth=probe_source.bit_depth, color=probe_source.color,
                             codec=config.encode.codec, crf=config.encode.crf,
                             preset=config.encode.preset, overwrite=True, source_path=src, origin=origin)
        source = _RangeSource(inner, plan, start, end)
        nodes = [source, upload,
                 make_denoise_node(config, device, model),   # a fresh aligner: no flow cache carried over
                 _KeepRange(first, stop), DownloadNode(), sink]
        try:
            report = Graph(nodes, queue_size=config.graph.queue_size).run(
                handle_signals=handle_signals, on_item=on_frame)
        except Cancelled as exc:
            discard(folder / name)  # half a segment is of no use: it is redone on resume
            raise Cancelled(f"interrupted in segment {number + 1} of {len(plan.bounds)}; the "
                            f"{len(manifest.segments)} finished segments are kept in {folder}: rerun "
                            "with --resume to continue") from exc
        except BaseException:
            discard(folder / name)
            raise
        _merge(problems, getattr(inner, "problems", None))
        record = {"file": name, "first": first, "stop": stop, "frames": sink.frames_written,
                  "sha256": _sha256(folder / name)}
        if sigma is None:
            record["tracker"] = upload.tracker_after
            record["tail_sigmas"] = [upload.tail[i] for i in sorted(upload.tail)]
        manifest.segments[str(number)] = record
        manifest.save(folder)
        done += 1
        if after_segment is not None:
            after_segment(number)
    join_segments(files, dst, remux_from=src, origin=origin, overwrite=overwrite)
    shutil.rmtree(folder, ignore_errors=True)
    if report is None:  # every segment was already done: only the join ran
        report = GraphReport(nodes=[], wall_seconds=0.0, outcome="complete")
    report.wall_seconds = time.monotonic() - started
    report.segments_done = done  # type: ignore[attr-defined]
    report.segments_skipped = skipped  # type: ignore[attr-defined]
    report.input_problems = problems  # type: ignore[attr-defined]
    return report


def _merge(total, part) -> None:
    if part is None:
        return
    for kind, count in part.counts.items():
        total.counts[kind] = total.counts.get(kind, 0) + count
    total.messages += part.messages[: max(0, 20 - len(total.messages))]
    total.frames += part.frames
