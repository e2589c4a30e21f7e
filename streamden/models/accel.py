"""How the network runs fast: precision, memory format, BatchNorm folding, cuDNN autotuning
and CUDA graphs, each a switch of :class:`InferenceOptions` so that the benchmark can measure
every one on its own against the naive baseline (:meth:`InferenceOptions.naive`).

:class:`NetworkRunner` wraps a FastDVDnet (or a :class:`~streamden.models.tiling.TiledModel`)
and exposes the same ``stage1`` / ``stage2`` calls, run the way the options say. Batching
several frames per call lives in :class:`~streamden.models.streaming.StreamingDenoiser`.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .wrapper import Stage

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class InferenceOptions:
    """How the network runs. The defaults are the fast path; :meth:`naive` is the baseline.

    * ``precision``: ``auto`` (fp16 autocast on CUDA, bf16 autocast on a CPU with native
      bf16, fp32 elsewhere), ``fp32``, ``fp16`` or ``bf16``. Reduced precision is autocast:
      the convolutions run in it, the residual ``centre - prediction`` stays float32.
    * ``channels_last``: NHWC weights and activations (tensor cores and oneDNN want them).
    * ``fold_batchnorm``: fold every BatchNorm into the convolution before it (eval only),
      which removes one pass over every feature map.
    * ``cudnn_benchmark``: let cuDNN time its algorithms once per input shape.
    * ``cuda_graphs``: capture each stage once per input shape and replay it (no launch
      overhead). Ignored on the CPU and for tiled models, whose tile shapes vary.
    * ``batch``: output frames computed per network call by the streaming engine (latency
      grows by ``batch - 1`` frames).

    >>> InferenceOptions.naive().precision, InferenceOptions().fold_batchnorm
    ('fp32', True)
    """

    precision: str = "auto"
    channels_last: bool = True
    fold_batchnorm: bool = True
    cudnn_benchmark: bool = True
    cuda_graphs: bool = True
    batch: int = 1

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"model.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if int(self.batch) < 1:
            raise ConfigError(f"model.batch must be at least 1, got {self.batch!r}")

    @classmethod
    def naive(cls) -> "InferenceOptions":
        """The baseline: fp32, NCHW, BatchNorm as trained, no autotuning, no graphs, one frame a call.

        It computes what the reference :func:`~streamden.models.streaming.denoise_sequence` does.
        """
        return cls(precision="fp32", channels_last=False, fold_batchnorm=False, cudnn_benchmark=False,
                   cuda_graphs=False, batch=1)

    def with_(self, **changes) -> "InferenceOptions":
        """A copy with some fields changed.

        >>> InferenceOptions.naive().with_(precision="bf16").precision
        'bf16'
        """
        return dataclasses.replace(self, **changes)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (AVX-512 BF16 or AMX, through oneDNN)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype:
    """The dtype the convolutions run in for ``precision`` on ``device``.

    >>> resolve_precision("fp32", "cpu")
    torch.float32
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"model.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("model.precision fp16 runs on CUDA only; use bf16 or fp32 on the CPU")
    return DTYPES[precision]


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (nothing for float32). The weight-cast cache is off so
    that the context can sit inside a CUDA graph capture."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every ``Conv2d -> BatchNorm2d`` pair inside an
    ``nn.Sequential`` folded into the convolution; the BatchNorm becomes ``nn.Identity``.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> folded = fold_batchnorm(FastDVDnet().eval())
    >>> any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    False
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module[i] = _fold_pair(conv, norm)
                module[i + 1] = nn.Identity()
    return folded


def _fold_pair(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        fused = copy.deepcopy(conv)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        fused.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
    return fused


def prepare_model(model: nn.Module, device: torch.device, options: InferenceOptions) -> nn.Module:
    """``model`` on ``device`` in eval mode, folded and in the memory format ``options`` ask for.

    Always a copy: the caller's model (perhaps shared) keeps its weights and layout.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> net = prepare_model(FastDVDnet(), torch.device("cpu"), InferenceOptions.naive())
    >>> net.temp1.inc.convblock[0].weight.is_contiguous()
    True
    """
    model = copy.deepcopy(model).to(device).eval()
    if options.fold_batchnorm:
        model = fold_batchnorm(model)
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    return model.to(memory_format=memory_format)


class _GraphedStage:
    """One stage captured as a CUDA graph per input shape, replayed on copies of the inputs."""

    def __init__(self, fn: Stage) -> None:
        self.fn = fn
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), tuple(noise_map.shape), x.dtype, x.device)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(x, noise_map)
        graph, static_x, static_map, static_out = entry
        static_x.copy_(x)
        static_map.copy_(noise_map)
        graph.replay()
        return static_out.clone()   # the next replay overwrites static_out

    def _capture(self, x: torch.Tensor, noise_map: torch.Tensor):
        static_x, static_map = x.clone(), noise_map.clone()
        # Warm up on a side stream (cuDNN autotuning and lazy allocations must not be captured).
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.fn(static_x, static_map)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the upload and download threads keep making CUDA calls during a capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self.fn(static_x, static_map)
        return graph, static_x, static_map, static_out


class NetworkRunner:
    """A FastDVDnet's ``stage1`` / ``stage2`` run the way :class:`InferenceOptions` say.

    Outputs are float32 whatever the precision. Share one runner between streams that share
    a network (its CUDA graphs and folded weights are built once).

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> runner = NetworkRunner(FastDVDnet(), "cpu", InferenceOptions.naive())
    >>> runner.stage1(torch.rand(1, 3, 3, 8, 8), torch.full((1, 1, 8, 8), 0.1)).shape
    torch.Size([1, 3, 8, 8])
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 options: InferenceOptions | None = None) -> None:
        self.device = torch.device(device)
        self.options = options or InferenceOptions.naive()
        self.dtype = resolve_precision(self.options.precision, self.device)
        self.model = prepare_model(model, self.device, self.options)
        on_cuda = self.device.type == "cuda"
        tiled = getattr(self.model, "tile", 0) > 0
        self.graphed = on_cuda and self.options.cuda_graphs and not tiled
        self._stage1: Stage = self._in_precision(self.model.stage1)
        self._stage2: Stage = self._in_precision(self.model.stage2)
        if self.graphed:
            self._stage1, self._stage2 = _GraphedStage(self._stage1), _GraphedStage(self._stage2)

    def _in_precision(self, stage: Stage) -> Stage:
        def run(x: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
            if self.device.type == "cuda":
                # A process-wide switch: set on every call, so each runner gets its own setting.
                torch.backends.cudnn.benchmark = self.options.cudnn_benchmark
            with torch.no_grad(), autocast(self.device, self.dtype):
                return stage(x, noise_map).float()
        return run

    def stage1(self, triplets: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        """Stage-1 outputs ``(N, 3, H, W)`` for triplets ``(N, 3, 3, H, W)`` and maps ``(N, 1, H, W)``."""
        return self._stage1(triplets, noise_maps)

    def stage2(self, stage1_outputs: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        """Final outputs ``(N, 3, H, W)`` from stage-1 outputs ``(N, 3, 3, H, W)``."""
        return self._stage2(stage1_outputs, noise_maps)
