"""`streamden bench`: throughput of each stage, as ratios against baselines timed in the same run.

Stages: decode (PyAV), the network uncached (four denoising blocks per frame: the
baseline) and streaming with the stage-1 cache (two blocks per frame), encode (libx264),
and the whole graph end to end. Speed depends on the weights' shapes only, so an
untrained network is timed when no weights ship.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from .models.registry import load_model
from .models.streaming import StreamingDenoiser, denoise_sequence
from .sample import render_scene, write_clip
from .tensors import image_to_tensor, resolve_device

MALLOC_VARS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@dataclass
class BenchRow:
    """One measured stage: frames per second, and the ratio to its baseline."""

    stage: str
    fps: float
    baseline: str = ""
    ratio: float | None = None


@dataclass
class BenchResult:
    """All rows plus the conditions they were measured under."""

    size: tuple[int, int]
    frames: int
    device: str
    hardware: str
    threads: int
    malloc_tuned: bool
    rows: list[BenchRow] = field(default_factory=list)

    def format_table(self) -> str:
        """An aligned text table with the conditions on top."""
        head = (f"streamden bench: {self.size[0]}x{self.size[1]}, {self.frames} frames, device {self.device} "
                f"({self.hardware}), {self.threads} threads, malloc tuned: {self.malloc_tuned}")
        lines = [head, f"{'stage':<28}{'fps':>10}  vs baseline"]
        for row in self.rows:
            ratio = f"{row.ratio:.2f}x {row.baseline}" if row.ratio is not None else ""
            lines.append(f"{row.stage:<28}{row.fps:>10.2f}  {ratio}")
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        """Write the result as JSON."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def _timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_bench(size: tuple[int, int] = (640, 360), frames: int = 24, device: str = "auto") -> BenchResult:
    """Time decode, network (uncached vs cached), encode and the whole graph at ``size``.

    >>> print(run_bench((64, 48), frames=6, device="cpu").format_table())  # doctest: +SKIP
    """
    from .api import denoise_video
    from .io import VideoFileSink, VideoFileSource

    dev = resolve_device(device)
    hardware = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    result = BenchResult(size=size, frames=frames, device=str(dev), hardware=f"{hardware}, {os.cpu_count()} cores",
                         threads=torch.get_num_threads(), malloc_tuned=all(v in os.environ for v in MALLOC_VARS))
    clean = render_scene(frames, size)
    with tempfile.TemporaryDirectory(prefix="streamden-bench-") as tmp:
        clip = write_clip(Path(tmp) / "bench.mp4", clean, audio=False, pix_fmt="yuv420p")

        decoded = []
        t = _timed(lambda: decoded.extend(VideoFileSource(str(clip)).generate()))
        result.rows.append(BenchRow("decode (PyAV)", frames / t))

        model = load_model(device=dev, allow_untrained=True)
        tensors = torch.stack([image_to_tensor(f.image, dev) for f in decoded[:frames]])
        with torch.inference_mode():
            denoise_sequence(model, tensors[:3], 25.0)  # warm-up
            _sync(dev)
            t_base = _timed(lambda: (denoise_sequence(model, tensors, 25.0), _sync(dev)))

            def streaming() -> None:
                engine = StreamingDenoiser(model, device=dev, amp=dev.type == "cuda")
                for frame in tensors:
                    engine.push(frame, 25.0)
                engine.finish()
                _sync(dev)
            t_stream = _timed(streaming)
        result.rows.append(BenchRow("network uncached (4 blocks)", frames / t_base))
        result.rows.append(BenchRow("network streaming (2 blocks)", frames / t_stream, "network uncached",
                                    t_base / t_stream))

        out = Path(tmp) / "encoded.mp4"

        def encode() -> None:
            sink = VideoFileSink(str(out), fps=Fraction(25), width=size[0], height=size[1], overwrite=True)
            sink.open()
            for f in decoded:
                sink.process(f)
            sink.outcome = "complete"
            sink.close()
        t = _timed(encode)
        result.rows.append(BenchRow("encode (libx264 medium)", frames / t))

        weights = Path(tmp) / "bench.safetensors"
        from .models.weights import save_weights
        save_weights(model, weights, {"architecture": "fastdvdnet", "note": "bench only"})
        t = _timed(lambda: denoise_video(str(clip), str(Path(tmp) / "graph.mp4"), preset="restoration",
                                         model=str(weights), device=str(dev), sigma=25, overwrite=True,
                                         encoder_preset="medium", handle_signals=False))
        result.rows.append(BenchRow("whole graph (decode..encode)", frames / t, "network streaming", t_stream / t))
    return result
