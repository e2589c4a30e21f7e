"""The job layer: a long video denoised as segments, each its own file, joined at the end.

``--resume`` (:func:`denoise_segmented`, segments in order, here) and Ray
(:mod:`streamden.distributed`, segments in parallel) are two runners over the same pieces:
:class:`SegmentJob` (checks, plan, work folder, manifest, join) and :func:`denoise_segment`
(one segment). Either can continue the other's job.

How it works (``streamden denoise IN -o OUT --resume``, or :func:`denoise_segmented`):

1. **Plan.** The video's packets are read (not decoded) to list every frame's pts and the
   keyframes. Segments are frame ranges ``[first, stop)`` of about ``job.segment_frames``
   frames, each starting at a keyframe when one is near (so decoding can seek there).
2. **Work folder.** ``.OUT.segments/`` beside the output holds one file per segment
   (``seg_00000.mkv``, same container and codec as the output; for an image-sequence
   output ``out/%05d.png``, a folder ``seg_00000/`` of images numbered as in the final
   output) and ``manifest.json``,
   which records the source's identity (path, size, mtime), the settings, and for each
   finished segment its file, frame count and SHA-256. The manifest is replaced
   atomically after each segment, so a kill at any moment leaves a consistent one.
3. **Exactness.** FastDVDnet's output for frame ``t`` depends only on the frames
   ``t-2 .. t+2`` (reflected at the ends of the whole video) and their sigmas; the Wiener
   pass over it (``model.refine``) also reads the outputs of ``t-2`` and ``t-1``, so frame
   ``t`` depends on the frames ``t-4 .. t+2``. Each segment therefore decodes
   ``CONTEXT_BEFORE`` (4) frames of context before it and ``CONTEXT`` (2) after, denoises
   them too, and keeps only its own frames, so the joined result equals an uninterrupted
   run frame for frame. With
   ``sigma: auto`` the per-frame estimate is smoothed by an exponential moving average,
   which depends on all earlier frames: the manifest records, per segment, the tracker's
   value after its last frame and the sigmas of its last four frames, and the next segment
   starts from them. Segments must then run in order (as resuming does); running them in
   parallel (scale-out) needs a fixed sigma, or a first pass that estimates the sigmas.
4. **Join.** Video packets of the segments are copied into the output, in order, packet
   for packet (timestamps are already those of the whole video: each segment's sink
   slots frames from the video's first frame); audio and subtitles are copied once from
   the source. The output is written under a temporary name and renamed; the work
   folder is removed after that. Images are moved into the output folder, each under its
   final name, so the result equals a plain run's file for file.

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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .errors import Cancelled, ConfigError, InputError, OutputError
from .graph import Graph, GraphReport, Node, SourceNode
from .io.atomic import check_output_path, commit, discard, partial_path
from .io.frame import Frame

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["SegmentPlan", "plan_segments", "work_dir", "Manifest", "join_segments", "JobSpec", "SegmentJob",
           "job_settings", "checksum", "denoise_segment", "estimate_segment", "segment_frames", "denoise_segmented", "CONTEXT",
           "CONTEXT_BEFORE"]

log = logging.getLogger(__name__)

#: Frames of context after a segment: FastDVDnet's window is t-2 .. t+2.
CONTEXT = 2
#: Frames of context before a segment: the window, and the two earlier outputs the Wiener pass
#: reads (:mod:`streamden.models.refine`).
CONTEXT_BEFORE = 4
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
    >>> work_dir("frames/%05d.png").as_posix()
    'frames/._05d.png.segments'
    """
    dst = Path(dst)
    # no printf field in a folder name: image patterns are matched on their file name only
    return dst.with_name(f".{dst.name.replace('%', '_')}.segments")


def checksum(path: Path) -> str:
    """SHA-256 of a segment file, or of a segment folder's files (names and contents, in order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    """The state of a resumable job, kept as ``manifest.json`` in its work folder.

    ``segments`` maps a segment number (as a string) to its record: ``file``, ``first``,
    ``stop``, ``frames``, ``sha256``, and for ``sigma: auto`` ``tracker`` (the smoothed
    sigma after its last frame, :meth:`~streamden.noise.estimate.SigmaTracker.state`) and
    ``tail_sigmas`` (the sigmas of its last ``CONTEXT_BEFORE`` frames, :func:`~streamden.noise.estimate.level_to_json`).

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
        return path.exists() and checksum(path) == record["sha256"]


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
        from .noise.estimate import SigmaTracker, level_from_json

        from .transfer import HostToDevice

        super().__init__(name="upload")
        self.device, self.sigma, self.first, self.stop = device, sigma, first, stop
        self.to_device = HostToDevice(device)
        self.tracker = SigmaTracker(smoothing)
        self.tracker.restore(tracker)
        self.context = dict(zip(range(first - len(tail), first), map(level_from_json, tail)))
        self.tail: dict[int, float] = {}
        self.tracker_after: float | None = None

    def process(self, frame: Frame) -> Iterable[Frame]:
        from .noise.estimate import estimate_level

        tensor = self.to_device(frame.image)
        if self.sigma is not None:
            sigma = self.sigma
        elif frame.index < self.first:
            sigma = self.context[frame.index]
        else:
            sigma = self.tracker.update(estimate_level(tensor))
            if frame.index == self.stop - 1:
                self.tracker_after = self.tracker.state()
        if self.sigma is None and self.stop - CONTEXT_BEFORE <= frame.index < self.stop:
            self.tail[frame.index] = sigma    # a segment shorter than the context passes on earlier ones too
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



class _GivenSigmaUpload(Node):
    """Upload with the sigmas worked out beforehand for frames ``start, start + 1, ...`` (Ray's
    first pass folds every frame's estimate in order, so segments can run in parallel)."""

    def __init__(self, device, start: int, sigmas: list[float]) -> None:
        from .transfer import HostToDevice

        super().__init__(name="upload")
        self.device, self.start, self.sigmas = device, start, sigmas
        self.to_device = HostToDevice(device)

    def process(self, frame: Frame) -> Iterable[Frame]:
        out = frame.with_image(self.to_device(frame.image))
        out.sigma = self.sigmas[frame.index - self.start]
        yield out


def _source_identity(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def segment_frames(path: Path) -> int:
    """Frames in a finished segment: video packets of a segment file, images of a segment folder.

    >>> segment_frames(Path("seg_00000.mkv"))  # doctest: +SKIP
    4
    """
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file())
    import av

    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)


@dataclass
class JobSpec:
    """What a segment needs to know about its job; plain data, so Ray can send it to workers.

    ``image_name`` is the file-name pattern (``%05d.png``) when the output is an image
    sequence: a segment then writes a folder of images numbered as in the final output.
    """

    src: str
    folder: str
    ext: str
    stream: int | None
    config: Any                      # DenoiseConfig
    fps: Fraction
    width: int
    height: int
    bit_depth: int
    color: Any
    rotation: Any
    origin: Fraction
    fixed_sigma: float | None
    image_name: str | None = None

    def segment_name(self, number: int) -> str:
        """``seg_00003.mkv`` (a file) or ``seg_00003`` (a folder of images)."""
        return f"seg_{number:05d}" + ("" if self.image_name else self.ext)

    def open_segment_sink(self, number: int, first: int):
        """The sink of segment ``number`` (frames from ``first``), in the work folder."""
        from .io.sink import ImageSequenceSink, VideoFileSink

        path = Path(self.folder) / self.segment_name(number)
        if self.image_name:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            return ImageSequenceSink(str(path / self.image_name), bit_depth=self.bit_depth, overwrite=True,
                                     start_number=first)
        return VideoFileSink(path, fps=self.fps, width=self.width, height=self.height, bit_depth=self.bit_depth,
                             color=self.color, codec=self.config.encode.codec, crf=self.config.encode.crf,
                             preset=self.config.encode.preset, overwrite=True, source_path=self.src,
                             origin=self.origin)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        discard(path)


def estimate_segment(spec: JobSpec, plan: SegmentPlan, first: int, stop: int) -> list[float | None]:
    """The raw noise estimates of frames ``[first, stop)``, as an uninterrupted run's upload
    computes them (on the CPU): the first pass of ``sigma: auto`` when segments run in parallel.
    None marks a frame without a usable estimate (black, flat), which the tracker skips.

    >>> estimate_segment(job.spec, job.plan, 0, 8)  # doctest: +SKIP
    [20.1, 19.8, ...]
    """
    from .noise.estimate import estimate_level
    from .tensors import image_to_tensor

    _, source = _range_source(spec, plan, first, stop)
    try:
        return [estimate_level(image_to_tensor(frame.image, "cpu")) for frame in source.generate()]
    finally:
        source.close()


def _range_source(spec: JobSpec, plan: SegmentPlan, start: int, end: int) -> tuple[SourceNode, _RangeSource]:
    from .io.source import open_source
    from .pipeline import decode_options

    seek = plan.pts[start] if start > 0 and plan.seekable else None
    inner = open_source(spec.src, stream=spec.stream, seek_pts=seek, first_index=start if seek is not None else 0,
                        rotation=spec.rotation, **decode_options(spec.config))
    return inner, _RangeSource(inner, plan, start, end)


def denoise_segment(spec: JobSpec, plan: SegmentPlan, number: int, engine: "Engine", *,
                    sigmas: list[float] | None = None, tracker: float | None = None, tail: list[float] = (),
                    handle_signals: bool = False, on_frame: Callable[[Frame], None] | None = None,
                    tap: Node | None = None) -> dict[str, Any]:
    """Denoise segment ``number`` (its frames, ``CONTEXT_BEFORE`` before them and ``CONTEXT`` after) into its file or
    folder in the work folder and return its manifest record.

    The sigma follows an uninterrupted run: fixed (``spec.fixed_sigma``), or ``sigmas`` worked
    out beforehand for every decoded frame (Ray), or estimated here and smoothed from the
    previous segment's ``tracker`` value and ``tail`` sigmas (``--resume``, in order); the record
    then carries this segment's ``tracker`` and ``tail_sigmas``. ``engine`` is the job's
    :class:`~streamden.engine.Engine` (each segment gets a stream of its own: no flow cache
    carried over).
    A segment cut short is removed (it is redone on resume). ``tap`` is a pass-through node
    placed right after the source (the preview's, :class:`~streamden.preview.file.PreviewTap`).

    >>> record = denoise_segment(job.spec, job.plan, 0, Engine(job.config))  # doctest: +SKIP
    >>> record["frames"]  # doctest: +SKIP
    8
    """
    from .pipeline import DenoiseNode, DownloadNode

    cpu_started = time.process_time()
    config = spec.config
    device = engine.device
    first, stop = plan.bounds[number]
    start, end = max(0, first - CONTEXT_BEFORE), min(plan.frames, stop + CONTEXT)
    inner, source = _range_source(spec, plan, start, end)
    if sigmas is not None:
        upload: Node = _GivenSigmaUpload(device, start, sigmas)
    else:
        upload = _SegmentUpload(device, spec.fixed_sigma, config.noise.smoothing, first, stop, tracker, list(tail))
    path = Path(spec.folder) / spec.segment_name(number)
    sink = spec.open_segment_sink(number, first)
    nodes = [source, *([tap] if tap is not None else []), upload, DenoiseNode(engine), _KeepRange(first, stop),
             DownloadNode(), sink]
    try:
        report = Graph(nodes, queue_size=config.graph.queue_size).run(handle_signals=handle_signals,
                                                                      on_item=on_frame)
    except BaseException:
        _remove(path)  # half a segment is of no use: it is redone on resume
        raise
    record: dict[str, Any] = {"file": path.name, "first": first, "stop": stop, "frames": sink.frames_written,
                              "sha256": checksum(path)}
    if spec.fixed_sigma is None and sigmas is None:
        from .noise.estimate import level_to_json

        record["tracker"] = upload.tracker_after
        record["tail_sigmas"] = [level_to_json(upload.tail[i]) for i in sorted(upload.tail)]
    record["_report"] = report                          # for the caller; never saved
    record["_problems"] = getattr(inner, "problems", None)
    record["_cpu_seconds"] = time.process_time() - cpu_started
    return record


def job_settings(config, stream: int | None, fps: Fraction, dst: str | Path) -> dict[str, Any]:
    """The settings a manifest records: a job continues only with the very same ones, so
    ``--resume`` and Ray, which both call this, can continue each other's jobs.

    >>> from streamden.config import make_config
    >>> job_settings(make_config(sigma=20), None, Fraction(25), "out.mkv")["output"]
    '.mkv'
    """
    from .config import to_dict

    return {"config": to_dict(config), "stream": stream, "fps": str(fps), "output": Path(dst).suffix.lower()}


class SegmentJob:
    """One resumable job: checks, plan, spec, work folder and manifest, and the final join.

    Constructing it checks everything that can be refused (input, output, codec, container)
    and plans the segments, without touching the disk; :meth:`open_folder` then creates the
    work folder or takes up an unfinished job's; :meth:`record` adds a finished segment to the
    manifest; :meth:`finish` joins the segments into the output. The output is a video file
    (segments are files, joined packet for packet, audio copied once) or an image sequence
    (segments are folders of images numbered as in the final output, moved into place).

    >>> job = SegmentJob("in.mp4", "out.mkv", make_config(sigma=20))  # doctest: +SKIP
    >>> job.open_folder(); job.pending  # doctest: +SKIP
    [0, 1, 2]
    """

    def __init__(self, src: str | Path, dst: str | Path, config, stream: int | None = None,
                 overwrite: bool = False, *, runner: str = "--resume") -> None:
        from .io.sink import ImageSequenceSink, open_sink
        from .io.source import open_source
        from .pipeline import decode_options, parse_fps, parse_sigma

        self.src, self.dst, self.config, self.overwrite = str(src), Path(dst), config, overwrite
        if config.adapt.enabled:   # each segment would adapt on its own: one model per job instead
            raise ConfigError(f"--adapt does not combine with {runner}: adapt once with `streamden adapt {self.src} "
                              f"-o cam.safetensors`, then pass --model cam.safetensors")
        if not Path(self.src).exists():
            raise InputError(f"{self.src}: no such file")
        if not Path(self.src).is_file():
            raise InputError(f"{self.src}: {runner} splits video files; image sequences are not split "
                             f"(run it without {runner})")
        sigma = parse_sigma(config.noise.sigma)
        probe = open_source(self.src, stream=stream, **dict(decode_options(config), isolate=False))
        fps = parse_fps(config.encode.fps) or probe.fps
        # The output is refused here if it is wrong (a sink that is never opened), before any
        # work folder exists; a video file is also checked against the input.
        self.sink_check = open_sink(str(dst), fps=fps, width=probe.width, height=probe.height,
                                    bit_depth=probe.bit_depth, color=probe.color, codec=config.encode.codec,
                                    crf=config.encode.crf, preset=config.encode.preset, remux_from=self.src,
                                    overwrite=overwrite)
        image_name = None
        if isinstance(self.sink_check, ImageSequenceSink):
            if self.sink_check.single:
                raise OutputError(f"{dst}: one image cannot hold a video; give a pattern such as "
                                  f"out/%05d.{self.sink_check.ext}")
            image_name = os.path.basename(self.sink_check.pattern)
        else:
            check_output_path(self.dst, overwrite=overwrite, inputs=(self.src,))
        self.plan = plan_segments(self.src, probe.stream_number, config.job.segment_frames)
        if not self.plan.frames:
            raise InputError(f"{self.src}: no video packets to denoise")
        self.folder = work_dir(self.dst)
        self.spec = JobSpec(src=os.path.abspath(self.src), folder=str(self.folder.resolve()),
                            ext=self.dst.suffix.lower(), stream=stream, config=config, fps=fps,
                            width=probe.width, height=probe.height, bit_depth=probe.bit_depth, color=probe.color,
                            rotation=probe.rotation, origin=Fraction(self.plan.pts[0]) * probe.time_base,
                            fixed_sigma=sigma, image_name=image_name)
        self.settings = job_settings(config, stream, fps, dst)
        self.probe = probe
        self.manifest: Manifest | None = None

    def open_folder(self) -> list[str]:
        """Create the work folder, or take up the unfinished job found there when it was for the
        same input, settings and plan (else start over). Returns warnings (one line each)."""
        identity = _source_identity(self.src)
        bounds = [list(b) for b in self.plan.bounds]
        warnings = []
        manifest = Manifest.load(self.folder) if self.folder.is_dir() else None
        if manifest is not None and (manifest.source != identity or manifest.settings != self.settings
                                     or manifest.bounds != bounds):
            log.warning("%s: the unfinished job there was for another input or other settings; starting over",
                        self.folder)
            warnings.append(f"{self.folder}: unfinished job for other settings, started over")
            manifest = None
        if manifest is None:
            shutil.rmtree(self.folder, ignore_errors=True)
            try:
                self.folder.mkdir()
            except OSError as exc:
                raise OutputError(f"{self.folder}: cannot create the work folder ({exc.strerror})") from None
            manifest = Manifest(source=identity, settings=self.settings, bounds=bounds)
            manifest.save(self.folder)
        self.manifest = manifest
        return warnings

    @property
    def pending(self) -> list[int]:
        """The segments still to denoise (not recorded, or damaged)."""
        return [n for n in range(len(self.plan.bounds)) if not self.manifest.verified(n, self.folder)]

    def previous_state(self, number: int) -> tuple[float | None, list[float]]:
        """The smoothed sigma after segment ``number - 1`` and its last sigmas (``sigma: auto``)."""
        if number == 0 or self.spec.fixed_sigma is not None:
            return None, []
        previous = self.manifest.segments.get(str(number - 1), {})
        if "tracker" not in previous:
            raise OutputError(f"{self.folder}: segment {number - 1} has no recorded noise level; "
                              "delete the work folder and rerun")
        return previous["tracker"], previous.get("tail_sigmas", [])

    def record(self, number: int, record: dict[str, Any]) -> None:
        """A segment finished: record it in the manifest (replaced atomically). Keys starting
        with ``_`` are the caller's and are not saved."""
        self.manifest.segments[str(number)] = {k: v for k, v in record.items() if not k.startswith("_")}
        self.manifest.save(self.folder)

    def finish(self) -> int:
        """Join the verified segments into the output, remove the work folder; returns the frames."""
        names = [self.spec.segment_name(n) for n in range(len(self.plan.bounds))]
        for number, name in enumerate(names):
            if not self.manifest.verified(number, self.folder):
                raise OutputError(f"{self.folder / name}: segment {number} is missing or does not match "
                                  "its checksum; rerun to redo it")
        paths = [self.folder / name for name in names]
        if self.spec.image_name:
            frames = self._move_images(paths)
        else:
            join_segments(paths, self.dst, remux_from=self.src, origin=self.spec.origin, overwrite=self.overwrite)
            frames = sum(int(r["frames"]) for r in self.manifest.segments.values())
        shutil.rmtree(self.folder, ignore_errors=True)
        return frames

    def _move_images(self, folders: list[Path]) -> int:
        """Move every segment's images into the output folder under their final names."""
        sink = self.sink_check
        sink.open()   # creates a named output folder that does not exist yet
        count = 0
        for folder in folders:
            for path in sorted(folder.iterdir()):
                target = sink.folder / path.name
                if target.exists() and not self.overwrite:
                    raise OutputError(f"{target}: exists; pass --overwrite to replace it")
                try:
                    os.replace(path, target)
                except OSError as exc:
                    raise OutputError(f"{target}: cannot move the finished image into place "
                                      f"({exc.strerror}); the segments stay in {self.folder}") from None
                count += 1
        return count


def denoise_segmented(src: str | Path, dst: str | Path, *, config, stream: int | None = None,
                      overwrite: bool = False, handle_signals: bool = True,
                      on_frame: Callable[[Frame], None] | None = None,
                      on_start: Callable[[Any], None] | None = None,
                      after_segment: Callable[[int], None] | None = None,
                      tap: Callable[[], Node] | None = None) -> GraphReport:
    """Denoise ``src`` into ``dst`` as a resumable job (see the module docstring).

    ``config`` is a :class:`~streamden.config.DenoiseConfig`; ``dst`` a video file or an image
    sequence (``out/%05d.png``). Finished segments found in the work folder are kept
    (checksums verified), the rest are denoised in order, then everything is joined.
    ``after_segment(number)`` is called after each segment is recorded (tests use it to
    interrupt a job at a known point); ``tap()`` makes each segment's tap node (see
    :func:`denoise_segment`). On Ctrl-C the finished segments stay and
    :class:`~streamden.errors.Cancelled` says to rerun with ``--resume``. Returns the
    report of the last segment run with ``segments_done``, ``segments_skipped`` and
    ``input_problems`` added.

    >>> from streamden.config import make_config
    >>> denoise_segmented("in.mp4", "out.mkv", config=make_config(sigma=20))  # doctest: +SKIP
    """
    from .engine import Engine
    from .io.source import DecodeProblems

    job = SegmentJob(src, dst, config, stream, overwrite)
    engine = Engine(config)   # a bad model is refused before the work folder exists
    job.open_folder()
    if on_start:
        on_start(job.probe)
    problems = DecodeProblems()
    report: GraphReport | None = None
    pending = job.pending
    started = time.monotonic()
    for number in pending:
        tracker, tail = job.previous_state(number)
        try:
            record = denoise_segment(job.spec, job.plan, number, engine, tracker=tracker, tail=tail,
                                     handle_signals=handle_signals, on_frame=on_frame,
                                     tap=tap() if tap is not None else None)
        except Cancelled as exc:
            raise Cancelled(f"interrupted in segment {number + 1} of {len(job.plan.bounds)}; the "
                            f"{len(job.manifest.segments)} finished segments are kept in {job.folder}: rerun "
                            "with --resume to continue") from exc
        report = record["_report"]
        _merge(problems, record["_problems"])
        job.record(number, record)
        if after_segment is not None:
            after_segment(number)
    job.finish()
    if report is None:  # every segment was already done: only the join ran
        report = GraphReport(nodes=[], wall_seconds=0.0, outcome="complete")
    report.wall_seconds = time.monotonic() - started
    report.segments_done = len(pending)  # type: ignore[attr-defined]
    report.segments_skipped = len(job.plan.bounds) - len(pending)  # type: ignore[attr-defined]
    report.input_problems = problems  # type: ignore[attr-defined]
    return report


def _merge(total, part) -> None:
    if part is None:
        return
    for kind, count in part.counts.items():
        total.counts[kind] = total.counts.get(kind, 0) + count
    total.messages += part.messages[: max(0, 20 - len(total.messages))]
    total.frames += part.frames
