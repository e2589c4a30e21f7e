"""The ONNX Runtime backend (``model.backend: onnxruntime``): the same ``stage1``/``stage2`` calls
as :class:`~streamden.models.accel.NetworkRunner`, run by ONNX Runtime sessions.

The streaming engine, alignment, tiling and the stage-1 cache are unchanged; only the network
call differs. The network comes from an export (``model.name: NAME.onnx``, the pair
``NAME.stage1.onnx`` / ``NAME.stage2.onnx`` written by ``streamden export``, fp32, fp16 or
int8), or a registered model or weights file exported in memory when the engine is built
(fp32; fp16 when ``model.precision`` asks). Sessions run on the CPU execution provider, or
the CUDA one on a CUDA device where the installed onnxruntime has it; tensors are bound in
place (I/O binding), so nothing is copied on either.

>>> from streamden.models.fastdvdnet import FastDVDnet
>>> runner = OrtRunner(network_from_module(FastDVDnet().eval(), "cpu"))   # doctest: +SKIP
>>> runner.stage1(torch.rand(1, 3, 3, 8, 8), torch.full((1, 1, 8, 8), 0.1)).shape  # doctest: +SKIP
torch.Size([1, 3, 8, 8])
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ModelError
from .accel import InferenceOptions
from .registry import ARCHITECTURES
from .onnx_export import (INPUT_NAMES, OUTPUT_NAME, export_stage, import_onnxruntime, pad_multiple,
                          read_onnx_metadata, stage_paths)

CHANNELS = 3
#: ``model.precision`` values the backend runs a registered model in (exported in memory).
ORT_PRECISIONS = {"auto", "fp32", "fp16"}


def providers_for(device: torch.device) -> list[str]:
    """The execution providers for ``device``: CPU, or CUDA then CPU (ConfigError when the installed
    onnxruntime has no CUDA provider)."""
    ort = import_onnxruntime()
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    raise ConfigError(f"the onnxruntime backend cannot run on {device}: this onnxruntime has no "
                      f"{device.type.upper()} execution provider (install onnxruntime-gpu, or use --device cpu)")


def make_session(model: bytes | str | Path, device: torch.device, label: str):
    """An ONNX Runtime session for one stage on ``device``; a ModelError names ``label`` if it fails."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if device.type == "cpu":
        options.intra_op_num_threads = torch.get_num_threads()   # as torch: fair comparisons, no oversubscription
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers_for(device))
    except ConfigError:
        raise
    except Exception as exc:   # onnxruntime raises its own Fail/InvalidGraph/... types
        raise ModelError(f"{label}: ONNX Runtime cannot load it ({exc})") from None
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != (list(INPUT_NAMES), [OUTPUT_NAME]):
        raise ModelError(f"{label}: not a streamden stage (inputs {names[0]}, outputs {names[1]}; expected "
                         f"{list(INPUT_NAMES)} -> {OUTPUT_NAME})")
    return session


class OrtNetwork:
    """Two ONNX Runtime sessions with a network's ``stage1`` / ``stage2`` interface on torch tensors.

    ``metadata`` is the export's (``streamden.*`` keys, prefix dropped): model, precision,
    alignment, padding multiple.
    """

    def __init__(self, stage1, stage2, device: str | torch.device = "cpu",
                 metadata: dict[str, str] | None = None) -> None:
        self.device = torch.device(device)
        self.sessions = (stage1, stage2)
        self.metadata = dict(metadata or {})
        self.multiple = int(self.metadata.get("pad_multiple", 4))
        # One block per output frame (LiteDVD): the streaming engine then skips stage 2.
        architecture = ARCHITECTURES.get(self.metadata.get("architecture", ""))
        self.single_stage = (self.metadata.get("single_stage") == "true"
                             or bool(getattr(architecture, "single_stage", False)))

    @property
    def precision(self) -> str:
        """fp32, fp16 or int8: what the export holds."""
        return self.metadata.get("precision", "fp32")

    def stage1(self, triplets: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        """Stage-1 outputs ``(N, 3, H, W)`` for triplets ``(N, 3, 3, H, W)`` and maps ``(N or 1, 1, H, W)``."""
        return self._run(0, triplets, noise_maps)

    def stage2(self, stage1_outputs: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        """Final outputs ``(N, 3, H, W)`` from stage-1 outputs ``(N, 3, 3, H, W)``."""
        return self._run(1, stage1_outputs, noise_maps)

    def _run(self, stage: int, frames: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        n, _, _, height, width = frames.shape
        if height % self.multiple or width % self.multiple:
            raise ValueError(f"stage {stage + 1}: height and width must be multiples of {self.multiple} "
                             f"(pad with reflection), got {height}x{width}")
        frames = frames.detach().to(self.device, torch.float32).contiguous()
        noise_maps = noise_maps.detach().to(self.device, torch.float32).expand(n, 1, height, width).contiguous()
        out = torch.empty((n, CHANNELS, height, width), device=self.device, dtype=torch.float32)
        kind, index = self.device.type, self.device.index or 0
        session = self.sessions[stage]
        binding = session.io_binding()
        for name, tensor in zip(INPUT_NAMES, (frames, noise_maps)):
            binding.bind_input(name, kind, index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        binding.bind_output(OUTPUT_NAME, kind, index, np.float32, tuple(out.shape), out.data_ptr())
        if kind == "cuda":
            torch.cuda.current_stream(self.device).synchronize()   # ONNX Runtime runs on a stream of its own
        session.run_with_iobinding(binding)
        return out


def load_onnx_network(path: str | Path, device: str | torch.device = "cpu") -> OrtNetwork:
    """The export ``path`` names (``NAME.onnx`` or either stage file) as an :class:`OrtNetwork`.

    Raises ModelError when a stage file is missing, is not an ONNX model, or the two stages
    come from different exports.
    """
    device = torch.device(device)
    paths = stage_paths(path)
    metas = [read_onnx_metadata(p) for p in paths]
    for n, (p, meta) in enumerate(zip(paths, metas), start=1):
        if meta.get("stage") != str(n):
            raise ModelError(f"{p}: not stage {n} of a streamden export (its metadata says "
                             f"stage {meta.get('stage', 'none')})")
    keys = ("model", "precision", "streamden_version")
    if any(metas[0].get(k) != metas[1].get(k) for k in keys):
        raise ModelError(f"{paths[0]} and {paths[1]} come from different exports "
                         f"({', '.join(f'{k} {metas[0].get(k)} / {metas[1].get(k)}' for k in keys)})")
    sessions = [make_session(p, device, str(p)) for p in paths]
    return OrtNetwork(*sessions, device=device, metadata=metas[0])


def network_from_module(model: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32",
                        name: str = "") -> OrtNetwork:
    """A torch network exported in memory (both stages, fp32 or fp16) and loaded into ONNX Runtime."""
    device = torch.device(device)
    fp16 = precision == "fp16"
    sessions = [make_session(export_stage(model, stage, fp16=fp16), device, f"{name or 'model'} stage {stage}")
                for stage in (1, 2)]
    return OrtNetwork(*sessions, device=device, metadata={
        "model": name, "precision": "fp16" if fp16 else "fp32", "pad_multiple": str(pad_multiple(model)),
        "single_stage": str(bool(getattr(model, "single_stage", False))).lower()})


class OrtRunner:
    """The onnxruntime backend as the engine holds it: :class:`~streamden.models.accel.NetworkRunner`'s
    ``stage1`` / ``stage2`` / ``options`` / ``model`` over an :class:`OrtNetwork` (perhaps tiled).

    Of the inference options only ``batch`` applies (ONNX Runtime picks its own layout, the
    export folds BatchNorm, precision is the export's). Outputs are float32.
    """

    def __init__(self, network: Any, options: InferenceOptions | None = None) -> None:
        self.model = network
        self.network: OrtNetwork = getattr(network, "inner", network)
        self.device = self.network.device
        self.options = options or InferenceOptions(precision="fp32")

    def stage1(self, triplets: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        """Stage-1 outputs ``(N, 3, H, W)`` for triplets ``(N, 3, 3, H, W)`` and maps ``(N, 1, H, W)``."""
        return self.model.stage1(triplets, noise_maps)

    def stage2(self, stage1_outputs: torch.Tensor, noise_maps: torch.Tensor) -> torch.Tensor:
        """Final outputs ``(N, 3, H, W)`` from stage-1 outputs ``(N, 3, 3, H, W)``."""
        return self.model.stage2(stage1_outputs, noise_maps)


def ort_network(name: str | None, device: torch.device, precision: str = "auto", model: nn.Module | None = None,
                allow_untrained: bool = False) -> OrtNetwork:
    """The network of ``model.name`` (an export, a registered model or a weights file; or ``model``,
    a torch network) for the onnxruntime backend, checking ``model.precision`` against it."""
    from .onnx_export import is_onnx_model
    from .registry import load_model

    import_onnxruntime()   # the missing extra is the first thing said
    if model is None and is_onnx_model(name):
        network = load_onnx_network(name, device)
        if precision not in ("auto", network.precision):
            raise ConfigError(f"model.precision {precision} does not match {name}, an {network.precision} export: "
                              f"an export fixes its precision (leave model.precision at auto)")
        return network
    if precision not in ORT_PRECISIONS:
        raise ConfigError(f"model.precision {precision} is not available on the onnxruntime backend (auto, fp32 "
                          f"or fp16; int8: export with `streamden export --int8` and pass the .onnx file)")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    module = model if model is not None else load_model(name, device="cpu", allow_untrained=allow_untrained)
    return network_from_module(module, device, precision, name=str(name or ""))
