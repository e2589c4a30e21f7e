"""Export a network's two stages to ONNX, each its own file, with our metadata inside.

``streamden export MODEL -o OUT.onnx`` writes ``OUT.stage1.onnx`` and ``OUT.stage2.onnx``:
the stages are separate graphs so that the streaming engine's stage-1 cache works with any
runtime (stage 1 once per new triplet, stage 2 once per output frame). Each graph takes

* ``frames``: ``(N, 3, 3, H, W)`` float32 RGB in [0, 1] (stage 1: a triplet of frames;
  stage 2: the three stage-1 outputs of a window),
* ``noise_map``: ``(N, 1, H, W)`` float32, sigma/255 per pixel,

and returns ``output`` ``(N, 3, H, W)`` float32. Batch, height and width are dynamic; H and W
must be multiples of the padding multiple (4): pad with reflection and crop back (see the
``streamden.padding`` metadata). fp16 and int8 files keep float32 inputs and outputs (the
casts, or the quantise/dequantise pairs, are inside the graph), so one runner serves all.

Every export is checked twice before its file is moved into place: ``onnx.checker`` with
shape inference, and a parity run in ONNX Runtime against the torch model on a random
window (fp32 within :data:`FP32_TOLERANCE`; fp16 reports its PSNR against fp32, int8 its PSNR
on a calibration window; both are kept in the metadata as ``parity_*``).

>>> stage_paths("out/model.onnx")[1].as_posix()
'out/model.stage2.onnx'
"""
from __future__ import annotations

import copy
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import ConfigError, ModelError
from .fastdvdnet import PAD_MULTIPLE, WINDOW
from .accel import fold_batchnorm

ONNX_EXTRA = 'pip install "streamden[onnx]"'
DEFAULT_OPSET = 17
MIN_OPSET = 13              # DepthToSpace (PixelShuffle) CRD mode and the per-axis QDQ int8 needs
FP32_TOLERANCE = 1e-4       # largest absolute difference from torch allowed for an fp32 export
INPUT_NAMES = ("frames", "noise_map")
OUTPUT_NAME = "output"
STAGES = (1, 2)
META_PREFIX = "streamden."
#: Keys of a weights file's metadata that describe how it was trained (copied as ``training.*``).
RECIPE_KEYS = ("optimizer", "steps", "batch", "patch", "loss", "sigma_sampling", "augment", "noise_model",
               "noise_clip", "precision", "training_data", "hardware", "git_commit", "val_psnr", "val_sigma",
               "val_psnr_sigma30")   # the last: what weights trained before val_sigma was recorded carry


def missing_extra(module: str) -> ConfigError:
    """The one error a missing ONNX package gives, naming the extra that installs it."""
    return ConfigError(f"the ONNX features need the {module!r} package, which is not installed: {ONNX_EXTRA}")


def import_onnx():
    """The ``onnx`` module, or one ConfigError naming the ``onnx`` extra."""
    try:
        import onnx
    except ImportError:
        raise missing_extra("onnx") from None
    return onnx


def import_onnxruntime():
    """The ``onnxruntime`` module, or one ConfigError naming the ``onnx`` extra."""
    try:
        import onnxruntime
    except ImportError:
        raise missing_extra("onnxruntime") from None
    return onnxruntime


def stage_paths(path: str | Path) -> tuple[Path, Path]:
    """The two files an export named ``path`` consists of: ``X.stage1.onnx`` and ``X.stage2.onnx``.

    ``path`` may be the name given to the export (``X.onnx``) or either stage's file.

    >>> [p.name for p in stage_paths("m.onnx")], [p.name for p in stage_paths("m.stage2.onnx")]
    (['m.stage1.onnx', 'm.stage2.onnx'], ['m.stage1.onnx', 'm.stage2.onnx'])
    """
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    for n in STAGES:
        if stem.endswith(f".stage{n}"):
            stem = stem[: -len(f".stage{n}")]
    return tuple(path.with_name(f"{stem}.stage{n}.onnx") for n in STAGES)  # type: ignore[return-value]


def is_onnx_model(name_or_path: str | None) -> bool:
    """True when a ``model.name`` names an exported ONNX model (a path ending in ``.onnx``).

    >>> is_onnx_model("out/m.onnx"), is_onnx_model("fastdvdnet-aligned")
    (True, False)
    """
    return bool(name_or_path) and str(name_or_path).endswith(".onnx")


class _Stage(nn.Module):
    """One stage of a network as a module of its own (``forward(frames, noise_map)``), in fp16
    inside when ``half`` (float32 in and out)."""

    def __init__(self, model: nn.Module, stage: int, half: bool = False) -> None:
        super().__init__()
        self.model = model.half() if half else model
        self.stage = stage
        self.half = half

    def forward(self, frames: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        fn = self.model.stage1 if self.stage == 1 else self.model.stage2
        out = fn(frames.half(), noise_map.half()).float() if self.half else fn(frames, noise_map)
        if getattr(self.model, "single_stage", False) and self.stage == 2:
            # LiteDVD's stage 2 only picks a frame: without a use of the noise map the exporter
            # drops that input and the file loses the interface every stage file shares.
            out = out + 0.0 * noise_map.amax()
        return out


def pad_multiple(model: nn.Module) -> int:
    """The multiple a network's input height and width must be (4 for FastDVDnet)."""
    return int(getattr(model, "pad_multiple", PAD_MULTIPLE))


def example_inputs(batch: int, height: int, width: int, seed: int = 0,
                   sigma: float = 25.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random stage input: frames ``(batch, 3, 3, H, W)`` in [0, 1] and a noise map of ``sigma``
    (0-255) varying a little per pixel.

    >>> [tuple(t.shape) for t in example_inputs(2, 8, 12)]
    [(2, 3, 3, 8, 12), (2, 1, 8, 12)]
    """
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, 3, 3, height, width, generator=gen)
    noise_map = (sigma + 5 * torch.rand(batch, 1, height, width, generator=gen)) / 255.0
    return frames, noise_map


def export_stage(model: nn.Module, stage: int, opset: int = DEFAULT_OPSET, fp16: bool = False) -> bytes:
    """One stage of ``model`` (anything with ``stage1``/``stage2``) as a serialised ONNX graph with
    dynamic batch, height and width; BatchNorm is folded into the convolutions first.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> blob = export_stage(FastDVDnet(), 1)   # doctest: +SKIP
    """
    check_opset(opset)
    if stage not in STAGES:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    # A folded copy on the CPU: the exporter rewrites the parameters it is given in place.
    net = fold_batchnorm(copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format))
    wrapper = _Stage(net, stage, half=fp16).eval()
    multiple = pad_multiple(model)
    # Distinct sizes, so that the tracer cannot mistake height for width or batch.
    args = example_inputs(2, 5 * multiple, 7 * multiple)
    dims = {0: "batch", 3: "height", 4: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (which needs the
        # onnxscript package); it exports this convolutional graph with dynamic sizes as is.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(wrapper, args, buffer, dynamo=False, opset_version=opset,
                              input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                              dynamic_axes={"frames": dims, "noise_map": {0: "batch", 2: "height", 3: "width"},
                                            OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}},
                              do_constant_folding=True)
    return buffer.getvalue()


def check_opset(opset: int) -> None:
    """A ConfigError unless ``opset`` lies between :data:`MIN_OPSET` and what the installed
    ``onnx`` (and the torch exporter) support."""
    onnx = import_onnx()
    try:   # the TorchScript exporter's own limit (torch 2.13: 20)
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as torch_max
    except ImportError:
        torch_max = DEFAULT_OPSET
    top = min(onnx.defs.onnx_opset_version(), torch_max)
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise ConfigError(f"--opset must be a whole number from {MIN_OPSET} to {top}, got {opset!r}")


def model_metadata(name_or_path: str | None) -> dict[str, str]:
    """What a model is, as ONNX metadata: name, architecture, training recipe, alignment, sigma range."""
    from .registry import get_card
    from .weights import read_metadata

    if name_or_path and str(name_or_path).endswith(".safetensors"):
        weights = read_metadata(name_or_path)
        meta = {"model": Path(name_or_path).stem, "architecture": weights.get("architecture", "fastdvdnet"),
                "align": weights.get("align", "none"), "sigma_range": weights.get("sigma_range", ""),
                "description": weights.get("description", "")}
    else:
        card = get_card(name_or_path)
        weights = read_metadata(card.weights_path) if card.is_trained else {}
        meta = {"model": card.name, "architecture": card.architecture, "align": card.align,
                "sigma_range": json.dumps(list(card.sigma_range)), "description": card.description,
                "licence": card.licence, "noise_model": card.noise_model}
    meta.update({f"training.{key}": str(weights[key]) for key in RECIPE_KEYS if key in weights})
    return {k: v for k, v in meta.items() if v != ""}


def stage_metadata(base: dict[str, str], stage: int, precision: str, opset: int, multiple: int,
                   extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The ``streamden.*`` metadata of one exported stage file.

    >>> stage_metadata({"model": "m"}, 2, "fp32", 17, 4)["streamden.stage"]
    '2'
    """
    meta = dict(base)
    meta.update({
        "stage": str(stage),
        "stage_role": "stage 1: one triplet of frames -> its stage-1 output (cached by streaming)" if stage == 1
        else "stage 2: the three stage-1 outputs of a window -> the denoised centre frame",
        "precision": precision,
        "opset": str(opset),
        "window": str(WINDOW),
        "input_range": "RGB float32 in [0, 1]",
        "noise_map": "float32 (N, 1, H, W): sigma/255 per pixel (sigma on the 0-255 scale)",
        "padding": f"H and W padded to a multiple of {multiple} with reflection (replicate when the frame is "
                   f"smaller than the padding), output cropped back",
        "pad_multiple": str(multiple),
        "inputs": "frames (N, 3, 3, H, W), noise_map (N, 1, H, W)",
        "outputs": "output (N, 3, H, W)",
        "streamden_version": __version__,
    })
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return {META_PREFIX + k: v for k, v in meta.items()}


def set_metadata(proto, metadata: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of an ONNX model proto (keys we own) with ``metadata``."""
    keep = [p for p in proto.metadata_props if not p.key.startswith(META_PREFIX)]
    del proto.metadata_props[:]
    for prop in keep:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``streamden.*`` metadata of an exported stage file, without the prefix.

    Raises ModelError when the file is missing or not an ONNX model.
    """
    onnx = import_onnx()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ONNX file not found (an export writes NAME.stage1.onnx and NAME.stage2.onnx)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:   # protobuf raises DecodeError and others for a bad file
        raise ModelError(f"{path}: not an ONNX model ({exc})") from None
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(META_PREFIX)}


def check_model_bytes(data: bytes, label: str) -> None:
    """``onnx.checker`` with shape inference on a serialised model; a ModelError names ``label``."""
    onnx = import_onnx()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:   # ValidationError, InferenceError
        raise ModelError(f"{label}: the exported graph fails onnx.checker ({exc})") from None


@dataclass
class Parity:
    """How an exported stage compares with the torch fp32 stage on the same random input."""

    max_abs: float
    psnr_db: float
    shape: tuple[int, ...]

    def as_metadata(self) -> dict[str, str]:
        """``parity_*`` metadata entries."""
        return {"parity_max_abs": f"{self.max_abs:.3g}", "parity_psnr_db": f"{self.psnr_db:.2f}",
                "parity_input": "x".join(map(str, self.shape))}


def stage_parity(session, model: nn.Module, stage: int, feed: dict[str, Any] | None = None) -> Parity:
    """Run ``session`` (ONNX Runtime) and the torch fp32 stage on one input and compare: ``feed``
    (numpy ``frames`` and ``noise_map``), or a random ``2x3x3x36x52`` window."""
    if feed is None:
        frames, noise_map = example_inputs(2, 36, 52)
    else:
        frames, noise_map = torch.from_numpy(feed["frames"]), torch.from_numpy(feed["noise_map"])
    got = session.run([OUTPUT_NAME], {"frames": frames.numpy(), "noise_map": noise_map.numpy()})[0]
    net = copy.deepcopy(model).float().to("cpu").eval()
    with torch.no_grad():
        want = (net.stage1 if stage == 1 else net.stage2)(frames, noise_map)
    diff = torch.from_numpy(got) - want
    mse = float(diff.square().mean())
    return Parity(max_abs=float(diff.abs().max()), psnr_db=math.inf if mse == 0 else -10 * math.log10(mse),
                  shape=tuple(frames.shape))


def cpu_session(data: bytes | str):
    """An ONNX Runtime session on the CPU execution provider, all graph optimisations on."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass
class ExportResult:
    """What an export wrote: the two files, their precision and their parity with torch fp32."""

    paths: tuple[Path, Path]
    precision: str
    parity: list[Parity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per stage for the command's output."""
        lines = []
        for path, parity in zip(self.paths, self.parity):
            source = "calibration window" if self.precision == "int8" else "random input"
            lines.append(f"wrote {path} ({self.precision}; against torch fp32: max |diff| {parity.max_abs:.2g}, "
                         f"PSNR {parity.psnr_db:.1f} dB on a {'x'.join(map(str, parity.shape))} {source})")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def export_model(name_or_path: str | None, output: str | Path, *, opset: int = DEFAULT_OPSET, fp16: bool = False,
                 int8: bool = False, calibrate: str | Path | None = None, windows: int = 24, crop: int = 128,
                 overwrite: bool = False, model: nn.Module | None = None) -> ExportResult:
    """Export a registered model or weights file (or ``model``, a network) to ``OUTPUT.stage1.onnx``
    and ``OUTPUT.stage2.onnx``.

    ``fp16`` stores the weights and runs the convolutions in half precision; ``int8``
    quantises both stages statically (QDQ) with ``windows`` calibration windows of
    ``crop`` x ``crop`` pixels read from the footage in ``calibrate``
    (:mod:`streamden.models.quantize`). Each file is checked (``onnx.checker``), compared
    with torch in ONNX Runtime, and only then moved into place; fp32 must match within
    :data:`FP32_TOLERANCE`. Raises ConfigError (options, missing extra), ModelError (unknown
    model, failed check or parity), OutputError (unwritable or existing output), InputError
    (a calibration folder without frames).

    >>> export_model("fastdvdnet-aligned", "model.onnx")  # doctest: +SKIP
    """
    from ..io.atomic import check_output_path, commit, discard, partial_path
    from .registry import load_model

    if fp16 and int8:
        raise ConfigError("--fp16 and --int8 exclude each other: choose one precision")
    if int8 and calibrate is None:
        raise ConfigError("--int8 needs --calibrate DIR: footage (video files or frame folders) to calibrate on")
    if calibrate is not None and not int8:
        raise ConfigError("--calibrate is for --int8 exports only")
    if not str(output).endswith(".onnx"):
        raise ConfigError(f"{output}: the output of an export is a NAME.onnx path "
                          f"(it writes NAME.stage1.onnx and NAME.stage2.onnx)")
    check_opset(opset)
    import_onnxruntime()
    paths = stage_paths(output)
    for path in paths:
        check_output_path(path, overwrite=overwrite)
    net = model if model is not None else load_model(name_or_path, device="cpu")
    base = model_metadata(name_or_path) if model is None else {"model": type(model).__name__}
    calibration = None
    if int8:
        from .quantize import calibration_inputs

        calibration = calibration_inputs(net, calibrate, windows=windows, crop=crop)   # InputError first
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    result = ExportResult(paths=paths, precision=precision)
    data = []
    for stage, path in zip(STAGES, paths):
        blob = export_stage(net, stage, opset, fp16=fp16)
        extra: dict[str, Any] = {}
        if calibration is not None:
            from .quantize import quantize_stage

            blob, extra = quantize_stage(blob, calibration[stage - 1], label=f"{path.name}")
        check_model_bytes(blob, str(path))
        # int8 is compared on a calibration window: random stage-2 input lies outside its ranges.
        parity = stage_parity(cpu_session(blob), net, stage, calibration[stage - 1][0] if calibration else None)
        if precision == "fp32" and not parity.max_abs <= FP32_TOLERANCE:
            raise ModelError(f"{path}: ONNX Runtime differs from torch by {parity.max_abs:.3g} "
                             f"(at most {FP32_TOLERANCE} allowed for fp32)")
        result.parity.append(parity)
        onnx = import_onnx()
        proto = onnx.load_from_string(blob)
        set_metadata(proto, stage_metadata(base, stage, precision, opset, pad_multiple(net),
                                           {**extra, **parity.as_metadata()}))
        data.append(proto.SerializeToString())
    written = []
    try:
        for path, blob in zip(paths, data):
            tmp = partial_path(path)
            tmp.write_bytes(blob)
            written.append(tmp)
        for path, tmp in zip(paths, written):
            commit(tmp, path)
    finally:
        for tmp in written:
            discard(tmp)
    return result
