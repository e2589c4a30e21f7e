"""`streamden bench`: throughput per frame size, every figure beside the naive baseline
measured in the same run.

Per size (``540p``, ``1080p``, ``2160p`` or ``WxH``):

* **network**: the naive baseline (fp32, NCHW, BatchNorm as trained, four denoising blocks
  per frame, synchronised after every frame), then each optimisation of
  :class:`~streamden.models.accel.InferenceOptions` on its own on top of the two-block
  streaming engine, then all of them together; frames per second, the ratio to the
  baseline, the network's achieved TFLOP/s against the device's peak measured in the same
  run (a large matmul at the row's precision), and peak GPU memory.
* **alignment**: flow estimation and warping per output frame (DIS on a CPU, our LK
  kernels on CUDA), against LK in plain torch on the same device.
* **end to end**: a generated H.264 clip through the whole graph (decode, upload, align,
  fuse, download, encode) with the fast options, against a synchronous loop doing the
  same work with the naive network; plus decode and encode alone, the bounds of the graph.

``--backend onnxruntime`` adds ONNX Runtime rows to the network and end-to-end parts: the
model exported in memory (fp32), and an export file (``--model NAME.onnx``, e.g. int8).

Speed depends on the weights' shapes only, so an untrained network stands in where no
weights ship. PyAV is imported lazily (``--parts network,align`` runs without it).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .cpu import malloc_tuned_by_env, tune_malloc
from .models.accel import InferenceOptions, NetworkRunner, resolve_precision
from .models.cost import multiply_adds_per_pixel
from .models.fastdvdnet import pad_to_multiple
from .models.registry import load_model
from .models.streaming import StreamingDenoiser, window_indices
from .tensors import image_to_tensor, resolve_device, tensor_to_image

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}
PARTS = ("network", "align", "end_to_end")
BENCH_SIGMA = 25.0
BENCH_MODEL = "fastdvdnet-aligned"   # the restoration preset's model: same shapes as every shipped one


def parse_size(text: str) -> tuple[int, int]:
    """``540p`` / ``1080p`` / ``2160p`` (16:9) or ``WIDTHxHEIGHT`` -> (width, height).

    >>> parse_size("1080p"), parse_size("64x48")
    ((1920, 1080), (64, 48))
    """
    text = text.strip().lower()
    if text in SIZES:
        return SIZES[text]
    try:
        width, height = (int(v) for v in text.split("x"))
    except ValueError:
        raise ValueError(f"size {text!r}: use one of {', '.join(SIZES)} or WIDTHxHEIGHT") from None
    if width < 64 or height < 48:
        raise ValueError(f"size {text!r}: at least 64x48")
    return width, height


@dataclass
class BenchRow:
    """One measurement: frames per second, its ratio to the part's baseline, and what it costs."""

    part: str
    name: str
    fps: float
    ratio: float | None = None          # against the first row of the part (the baseline)
    tflops: float | None = None         # achieved by the network
    peak_share: float | None = None     # tflops / the device's measured peak at this precision
    memory_mb: float | None = None      # peak GPU memory while measuring
    note: str = ""


@dataclass
class SizeResult:
    """All rows for one frame size."""

    width: int
    height: int
    frames: int
    rows: list[BenchRow] = field(default_factory=list)


@dataclass
class BenchResult:
    """Every size plus the conditions: device, versions, peaks, threads."""

    device: str
    environment: dict[str, str]
    peak_tflops: dict[str, float]
    sizes: list[SizeResult] = field(default_factory=list)

    def format_table(self) -> str:
        """Markdown: the conditions, then one table per size."""
        lines = [f"streamden bench on {self.device}", ""]
        lines += [f"- {key}: {value}" for key, value in self.environment.items()]
        lines.append("- measured peak (dense matmul): " +
                     ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in self.peak_tflops.items()))
        for size in self.sizes:
            lines += ["", f"### {size.width}x{size.height}, {size.frames} frames", "",
                      "| part | configuration | fps | vs baseline | TFLOP/s | of peak | GPU MB | note |",
                      "|---|---|---:|---:|---:|---:|---:|---|"]
            for r in size.rows:
                lines.append(f"| {r.part} | {r.name} | {r.fps:.2f} | {_fmt(r.ratio, '{:.2f}x')} | "
                             f"{_fmt(r.tflops, '{:.3f}')} | {_fmt(r.peak_share, '{:.1%}')} | "
                             f"{_fmt(r.memory_mb, '{:.0f}')} | {r.note} |")
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        """Write the result as JSON."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def _add(rows: list[BenchRow], row: BenchRow) -> None:
    """Keep ``row`` and say so on stderr: a CPU run takes minutes per size."""
    rows.append(row)
    print(f"  {row.part}: {row.name}: {row.fps:.2f} fps", file=sys.stderr, flush=True)


def _fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn: Callable[[], object], device: torch.device, repeat: int, warm_up: bool = True) -> float:
    """The best of ``repeat`` timed runs of ``fn``, after one untimed run when ``warm_up``."""
    if warm_up:
        fn()
        _sync(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def _peak_memory(device: torch.device) -> Iterator[list[float | None]]:
    """Yields a one-element list that holds the peak GPU memory (MB) once the block ends."""
    box: list[float | None] = [None]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield box
    if device.type == "cuda":
        box[0] = torch.cuda.max_memory_allocated(device) / 2**20


def block_flops_per_pixel(model: torch.nn.Module) -> float:
    """Floating-point operations (2 per multiply-add) of one denoising block per input pixel:
    :func:`~streamden.models.cost.multiply_adds_per_pixel` of a streamed frame over its blocks
    (two for FastDVDnet, one for a single-stage network such as ``lite``).

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> round(block_flops_per_pixel(FastDVDnet()) / 2e3)   # about 159 k multiply-adds
    159
    """
    network = getattr(model, "inner", model)
    return 2 * multiply_adds_per_pixel(network) / (1 if getattr(network, "single_stage", False) else 2)


def measure_peak_tflops(device: torch.device, precisions: list[str]) -> dict[str, float]:
    """Dense matmul TFLOP/s at each precision: the roof the network's figures are read against.

    On CUDA ``tf32`` is float32 on tensor cores, what cuDNN runs float32 convolutions in by
    default (``torch.backends.cudnn.allow_tf32``); the fp32 rows are read against it there.
    """
    n = 8192 if device.type == "cuda" else 1536
    peaks = {}
    for precision in precisions:
        tf32 = precision == "tf32"
        dtype = torch.float32 if tf32 else resolve_precision(precision, device)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            seconds = _best_seconds(lambda: torch.mm(a, b), device, repeat=5)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved
        peaks[precision] = 2 * n**3 / seconds / 1e12
    return peaks


def _peak_key(dtype: torch.dtype, device: torch.device) -> str:
    """The peak a network row at ``dtype`` is read against (``tf32`` for CUDA float32 convolutions)."""
    if dtype == torch.float32:
        return "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def environment(device: torch.device) -> dict[str, str]:
    """Hardware and software versions the figures were measured with."""
    env = {"torch": torch.__version__, "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "torch threads": str(torch.get_num_threads()),
           "malloc tuned at start": "yes (MALLOC_* variables)" if malloc_tuned_by_env() else
           "no (mallopt from the '+ malloc tuned' row on)"}
    try:
        import av
        env["PyAV / FFmpeg"] = f"{av.__version__} / {av.library_versions.get('libavcodec')}"
    except ImportError:
        env["PyAV / FFmpeg"] = "not installed"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        env["CUDA (torch) / cuDNN"] = f"{torch.version.cuda} / {torch.backends.cudnn.version()}"
        env["driver"] = _driver_version()
        try:
            import cupy
            env["cupy"] = cupy.__version__
        except ImportError:
            env["cupy"] = "not installed"
    return env


def _driver_version() -> str:
    try:
        import subprocess
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def noisy_frames(size: tuple[int, int], frames: int, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames of the synthetic scene with Gaussian noise of BENCH_SIGMA."""
    from .sample import add_gaussian_noise, render_scene

    return add_gaussian_noise(render_scene(frames, size, seed=seed), BENCH_SIGMA, seed)


# --- network ------------------------------------------------------------------------------

def network_configurations(device: torch.device) -> list[tuple[str, InferenceOptions]]:
    """The ladder: two blocks per frame, then each optimisation alone, then everything."""
    naive = InferenceOptions.naive()
    rows = [("stage-1 cache (streaming)", naive),
            ("+ channels_last", naive.with_(channels_last=True)),
            ("+ BatchNorm folded", naive.with_(fold_batchnorm=True))]
    if device.type == "cuda":
        rows += [("+ cuDNN autotune", naive.with_(cudnn_benchmark=True)),
                 ("+ fp16 autocast", naive.with_(precision="fp16")),
                 ("+ bf16 autocast", naive.with_(precision="bf16")),
                 ("+ CUDA graphs", naive.with_(cuda_graphs=True))]
    elif resolve_precision("auto", device) == torch.bfloat16:
        rows.append(("+ bf16 autocast", naive.with_(precision="bf16")))
    rows.append(("+ batch 4 frames", naive.with_(batch=4)))
    rows.append(("all (defaults)", InferenceOptions()))
    rows.append(("all + batch 4", InferenceOptions(batch=4)))
    return rows


def _naive_baseline(model: torch.nn.Module, frames: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """Four blocks per frame (no stage-1 cache), fp32, NCHW, synchronised after every frame."""
    runner = NetworkRunner(model, device, InferenceOptions.naive())
    frames, _ = pad_to_multiple(frames)     # as the streaming engine pads each frame
    noise = torch.full((3, 1, *frames.shape[-2:]), BENCH_SIGMA / 255, device=device)

    def run() -> None:
        count = frames.shape[0]
        for t in range(count):
            window = frames[list(window_indices(t, count))]
            triplets = torch.stack([window[i:i + 3] for i in range(3)])
            middle = runner.stage1(triplets, noise)
            runner.stage2(middle.unsqueeze(0), noise[:1])
            _sync(device)
    return run


def _streaming(model: torch.nn.Module, frames: torch.Tensor, device: torch.device,
               options: InferenceOptions, ort: str | None = None) -> Callable[[], None]:
    """The engine every front door runs, with ``options``, on unaligned frames; on the onnxruntime
    backend when ``ort`` is given (``""``: ``model`` exported in memory, else an export NAME.onnx)."""
    from .config import make_config
    from .engine import Engine

    if ort is None:
        engine = Engine(make_config(None, device=str(device), align="none"), model=model, options=options)
    else:
        config = make_config(None, device=str(device), align="none", backend="onnxruntime", model=ort or None)
        engine = Engine(config, model=None if ort else model, options=options)

    def run() -> None:
        stream = engine.stream()
        for frame in frames:
            stream.push(frame, BENCH_SIGMA)
        stream.finish()
    return run


def onnxruntime_configurations(onnx_model: str | None) -> list[tuple[str, InferenceOptions, str]]:
    """The onnxruntime rows: the model exported in memory (fp32), and an export file when given."""
    rows = [("onnxruntime fp32 (exported in memory)", InferenceOptions(precision="fp32"), "")]
    if onnx_model:
        rows.append((f"onnxruntime {Path(onnx_model).name}", InferenceOptions(), onnx_model))
    return rows


def bench_network(model: torch.nn.Module, frames: torch.Tensor, device: torch.device,
                  peaks: dict[str, float], repeat: int, backend: str = "torch",
                  onnx_model: str | None = None) -> list[BenchRow]:
    """The naive baseline and the optimisation ladder on frames already on the device; with
    ``backend`` onnxruntime, its rows after torch's (:func:`onnxruntime_configurations`)."""
    count, (height, width) = frames.shape[0], frames.shape[-2:]
    block_flops = block_flops_per_pixel(model) * ((height + 3) // 4 * 4) * ((width + 3) // 4 * 4)
    rows = []
    # Two blocks per frame in steady state (one for a single-stage network); the ends of a
    # sequence cost a little more. The naive baseline runs stage 1 on all three triplets.
    single = getattr(getattr(model, "inner", model), "single_stage", False)
    streaming_blocks = 1.0 if single else 2.0 + 2.0 / count
    ladder = network_configurations(device)
    if device.type == "cpu":   # process-wide CPU settings: malloc from the third row on, threads last
        ladder.insert(1, ("+ malloc tuned (mallopt)", InferenceOptions.naive()))
        ladder.append(("all (defaults), 1 thread", InferenceOptions()))
    # Runs are made one at a time, so that no earlier row's runner (weights, CUDA graphs) stays alive.
    naive_blocks = 3.0 if single else 4.0
    measured = [(f"naive baseline ({naive_blocks:.0f} blocks/frame, fp32, NCHW, sync)", InferenceOptions.naive(),
                 naive_blocks,
                 lambda: _naive_baseline(model, frames, device))]
    measured += [(name, options, streaming_blocks, lambda options=options: _streaming(model, frames, device, options))
                 for name, options in ladder]
    ort_rows = onnxruntime_configurations(onnx_model) if backend == "onnxruntime" else []
    measured += [(name, options, streaming_blocks,
                  lambda options=options, ort=ort: _streaming(model, frames, device, options, ort))
                 for name, options, ort in ort_rows]
    ort_names = {name: ort for name, _, ort in ort_rows}
    if device.type == "cpu" and not malloc_tuned_by_env():
        tune_malloc(False)   # every size's baseline runs on glibc's defaults (an earlier size tuned them)
    threads = torch.get_num_threads()
    for name, options, blocks, make_run in measured:
        if name.startswith("+ malloc"):
            tune_malloc()           # stays on for every later row, as `streamden denoise` runs
        if name.endswith("1 thread"):
            torch.set_num_threads(1)
        with _peak_memory(device) as memory:
            run = make_run()
            seconds = _best_seconds(run, device, repeat)
            del run
        torch.set_num_threads(threads)
        fps = count / seconds
        if name in ort_names:
            precision = _onnx_precision(ort_names[name], options)
        else:
            precision = _peak_key(resolve_precision(options.precision, device), device)
        tflops = blocks * block_flops * fps / 1e12
        _add(rows, BenchRow("network", name, fps, tflops=tflops, memory_mb=memory[0],
                             peak_share=tflops / peaks[precision] if precision in peaks else None,
                             note=precision))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return _with_ratios(rows)


def _onnx_precision(onnx_model: str, options: InferenceOptions) -> str:
    """The precision an onnxruntime row runs in: the export's, or the options' for an in-memory export."""
    if not onnx_model:
        return options.precision
    from .models.onnx_export import read_onnx_metadata, stage_paths

    return read_onnx_metadata(stage_paths(onnx_model)[0]).get("precision", "fp32")


def _with_ratios(rows: list[BenchRow]) -> list[BenchRow]:
    for row in rows:
        row.ratio = row.fps / rows[0].fps
    return rows


# --- alignment ----------------------------------------------------------------------------

def bench_alignment(frames: torch.Tensor, device: torch.device, repeat: int) -> list[BenchRow]:
    """Flow and warping per output frame: the device's backend against LK in plain torch."""
    from .align import WindowAligner
    from .align.flow import make_flow_estimator
    from .align.lk import LKParams, lk_flow_torch

    def torch_lk(ref: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        return lk_flow_torch(ref, moving, LKParams())

    backend = "LK, CUDA kernels" if device.type == "cuda" else "DIS medium, OpenCV"
    fast = make_flow_estimator("auto", device)
    estimators = [("LK in plain torch, window onto centre (baseline)", torch_lk, "window"),
                  (f"{backend}, window onto centre", fast, "window"),
                  (f"{backend}, triplets + stage-1 outputs (default)", fast, "triplet")]
    rows = []
    for name, estimator, mode in estimators:
        def run(estimator=estimator, mode=mode) -> None:
            aligner = WindowAligner(estimator, window=mode)
            count = frames.shape[0]
            for t in range(count):
                if mode == "window":
                    idx = list(window_indices(t, count))
                    aligner.align([frames[i] for i in idx], idx)
                else:   # the new triplet (t, t+1, t+2) onto t+1, then three images onto t
                    idx = [min(t + k, count - 1) for k in range(3)]
                    aligner.align([frames[i] for i in idx], idx)
                    near = [max(t - 1, 0), t, min(t + 1, count - 1)]
                    aligner.onto(t, [frames[i] for i in near], near)
                aligner.evict(t - 1)
        with _peak_memory(device) as memory:
            seconds = _best_seconds(run, device, repeat)
        _add(rows, BenchRow("align", name, frames.shape[0] / seconds, memory_mb=memory[0]))
    return _with_ratios(rows)


# --- end to end ---------------------------------------------------------------------------

def bench_end_to_end(size: tuple[int, int], frames: int, device: torch.device, encoder_preset: str,
                     repeat: int, model_path: str | None, backend: str = "torch",
                     onnx_model: str | None = None) -> list[BenchRow]:
    """A clip through the graph with the fast options against a synchronous naive loop; with
    ``backend`` onnxruntime, the graph on it too (the model exported in memory, and ``onnx_model``)."""
    from .api import denoise_video
    from .io import VideoFileSink, VideoFileSource
    from .io.hwaccel import nvdec_problem
    from .sample import write_clip

    rows = []
    with tempfile.TemporaryDirectory(prefix="streamden-bench-") as tmp:
        clip = write_clip(Path(tmp) / "noisy.mp4", noisy_frames(size, frames), audio=False, crf=18,
                          pix_fmt="yuv420p")
        weights = model_path or _bench_weights(Path(tmp), device)
        out = Path(tmp) / "out.mp4"

        def graph(**options) -> Callable[[], None]:
            options.setdefault("model", weights)
            return lambda: denoise_video(str(clip), str(out), preset="restoration", device=str(device),
                                         sigma=BENCH_SIGMA, overwrite=True, encoder_preset=encoder_preset,
                                         handle_signals=False, **options)

        def synchronous() -> None:
            model = load_model(weights, device=device)
            runner = NetworkRunner(model, device, InferenceOptions.naive())
            from .align import make_aligner
            from .config import AlignConfig
            aligner = make_aligner(AlignConfig(mode="flow", window="window"), device)   # four blocks per frame
            engine = StreamingDenoiser(runner, device, aligner=aligner)
            sink = VideoFileSink(str(out), fps=Fraction(25), width=size[0], height=size[1], overwrite=True,
                                 preset=encoder_preset)
            sink.open()
            pending = []

            def emit(ready):
                for _, image in ready:
                    frame = pending.pop(0)
                    sink.process(frame.with_image(tensor_to_image(image)))
            for frame in VideoFileSource(str(clip)).generate():
                pending.append(frame)
                emit(engine.push(image_to_tensor(frame.image, device), BENCH_SIGMA))
                _sync(device)
            emit(engine.finish())
            sink.outcome = "complete"
            sink.close()

        runs = [("synchronous loop, naive network, flow (baseline)", synchronous),
                ("graph, defaults, flow", graph()),
                ("graph, defaults, flow, decode in-process", graph(isolate=False)),
                ("graph, defaults, no alignment", graph(align="none"))]
        nvdec = device.type == "cuda" and nvdec_problem(str(clip)) is None
        if nvdec:
            runs.append(("graph, defaults, flow, NVDEC decoding", graph(hwaccel="cuda")))
        if backend == "onnxruntime":
            runs.append(("graph, onnxruntime fp32, flow", graph(backend="onnxruntime", precision="fp32")))
            if onnx_model:
                runs.append((f"graph, onnxruntime {Path(onnx_model).name}, flow",
                             graph(backend="onnxruntime", model=onnx_model)))
        for name, run in runs:
            with _peak_memory(device) as memory:   # a whole job: loading and start-up count
                seconds = _best_seconds(run, device, repeat, warm_up=False)
            _add(rows, BenchRow("end to end", name, frames / seconds, memory_mb=memory[0],
                                 note=f"libx264 {encoder_preset}"))
        rows = _with_ratios(rows)

        decoded = []
        seconds = _best_seconds(lambda: decoded.__setitem__(slice(None), list(VideoFileSource(str(clip)).generate())),
                                device, repeat, warm_up=False)
        _add(rows, BenchRow("bound", "decode (PyAV, software)", frames / seconds))
        if nvdec:
            seconds = _best_seconds(lambda: list(VideoFileSource(str(clip), hwaccel="cuda").generate()),
                                    device, repeat, warm_up=False)
            _add(rows, BenchRow("bound", "decode (PyAV, NVDEC)", frames / seconds))
        elif device.type == "cuda":
            _add(rows, BenchRow("bound", "decode (PyAV, NVDEC)", float("nan"), note="NVDEC unavailable: "
                                 + str(nvdec_problem(str(clip))[1])))

        def encode() -> None:
            sink = VideoFileSink(str(out), fps=Fraction(25), width=size[0], height=size[1], overwrite=True,
                                 preset=encoder_preset)
            sink.open()
            for frame in decoded:
                sink.process(frame)
            sink.outcome = "complete"
            sink.close()
        seconds = _best_seconds(encode, device, repeat, warm_up=False)
        _add(rows, BenchRow("bound", f"encode (libx264 {encoder_preset}, crf 18)", frames / seconds))
    return rows


def _bench_weights(folder: Path, device: torch.device) -> str:
    """The bench model as a weights file the graph can load (an untrained one if none ships)."""
    from .models.weights import save_weights

    path = folder / "bench.safetensors"
    save_weights(load_model(BENCH_MODEL, allow_untrained=True), path,
                 {"architecture": "fastdvdnet", "align": "flow", "note": "bench only"})
    return str(path)


# --- the whole run ------------------------------------------------------------------------

def run_bench(sizes: list[tuple[int, int]] | None = None, frames: int = 16, device: str = "auto",
              parts: tuple[str, ...] = PARTS, encoder_preset: str = "veryfast", repeat: int = 2,
              model: str | None = None, backend: str = "torch") -> BenchResult:
    """Measure the chosen ``parts`` at every size; see the module docstring for the rows.

    ``backend`` onnxruntime adds its rows beside torch's; ``model`` may then be an export
    ``NAME.onnx`` (the torch rows then run the bench model, which has the same shapes).

    >>> print(run_bench([(64, 48)], frames=6, device="cpu").format_table())  # doctest: +SKIP
    """
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown bench parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    from .config import BACKENDS
    from .errors import ConfigError
    from .models.onnx_export import import_onnxruntime, is_onnx_model

    if backend not in BACKENDS:
        raise ConfigError(f"bench: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if is_onnx_model(model) and backend != "onnxruntime":
        raise ConfigError(f"bench: {model} is an ONNX export; measure it with --backend onnxruntime")
    if backend == "onnxruntime":
        import_onnxruntime()
    dev = resolve_device(device)
    with torch.no_grad():
        return _run_sizes(sizes or [SIZES["540p"]], frames, dev, parts, encoder_preset, repeat, model, backend)


def _run_sizes(sizes: list[tuple[int, int]], frames: int, dev: torch.device, parts: tuple[str, ...],
               encoder_preset: str, repeat: int, model: str | None, backend: str = "torch") -> BenchResult:
    precisions = ["fp32", "tf32", "fp16", "bf16"] if dev.type == "cuda" else (
        ["fp32", "bf16"] if resolve_precision("auto", dev) == torch.bfloat16 else ["fp32"])
    result = BenchResult(device=str(dev), environment=environment(dev), peak_tflops=measure_peak_tflops(dev, precisions))
    from .models.onnx_export import is_onnx_model

    onnx_model = model if is_onnx_model(model) else None
    model = None if onnx_model else model
    net = load_model(model or BENCH_MODEL, device=dev, allow_untrained=True)
    for size in sizes:
        print(f"streamden bench: {size[0]}x{size[1]}, {frames} frames on {dev}", file=sys.stderr, flush=True)
        entry = SizeResult(width=size[0], height=size[1], frames=frames)
        images = noisy_frames(size, frames)
        tensors = torch.stack([image_to_tensor(image, dev) for image in images])
        if "network" in parts:
            entry.rows += bench_network(net, tensors, dev, result.peak_tflops, repeat, backend, onnx_model)
        if "align" in parts:
            entry.rows += bench_alignment(tensors, dev, repeat)
        del tensors
        if "end_to_end" in parts:
            entry.rows += bench_end_to_end(size, frames, dev, encoder_preset, repeat, model, backend, onnx_model)
        result.sizes.append(entry)
    return result
