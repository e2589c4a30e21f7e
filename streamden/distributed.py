"""Scale-out on Ray: the segments of long videos, and the videos of an archive, as Ray tasks.

A job is the resumable job of :mod:`streamden.segments` run in parallel: the video is
planned into segments at keyframes, each segment is one Ray task that decodes it with
``CONTEXT`` (2) frames on each side, denoises, keeps its own frames and encodes them into
``seg_NNNNN.EXT`` in the work folder ``.OUT.segments/`` beside the output. The driver
records every finished segment in the same ``manifest.json`` as ``--resume`` (so either
can continue the other's job), retries tasks whose worker died (``max_retries``), and
joins the segments once all are done: video packets copied in order, audio and subtitles
remuxed once from the source. The result equals a single-process run frame for frame.

**Sigma.** A fixed sigma needs nothing more. With ``sigma: auto`` a frame's sigma is an
exponential moving average over every earlier frame, so segments are not independent: a
first pass (one cheap Ray task per segment: decode + noise estimate, no network) returns
the raw per-frame estimates, the driver folds them through the same
:class:`~streamden.noise.estimate.SigmaTracker` in order, and each denoise task receives
the smoothed sigmas of its frames. This keeps ``auto`` exact (same sigmas as an
uninterrupted run) at the price of decoding the video twice; the estimates are kept in the
work folder (``sigmas.json``) so a restarted job does not redo the pass.

**Data locality.** Every node reads the input and writes the work folder by path, so
inputs and outputs must be on storage every node sees (NFS, a shared volume) under the
same path.

>>> report = denoise_on_ray("big.mp4", "out.mp4", sigma=20)  # doctest: +SKIP
>>> report.segments_done, report.segments_skipped  # doctest: +SKIP
(12, 0)
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import Cancelled, ConfigError, InputError, OutputError, StreamdenError
from .graph import Node
from .io.frame import Frame

__all__ = ["RAY_MISSING", "import_ray", "connect", "denoise_on_ray", "denoise_batch", "expand_inputs",
           "verify", "JobResult", "BatchReport", "VerifyReport"]

log = logging.getLogger(__name__)

RAY_MISSING = 'Ray is not installed; install it with: pip install "streamden[distributed]"'
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".mxf", ".flv", ".wmv", ".mpg")


def import_ray():
    """The ``ray`` module, or one ConfigError saying how to install it.

    >>> import_ray().__name__  # doctest: +SKIP
    'ray'
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def connect(address: str | None = None, **init: Any):
    """Join the Ray cluster at ``address`` ("auto", "HOST:6379", "ray://HOST:10001"), or start
    a local one when ``address`` is None; reuse the connection when Ray is already up.

    >>> ray = connect()  # doctest: +SKIP
    """
    ray = import_ray()
    if not ray.is_initialized():
        init.setdefault("include_dashboard", False)
        init.setdefault("configure_logging", False)
        ray.init(address=address, **init)
    return ray


# --------------------------------------------------------------------------- tasks (workers)

@dataclass
class _Spec:
    """What a task needs to know about its job (pickled to the workers)."""

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


_MODELS: dict[tuple, Any] = {}   # per worker process: tasks reuse the loaded network


def _model(config, device):
    from .pipeline import load_network

    key = (str(config.model.name), str(device), config.model.tile, config.model.tile_overlap)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_network(config, device)
    return _MODELS[key]


def _decode_options(config) -> dict[str, Any]:
    return dict(isolate=config.input.isolate, max_corrupt_fraction=config.input.max_corrupt_fraction,
                max_pixels=config.input.max_pixels, on_crash=config.input.on_crash,
                stall_seconds=config.input.stall_seconds, hwaccel=config.input.hwaccel)


def _range_source(spec: _Spec, plan, start: int, end: int):
    from .io.source import open_source
    from .segments import _RangeSource

    seek = plan.pts[start] if start > 0 and plan.seekable else None
    inner = open_source(spec.src, stream=spec.stream, seek_pts=seek,
                        first_index=start if seek is not None else 0, rotation=spec.rotation,
                        **_decode_options(spec.config))
    return inner, _RangeSource(inner, plan, start, end)


class _GivenSigmaUpload(Node):
    """Upload with the sigmas the driver worked out for frames ``start, start + 1, ...``."""

    def __init__(self, device, start: int, sigmas: list[float]) -> None:
        super().__init__(name="upload")
        self.device, self.start, self.sigmas = device, start, sigmas

    def process(self, frame: Frame) -> Iterable[Frame]:
        from .tensors import image_to_tensor

        out = frame.with_image(image_to_tensor(frame.image, self.device))
        out.sigma = self.sigmas[frame.index - self.start]
        yield out


def _estimate_segment(spec: _Spec, plan, first: int, stop: int) -> list[float]:
    """Ray task: the raw noise estimates of frames ``[first, stop)`` (first pass of ``sigma: auto``),
    computed as an uninterrupted run's upload does (on the CPU)."""
    from .noise.estimate import estimate_sigma
    from .tensors import image_to_tensor

    _, source = _range_source(spec, plan, first, stop)
    try:
        return [float(estimate_sigma(image_to_tensor(frame.image, "cpu"))) for frame in source.generate()]
    finally:
        source.close()


def _denoise_segment(spec: _Spec, plan, number: int, first: int, stop: int,
                     sigmas: list[float] | None, in_task: Callable[[int, int], None] | None) -> dict[str, Any]:
    """Ray task: denoise segment ``number`` (frames ``[first, stop)`` plus context) into its
    file in the work folder; returns its manifest record."""
    from .graph import Graph
    from .io.atomic import discard
    from .io.sink import VideoFileSink
    from .pipeline import DownloadNode, make_denoise_node
    from .segments import CONTEXT, _KeepRange, _SegmentUpload, _sha256
    from .tensors import resolve_device

    cpu_started = time.process_time()
    config = spec.config
    device = resolve_device(config.model.device)
    start, end = max(0, first - CONTEXT), min(plan.frames, stop + CONTEXT)
    inner, source = _range_source(spec, plan, start, end)
    if sigmas is None:
        upload = _SegmentUpload(device, spec.fixed_sigma, config.noise.smoothing, first, stop, None, [])
    else:
        upload = _GivenSigmaUpload(device, start, sigmas)
    name = f"seg_{number:05d}{spec.ext}"
    path = Path(spec.folder) / name
    sink = VideoFileSink(path, fps=spec.fps, width=spec.width, height=spec.height, bit_depth=spec.bit_depth,
                         color=spec.color, codec=config.encode.codec, crf=config.encode.crf,
                         preset=config.encode.preset, overwrite=True, source_path=spec.src, origin=spec.origin)
    nodes = [source, upload, make_denoise_node(config, device, _model(config, device)),
             _KeepRange(first, stop), DownloadNode(), sink]
    try:
        written = iter(range(1, end - start + 1))
        Graph(nodes, queue_size=config.graph.queue_size).run(
            handle_signals=False, on_item=(lambda _: in_task(number, next(written))) if in_task else None)
    except BaseException:
        discard(path)
        raise
    problems = getattr(inner, "problems", None)
    return {"file": name, "first": first, "stop": stop, "frames": sink.frames_written, "sha256": _sha256(path),
            "problems": problems.summary() if problems is not None and problems.count else "",
            "cpu_seconds": time.process_time() - cpu_started}


# --------------------------------------------------------------------------- jobs (driver)

@dataclass
class JobResult:
    """How one video went: segments done and skipped (resumed), frames, seconds, or the error."""

    src: str
    dst: str
    segments: int = 0
    segments_done: int = 0
    segments_skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0         # CPU time the denoise tasks of this run used (all their threads)
    error: str | None = None
    skipped: bool = False            # batch: the output was there already (a finished earlier run)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the output was written."""
        return self.error is None


@dataclass
class BatchReport:
    """One report for a batch: a :class:`JobResult` per input.

    >>> BatchReport([JobResult("a.mp4", "out/a.mp4", 3, 3, 0, 24, 1.5)]).format_table().splitlines()[-1]
    '1 of 1 videos written, 24 frames in 0.0 s'
    """

    jobs: list[JobResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every video was written."""
        return all(job.ok for job in self.jobs)

    def format_table(self) -> str:
        """A plain-text table, one row per video, and a total line."""
        rows = [f"{'input':40} {'segments':>8} {'resumed':>7} {'frames':>7} {'seconds':>8}  result"]
        for job in self.jobs:
            result = "kept (exists)" if job.skipped else "ok" if job.ok else f"FAILED: {job.error}"
            rows.append(f"{Path(job.src).name[:40]:40} {job.segments:>8} {job.segments_skipped:>7} "
                        f"{job.frames:>7} {job.seconds:>8.1f}  {result}")
        written = sum(job.ok for job in self.jobs)
        rows.append(f"{written} of {len(self.jobs)} videos written, "
                    f"{sum(job.frames for job in self.jobs)} frames in {self.seconds:.1f} s")
        return "\n".join(rows)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the report as JSON."""
        from dataclasses import asdict

        Path(path).write_text(json.dumps({"seconds": self.seconds, "jobs": [asdict(j) for j in self.jobs]},
                                         indent=1), encoding="utf-8")


class _Job:
    """One video: checks everything up front, owns the work folder and the manifest."""

    def __init__(self, src: str | Path, dst: str | Path, config, stream: int | None, overwrite: bool) -> None:
        from .config import to_dict
        from .io.atomic import check_output_path
        from .io.sink import VideoFileSink
        from .io.source import open_source
        from .models.registry import load_model
        from .pipeline import parse_fps, parse_sigma
        from .segments import Manifest, _source_identity, plan_segments, work_dir
        from .tensors import resolve_device

        self.src, self.dst, self.config, self.overwrite = str(src), Path(dst), config, overwrite
        self.result = JobResult(self.src, str(self.dst))
        self.started = time.monotonic()
        if not Path(self.src).exists():
            raise InputError(f"{self.src}: no such file")
        if not Path(self.src).is_file():
            raise InputError(f"{self.src}: not a file (Ray jobs split video files; image sequences are not split)")
        check_output_path(self.dst, overwrite=overwrite, inputs=(self.src,))
        sigma = parse_sigma(config.noise.sigma)
        probe = open_source(self.src, stream=stream, **dict(_decode_options(config), isolate=False))
        fps = parse_fps(config.encode.fps) or probe.fps
        self.plan = plan_segments(self.src, probe.stream_number, config.job.segment_frames)
        if not self.plan.frames:
            raise InputError(f"{self.src}: no video packets to denoise")
        origin = Fraction(self.plan.pts[0]) * probe.time_base
        # Refuse a bad output or model before the work folder exists (a sink never opened).
        VideoFileSink(self.dst, fps=fps, width=probe.width, height=probe.height, bit_depth=probe.bit_depth,
                      color=probe.color, codec=config.encode.codec, crf=config.encode.crf,
                      preset=config.encode.preset, remux_from=self.src, overwrite=overwrite)
        load_model(config.model.name, device=resolve_device("cpu"))
        self.spec = _Spec(src=os.path.abspath(self.src), folder=str(work_dir(self.dst).resolve()),
                          ext=self.dst.suffix.lower(), stream=stream, config=_absolute_model(config), fps=fps,
                          width=probe.width, height=probe.height, bit_depth=probe.bit_depth,
                          color=probe.color, rotation=probe.rotation, origin=origin, fixed_sigma=sigma)
        self.folder = work_dir(self.dst)
        # The same settings as denoise_segmented: --resume and --ray continue each other's jobs.
        settings = {"config": to_dict(config), "stream": stream, "fps": str(fps), "output": self.spec.ext}
        identity = _source_identity(self.src)
        bounds = [list(b) for b in self.plan.bounds]
        manifest = Manifest.load(self.folder) if self.folder.is_dir() else None
        if manifest is not None and (manifest.source != identity or manifest.settings != settings
                                     or manifest.bounds != bounds):
            log.warning("%s: the unfinished job there was for another input or other settings; starting over",
                        self.folder)
            self.result.warnings.append(f"{self.folder}: unfinished job for other settings, started over")
            manifest = None
        if manifest is None:
            shutil.rmtree(self.folder, ignore_errors=True)
            try:
                self.folder.mkdir()
            except OSError as exc:
                raise OutputError(f"{self.folder}: cannot create the work folder ({exc.strerror})") from None
            manifest = Manifest(source=identity, settings=settings, bounds=bounds)
            manifest.save(self.folder)
        self.manifest = manifest
        self.result.segments = len(self.plan.bounds)
        self.pending = [n for n in range(len(self.plan.bounds)) if not manifest.verified(n, self.folder)]
        self.result.segments_skipped = len(self.plan.bounds) - len(self.pending)
        self.sigmas: list[float] | None = None          # smoothed, per frame (sigma: auto only)

    @property
    def auto_sigma(self) -> bool:
        return self.spec.fixed_sigma is None

    def load_estimates(self) -> list[list[float]] | None:
        """The first pass's raw estimates per segment, when a previous run saved them."""
        try:
            data = json.loads((self.folder / "sigmas.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, list) or len(data) != len(self.plan.bounds):
            return None
        if any(len(v) != stop - first for v, (first, stop) in zip(data, self.plan.bounds)):
            return None
        return data

    def set_estimates(self, raw: list[list[float]]) -> None:
        """Fold the raw estimates through the tracker in frame order, as an uninterrupted run does."""
        from .noise.estimate import SigmaTracker

        tmp = self.folder / ".sigmas.json.tmp"
        tmp.write_text(json.dumps(raw), encoding="utf-8")
        os.replace(tmp, self.folder / "sigmas.json")
        tracker = SigmaTracker(self.config.noise.smoothing)
        self.sigmas, self.trackers = [], []   # per frame; per segment, the value after its last frame
        for values in raw:
            self.sigmas += [tracker.update(value) for value in values]
            self.trackers.append(tracker.value)

    def task_sigmas(self, number: int) -> list[float] | None:
        """The sigmas of the frames a segment decodes (its context included)."""
        if self.sigmas is None:
            return None
        from .segments import CONTEXT

        first, stop = self.plan.bounds[number]
        return self.sigmas[max(0, first - CONTEXT):min(self.plan.frames, stop + CONTEXT)]

    def record(self, number: int, record: dict[str, Any]) -> None:
        """A segment finished: record it in the manifest (replaced atomically)."""
        from .segments import CONTEXT

        problems = record.pop("problems", "")
        if problems:
            self.result.warnings.append(f"segment {number}: {problems}")
        self.result.cpu_seconds += record.pop("cpu_seconds", 0.0)
        if self.sigmas is not None:  # what --resume needs to continue this job in order
            first, stop = self.plan.bounds[number]
            record["tracker"] = self.trackers[number]
            record["tail_sigmas"] = self.sigmas[max(first, stop - CONTEXT):stop]
        self.manifest.segments[str(number)] = record
        self.manifest.save(self.folder)
        self.result.segments_done += 1

    def finish(self) -> JobResult:
        """Join the segments into the output and remove the work folder."""
        from .segments import join_segments

        files = [self.folder / self.manifest.segments[str(n)]["file"] for n in range(len(self.plan.bounds))]
        for n in range(len(self.plan.bounds)):
            if not self.manifest.verified(n, self.folder):
                raise OutputError(f"{files[n]}: segment {n} does not match its checksum; rerun to redo it")
        join_segments(files, self.dst, remux_from=self.src, origin=self.spec.origin, overwrite=self.overwrite)
        self.result.frames = sum(int(r["frames"]) for r in self.manifest.segments.values())
        shutil.rmtree(self.folder, ignore_errors=True)
        self.result.seconds = time.monotonic() - self.started
        return self.result


def _absolute_model(config):
    """The config with a weights file given by a relative path made absolute (workers run elsewhere)."""
    import dataclasses

    name = config.model.name
    if name and Path(str(name)).is_file():
        model = dataclasses.replace(config.model, name=os.path.abspath(str(name)))
        return dataclasses.replace(config, model=model)
    return config


def _error_of(ray, exc: BaseException) -> BaseException:
    """The StreamdenError a task raised (unwrapped from Ray), else the exception itself."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, StreamdenError):
        return cause
    return exc


class _Scheduler:
    """Keeps at most ``workers`` tasks in flight over several jobs; calls back as they finish."""

    def __init__(self, ray, workers: int | None, max_retries: int, num_gpus: float, num_cpus: float) -> None:
        self.ray, self.workers = ray, workers
        options = dict(max_retries=max_retries, num_cpus=num_cpus, num_gpus=num_gpus,
                       retry_exceptions=[OSError, RuntimeError])
        self.denoise = ray.remote(_denoise_segment).options(**options)
        self.estimate = ray.remote(_estimate_segment).options(**dict(options, num_gpus=0))

    def run(self, work: Iterator[tuple[Callable[[], Any], Callable[[Any], None], Callable[[BaseException], None]]]
            ) -> None:
        """``work`` yields (submit, on_result, on_error); submit() returns an ObjectRef."""
        ray = self.ray
        flight: dict[Any, tuple[Callable, Callable]] = {}
        work = iter(work)
        exhausted = False
        try:
            while True:
                while not exhausted and (self.workers is None or len(flight) < self.workers):
                    try:
                        submit, on_result, on_error = next(work)
                    except StopIteration:
                        exhausted = True
                        break
                    flight[submit()] = (on_result, on_error)
                if not flight:
                    return
                ready, _ = ray.wait(list(flight), num_returns=1)
                on_result, on_error = flight.pop(ready[0])
                try:
                    value = ray.get(ready[0])
                except Exception as exc:  # noqa: BLE001 - a task's failure is reported per job
                    on_error(_error_of(ray, exc))
                else:
                    on_result(value)
        except KeyboardInterrupt:
            for ref in flight:
                ray.cancel(ref, force=True)
            raise


def _gpus_per_task(ray, config) -> float:
    wanted = str(config.model.device)
    if wanted == "cpu":
        return 0
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    if wanted == "cuda" and not has_gpus:
        raise ConfigError("model.device is cuda but the Ray cluster has no GPUs")
    return 1 if has_gpus else 0


def _run_jobs(jobs: list[_Job], ray, *, workers: int | None, max_retries: int, cpus_per_task: float,
              in_task: Callable[[int, int], None] | None, on_segment: Callable[[_Job, int], None] | None,
              failures: dict[int, BaseException]) -> None:
    """Run the first pass (auto sigma) and then every pending segment of every job."""
    gpus = _gpus_per_task(ray, jobs[0].config) if jobs else 0
    scheduler = _Scheduler(ray, workers, max_retries, gpus, cpus_per_task)
    plans = {id(job): ray.put(job.plan) for job in jobs}

    def fail(job: _Job) -> Callable[[BaseException], None]:
        def record(exc: BaseException) -> None:
            failures.setdefault(id(job), exc)
        return record

    # First pass (sigma: auto): raw estimates per segment, folded in order per job.
    raw: dict[int, list[list[float] | None]] = {}

    def estimates() -> Iterator:
        for job in jobs:
            if not job.auto_sigma or not job.pending:
                continue
            saved = job.load_estimates()
            if saved is not None:
                job.set_estimates(saved)
                continue
            raw[id(job)] = [None] * len(job.plan.bounds)
            for number, (first, stop) in enumerate(job.plan.bounds):
                def keep(values, job=job, number=number) -> None:
                    raw[id(job)][number] = values
                yield (lambda job=job, first=first, stop=stop:
                       scheduler.estimate.remote(job.spec, plans[id(job)], first, stop), keep, fail(job))

    scheduler.run(estimates())
    for job in jobs:
        values = raw.get(id(job))
        if values is not None and id(job) not in failures:
            job.set_estimates(values)  # type: ignore[arg-type]

    def segments() -> Iterator:
        for job in jobs:
            for number in job.pending:
                if id(job) in failures:
                    break
                first, stop = job.plan.bounds[number]

                def done(record, job=job, number=number) -> None:
                    job.record(number, record)
                    if on_segment is not None:
                        on_segment(job, number)
                yield (lambda job=job, number=number, first=first, stop=stop:
                       scheduler.denoise.remote(job.spec, plans[id(job)], number, first, stop,
                                                job.task_sigmas(number), in_task), done, fail(job))

    scheduler.run(segments())


def _options_config(config, preset: str | None, config_file, overrides: Iterable[str], options: dict[str, Any]):
    from .config import make_config

    return config if config is not None else make_config(preset, config_file, overrides, **options)


def denoise_on_ray(src: str | Path, dst: str | Path, *, address: str | None = None, config=None,
                   preset: str | None = "restoration", config_file: str | Path | None = None,
                   overrides: Iterable[str] = (), stream: int | None = None, overwrite: bool = False,
                   workers: int | None = None, max_retries: int = 3, cpus_per_task: float = 1,
                   in_task: Callable[[int, int], None] | None = None,
                   on_segment: Callable[[Any, int], None] | None = None, **options: Any) -> JobResult:
    """Denoise ``src`` into ``dst`` with one Ray task per segment (see the module docstring).

    ``address`` is the Ray cluster ("auto", "HOST:6379"); None starts a local Ray unless one
    is already connected. ``config`` (a DenoiseConfig) or ``preset``/``config_file``/
    ``overrides``/``options`` (the shortcuts of :func:`~streamden.api.denoise_video`) set
    the settings. ``workers`` caps the tasks in flight (default: as many as Ray schedules);
    a task whose worker dies is retried up to ``max_retries`` times. Each task reserves
    ``cpus_per_task`` CPUs (Ray gives it as many torch threads) and, when the cluster has GPUs,
    one GPU. A restarted job skips the
    segments its manifest records and verifies. ``in_task(number, frames)`` runs inside the
    task of segment ``number`` after each frame it writes (tests use it to kill a worker
    midway); ``on_segment(job, number)`` runs on
    the driver after each segment is recorded. Raises InputError, OutputError, ConfigError,
    ModelError, or Cancelled (the finished segments stay for the next run).

    >>> denoise_on_ray("big.mp4", "out.mkv", address="auto", sigma=20, codec="ffv1")  # doctest: +SKIP
    JobResult(src='big.mp4', dst='out.mkv', segments=12, segments_done=12, ...)
    """
    config = _options_config(config, preset, config_file, overrides, options)
    import_ray()
    job = _Job(src, dst, config, stream, overwrite)  # bad input fails before a Ray starts
    ray = connect(address)
    failures: dict[int, BaseException] = {}
    try:
        _run_jobs([job], ray, workers=workers, max_retries=max_retries, cpus_per_task=cpus_per_task,
                  in_task=in_task,
                  on_segment=on_segment, failures=failures)
    except KeyboardInterrupt:
        raise Cancelled(f"interrupted; the {len(job.manifest.segments)} finished segments are kept in "
                        f"{job.folder}: rerun the same command to continue") from None
    if failures:
        exc = failures[id(job)]
        if isinstance(exc, StreamdenError):
            raise exc
        raise OutputError(f"{src}: a segment failed ({_short(exc)}); the finished "
                          f"segments are kept in {job.folder}: rerun to continue") from exc
    return job.finish()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, folders (their video files, not recursive) and globs, in order, without duplicates.

    >>> expand_inputs([])
    []
    """
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not matches:
                raise InputError(f"{text}: no file matches")
            found += matches
        else:
            raise InputError(f"{text}: no such file or folder")
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())


def denoise_batch(inputs: Iterable[str | os.PathLike], out_dir: str | Path, *, address: str | None = None,
                  use_ray: bool = True, config=None, preset: str | None = "restoration",
                  config_file: str | Path | None = None, overrides: Iterable[str] = (),
                  suffix: str | None = None, overwrite: bool = False, workers: int | None = None,
                  max_retries: int = 3, cpus_per_task: float = 1, **options: Any) -> BatchReport:
    """Denoise many videos into ``out_dir`` (same file names; ``suffix`` such as ".mkv" changes
    the extension) and return one report. With ``use_ray`` the segments of all videos share
    the cluster's workers; without it they run here one after another (as ``--resume`` jobs).
    Outputs that exist are kept and reported (so a rerun finishes an interrupted batch)
    unless ``overwrite``. A video that fails is reported and the others go on; every job is resumable. The other
    keywords are those of :func:`denoise_on_ray`.

    >>> report = denoise_batch(["archive/*.mp4"], "clean", sigma=20)  # doctest: +SKIP
    >>> print(report.format_table())  # doctest: +SKIP
    """
    config = _options_config(config, preset, config_file, overrides, options)
    sources = expand_inputs(inputs)
    if not sources:
        raise InputError("no input videos given")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        try:
            out_dir.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from None
    targets = [out_dir / (src.stem + (suffix or src.suffix)) for src in sources]
    names = [t.name for t in targets]
    for target in targets:
        if names.count(target.name) > 1:
            raise InputError(f"{target.name}: several inputs would be written to {target}; rename one")
    started = time.monotonic()
    results: list[JobResult] = []
    if not use_ray:
        from .segments import denoise_segmented

        for src, dst in zip(sources, targets):
            result = JobResult(str(src), str(dst))
            if dst.exists() and not overwrite:
                result.skipped, result.frames = True, _count_frames(dst)
                results.append(result)
                continue
            t0 = time.monotonic()
            try:
                report = denoise_segmented(src, dst, config=config, overwrite=overwrite)
            except StreamdenError as exc:
                if isinstance(exc, Cancelled):
                    raise
                result.error = str(exc)
            else:
                result.segments_done = report.segments_done
                result.segments_skipped = report.segments_skipped
                result.segments = result.segments_done + result.segments_skipped
                result.frames = _count_frames(dst)
            result.seconds = time.monotonic() - t0
            results.append(result)
        return BatchReport(results, time.monotonic() - started)
    import_ray()
    jobs: list[_Job] = []
    for src, dst in zip(sources, targets):
        if dst.exists() and not overwrite:
            results.append(JobResult(str(src), str(dst), skipped=True, frames=_count_frames(dst)))
            continue
        try:
            jobs.append(_Job(src, dst, config, None, overwrite))
        except StreamdenError as exc:
            results.append(JobResult(str(src), str(dst), error=str(exc)))
    failures: dict[int, BaseException] = {}
    try:
        if jobs:
            _run_jobs(jobs, connect(address), workers=workers, max_retries=max_retries,
                      cpus_per_task=cpus_per_task, in_task=None, on_segment=None, failures=failures)
    except KeyboardInterrupt:
        raise Cancelled("interrupted; the finished segments are kept in each output's work folder: rerun the "
                        "same command to continue") from None
    for job in jobs:
        if id(job) in failures:
            job.result.error = _short(failures[id(job)]) if not isinstance(failures[id(job)], StreamdenError) \
                else str(failures[id(job)])
            results.append(job.result)
            continue
        try:
            results.append(job.finish())
        except StreamdenError as exc:
            job.result.error = str(exc)
            results.append(job.result)
    order = {str(src): i for i, src in enumerate(sources)}
    results.sort(key=lambda r: order[r.src])
    return BatchReport(results, time.monotonic() - started)


def _count_frames(path: str | Path) -> int:
    """Video packets of ``path`` (one per frame for the codecs we write), read without decoding."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)


# --------------------------------------------------------------------------- verify

@dataclass
class VerifyReport:
    """What :func:`verify` found: ``problems`` is empty when everything checks out."""

    path: str
    frames: int | None = None
    segments_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def verify(dst: str | Path, src: str | Path | None = None) -> VerifyReport:
    """Check a job writing ``dst``.

    While its work folder exists (an unfinished job): every segment the manifest records
    must exist, match its SHA-256 and hold its frame count. Once ``dst`` exists: its video
    packets are counted (no decoding) and, given ``src``, must equal the source's frames;
    its timestamps must increase.

    >>> verify("out.mkv", "in.mp4").ok  # doctest: +SKIP
    True
    """
    import av

    from .segments import Manifest, _sha256, work_dir

    dst = Path(dst)
    report = VerifyReport(str(dst))
    folder = work_dir(dst)
    if folder.is_dir():
        manifest = Manifest.load(folder)
        if manifest is None:
            report.problems.append(f"{folder}: no readable manifest")
        else:
            for number, (first, stop) in enumerate(manifest.bounds):
                record = manifest.segments.get(str(number))
                if record is None:
                    report.problems.append(f"segment {number} (frames {first}-{stop - 1}): not done yet")
                    continue
                path = folder / record["file"]
                report.segments_checked += 1
                if not path.is_file():
                    report.problems.append(f"{path}: missing")
                elif _sha256(path) != record["sha256"]:
                    report.problems.append(f"{path}: checksum differs from the manifest")
                elif _count_frames(path) != stop - first:
                    report.problems.append(f"{path}: {_count_frames(path)} frames, expected {stop - first}")
    if not dst.is_file():
        if not folder.is_dir():
            report.problems.append(f"{dst}: no such output and no work folder")
        return report
    try:
        with av.open(str(dst)) as container:
            stream = container.streams.video[0]
            last = None
            count = 0
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                count += 1
                if packet.dts is not None:
                    if last is not None and packet.dts <= last:
                        report.problems.append(f"{dst}: video timestamps do not increase at packet {count}")
                        break
                    last = packet.dts
    except (av.FFmpegError, IndexError) as exc:
        report.problems.append(f"{dst}: cannot be read ({exc})")
        return report
    report.frames = count
    if src is not None:
        from .segments import plan_segments

        expected = plan_segments(src, segment_frames=1 << 30).frames
        if count != expected:
            report.problems.append(f"{dst}: {count} frames, the source {src} has {expected}")
    return report
