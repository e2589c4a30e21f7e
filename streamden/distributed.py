"""Scale-out on Ray: the segments of long videos, and the videos of an archive, as Ray tasks.

A job is the resumable job of :mod:`streamden.segments` run in parallel: the video is
planned into segments at keyframes, each segment is one Ray task that decodes it with
``CONTEXT_BEFORE`` (4) frames before it and ``CONTEXT`` (2) after, denoises, keeps its own
frames and encodes them into ``seg_NNNNN.EXT`` in the work folder ``.OUT.segments/`` beside
the output. The driver records every finished segment in the same ``manifest.json`` as
``--resume`` (so either can continue the other's job), retries tasks whose worker died
(``max_retries``), and joins the segments once all are done: video packets copied in
order, audio and subtitles remuxed once from the source. The result equals a
single-process run frame for frame.

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import Cancelled, ConfigError, InputError, OutputError, StreamdenError
from .segments import (CONTEXT, CONTEXT_BEFORE, Manifest, SegmentJob, checksum, denoise_segment, denoise_segmented,
                       estimate_segment, plan_segments, segment_frames, work_dir)

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

_ENGINES: dict[str, Any] = {}   # per worker process: tasks of the same job reuse the engine


def _engine(config):
    """The worker's :class:`~streamden.engine.Engine` for ``config`` (built once per model set-up)."""
    from .engine import Engine

    key = repr((config.model, config.align))
    if key not in _ENGINES:
        _ENGINES.clear()
        _ENGINES[key] = Engine(config)
    return _ENGINES[key]


def _denoise_segment(spec, plan, number: int, sigmas: list[float] | None,
                     in_task: Callable[[int, int], None] | None) -> dict[str, Any]:
    """Ray task: denoise segment ``number`` into the work folder; returns its manifest record,
    with ``problems`` and ``cpu_seconds`` for the driver's report."""
    written = iter(range(1, 1 << 30))
    record = denoise_segment(spec, plan, number, _engine(spec.config), sigmas=sigmas,
                             on_frame=(lambda _: in_task(number, next(written))) if in_task else None)
    problems = record.pop("_problems")
    record.pop("_report")                      # the graph's report stays in the worker
    record["problems"] = problems.summary() if problems is not None and problems.count else ""
    record["cpu_seconds"] = record.pop("_cpu_seconds")
    return record


# --------------------------------------------------------------------------- driver


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
    """One video on Ray: a :class:`~streamden.segments.SegmentJob` plus this run's report and,
    for ``sigma: auto``, the first pass's smoothed sigmas."""

    def __init__(self, src: str | Path, dst: str | Path, config, stream: int | None, overwrite: bool) -> None:
        import dataclasses

        from .models.registry import load_model

        self.config = config
        self.result = JobResult(str(src), str(dst))
        self.started = time.monotonic()
        self.job = SegmentJob(src, dst, config, stream, overwrite, runner="--ray")
        load_model(config.model.name, device="cpu")     # a bad model is refused before the work folder exists
        self.result.warnings += self.job.open_folder()
        self.spec = dataclasses.replace(self.job.spec, config=_absolute_model(config))   # workers run elsewhere
        self.plan, self.folder, self.manifest = self.job.plan, self.job.folder, self.job.manifest
        self.pending = self.job.pending
        self.result.segments = len(self.plan.bounds)
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
        from .noise.estimate import SigmaTracker, level_from_json, level_to_json

        levels = [[None if v is None else level_from_json(v) for v in values] for values in raw]   # as saved, too
        tmp = self.folder / ".sigmas.json.tmp"
        tmp.write_text(json.dumps([[None if v is None else level_to_json(v) for v in values] for values in levels]),
                       encoding="utf-8")
        os.replace(tmp, self.folder / "sigmas.json")
        tracker = SigmaTracker(self.config.noise.smoothing)
        self.sigmas, self.trackers = [], []   # per frame; per segment, the state after its last frame
        for values in levels:
            self.sigmas += [tracker.update(value) for value in values]
            self.trackers.append(tracker.state())

    def task_sigmas(self, number: int) -> list[float] | None:
        """The sigmas of the frames a segment decodes (its context included)."""
        if self.sigmas is None:
            return None

        first, stop = self.plan.bounds[number]
        return self.sigmas[max(0, first - CONTEXT_BEFORE):min(self.plan.frames, stop + CONTEXT)]

    def record(self, number: int, record: dict[str, Any]) -> None:
        """A segment finished: record it in the manifest (replaced atomically)."""

        problems = record.pop("problems", "")
        if problems:
            self.result.warnings.append(f"segment {number}: {problems}")
        self.result.cpu_seconds += record.pop("cpu_seconds", 0.0)
        if self.sigmas is not None:  # what --resume needs to continue this job in order
            from .noise.estimate import level_to_json

            _, stop = self.plan.bounds[number]
            record["tracker"] = self.trackers[number]
            record["tail_sigmas"] = [level_to_json(v) for v in self.sigmas[max(0, stop - CONTEXT_BEFORE):stop]]
        self.job.record(number, record)
        self.result.segments_done += 1

    def finish(self) -> JobResult:
        """Join the segments into the output and remove the work folder."""
        self.result.frames = self.job.finish()
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
        self.estimate = ray.remote(estimate_segment).options(**dict(options, num_gpus=0))

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
                def done(record, job=job, number=number) -> None:
                    job.record(number, record)
                    if on_segment is not None:
                        on_segment(job, number)
                yield (lambda job=job, number=number:
                       scheduler.denoise.remote(job.spec, plans[id(job)], number, job.task_sigmas(number),
                                                in_task), done, fail(job))

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

        for src, dst in zip(sources, targets):
            result = JobResult(str(src), str(dst))
            if dst.exists() and not overwrite:
                result.skipped, result.frames = True, segment_frames(dst)
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
                result.frames = segment_frames(dst)
            result.seconds = time.monotonic() - t0
            results.append(result)
        return BatchReport(results, time.monotonic() - started)
    import_ray()
    jobs: list[_Job] = []
    for src, dst in zip(sources, targets):
        if dst.exists() and not overwrite:
            results.append(JobResult(str(src), str(dst), skipped=True, frames=segment_frames(dst)))
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
                if not path.exists():
                    report.problems.append(f"{path}: missing")
                elif checksum(path) != record["sha256"]:
                    report.problems.append(f"{path}: checksum differs from the manifest")
                elif (frames := segment_frames(path)) != stop - first:
                    report.problems.append(f"{path}: {frames} frames, expected {stop - first}")
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

        expected = plan_segments(src, segment_frames=1 << 30).frames
        if count != expected:
            report.problems.append(f"{dst}: {count} frames, the source {src} has {expected}")
    return report
