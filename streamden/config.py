"""Typed config objects, YAML presets from configs/, and dotted ``key=value`` overrides.

A config is a tree of dataclasses. :func:`build` turns a plain dict into that tree and
rejects any key the dataclass does not declare, naming the full dotted key; values are
checked against the field's type. :func:`apply_overrides` applies ``section.key=value``
strings (values parsed as YAML scalars) the same way.
"""
from __future__ import annotations

import dataclasses
import numbers
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TypeVar

import yaml

from .errors import ConfigError
from .resources import configs_dir

if TYPE_CHECKING:
    from .models.accel import InferenceOptions

T = TypeVar("T")
#: How the network runs: torch (NetworkRunner) or ONNX Runtime (models/ort_runner.py).
BACKENDS = ("torch", "onnxruntime")


@dataclass
class ModelConfig:
    """Which network and how to run it."""

    name: str = "fastdvdnet-aligned"    # registry name, a .safetensors path, or an export NAME.onnx (onnxruntime)
    device: str = "auto"                 # auto | cpu | cuda
    backend: str = "torch"               # torch | onnxruntime (pip install "streamden[onnx]"; README "ONNX")
    precision: str = "auto"              # auto (fp16 on CUDA, bf16 on a CPU with native bf16) | fp32 | fp16 | bf16
    channels_last: bool = True           # NHWC layout for convolutions
    fold_batchnorm: bool = True          # fold BatchNorm into the convolutions (inference only)
    cudnn_benchmark: bool = True         # cuDNN times its algorithms once per shape
    cuda_graphs: bool = True             # capture each network stage as a CUDA graph (CUDA, untiled)
    batch: int = 1                       # output frames per network call (adds batch - 1 frames of latency)
    tile: int = 0                        # run the network on tiles of this size (0 = whole frames; CUDA OOM tiles anyway)
    tile_overlap: int = 0                # tile margin in pixels (0 = the network's receptive field, exact)
    ensemble: int = 1                    # 1, 2, 4 or 8 flipped/rotated passes averaged: better, that many times slower
    refine: bool = True                  # a flow-aligned Wiener pass over the network's output (models/refine.py)

    def __post_init__(self) -> None:
        from .models.ensemble import check_ensemble

        if self.backend not in BACKENDS:
            raise ConfigError(f"model.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        check_ensemble(self.ensemble)
        _check_at_least("model.tile", self.tile, 0)
        _check_at_least("model.tile_overlap", self.tile_overlap, 0)

    def inference_options(self) -> "InferenceOptions":
        """How the network runs, as :class:`~streamden.models.accel.InferenceOptions` (validated).

        >>> ModelConfig(precision="fp32").inference_options().precision
        'fp32'
        """
        from .models.accel import InferenceOptions

        return InferenceOptions(precision=self.precision, channels_last=self.channels_last,
                                fold_batchnorm=self.fold_batchnorm, cudnn_benchmark=self.cudnn_benchmark,
                                cuda_graphs=self.cuda_graphs, batch=self.batch)


STRENGTH_RANGE = (0.25, 4.0)     # noise.strength, --strength


@dataclass
class NoiseConfig:
    """How strong the denoising is."""

    sigma: str = "auto"          # a number on the 0-255 scale, or "auto"
    smoothing: float = 0.9       # temporal smoothing of the auto estimate (EMA factor)
    strength: float = 1.0        # scales the noise map the network sees: 0.25 (gentle) to 4 (strong)
    # The network when sigma is auto (estimated: real footage, camera noise then a codec); None = model.name.
    auto_model: str | None = "fastdvdnet-real"

    def __post_init__(self) -> None:
        if isinstance(self.auto_model, str) and self.auto_model.strip().lower() in ("", "none", "null"):
            self.auto_model = None     # --set noise.auto_model=none: the same network whatever the sigma
        if isinstance(self.strength, bool) or not isinstance(self.strength, numbers.Real) \
                or not STRENGTH_RANGE[0] <= self.strength <= STRENGTH_RANGE[1]:
            raise ConfigError(f"noise.strength must lie in [{STRENGTH_RANGE[0]:g}, {STRENGTH_RANGE[1]:g}] "
                              f"(1 = as estimated or given), got {self.strength!r}")
        if isinstance(self.smoothing, bool) or not isinstance(self.smoothing, numbers.Real) \
                or not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"noise.smoothing must lie in [0, 1) (0: no smoothing), got {self.smoothing!r}")


@dataclass
class EncodeConfig:
    """Output encoding."""

    codec: str = "h264"          # h264 | h265 | av1 | ffv1 | png | tiff
    crf: int = 18
    preset: str = "medium"
    fps: str | None = None       # None keeps the source rate; "30000/1001" or "25"

    def __post_init__(self) -> None:
        _check_at_least("encode.crf", self.crf, 0)


@dataclass
class GraphConfig:
    """Streaming graph runtime."""

    queue_size: int = 4

    def __post_init__(self) -> None:
        _check_at_least("graph.queue_size", self.queue_size, 1)


@dataclass
class AlignConfig:
    """Motion compensation of the window's neighbours before fusion (streamden.align)."""

    mode: str = "auto"           # auto (what the model was trained with) | none | flow
    flow: str = "auto"           # auto (dis on a CPU, lk on CUDA) | dis | lk
    preset: str = "medium"       # DIS preset: ultrafast | fast | medium
    prefilter: float = 1.0       # Gaussian blur (pixels) of the luma before flow: noise hides gradients
    occlusion: str = "none"      # none: keep warped pixels | centre: pixels the mask rejects fall back to the centre frame
    window: str = "triplet"      # triplet: each triplet onto its own centre, stage-1 outputs warped onto the output
                                 # frame (2 blocks/frame) | window: all 5 frames onto the centre (4 blocks/frame)


@dataclass
class InputConfig:
    """How damaged, oversized or crashing input is handled (README: "What happens when things go wrong")."""

    max_corrupt_fraction: float = 0.1   # damaged frames tolerated (skipped, concealed, missing), 0 = none
    max_pixels: int = 8192 * 8192        # declared frame sizes above this are refused before decoding
    isolate: bool = True                 # decode in a child process, so a decoder crash cannot end the job
    on_crash: str = "finish"             # decoder crash: "finish" with the frames so far, or "stop" (error)
    stall_seconds: float = 60.0          # a decoder silent this long is stopped (isolated decoding only)
    hwaccel: str = "none"                # video decoder: none (software) | cuda (NVDEC, else an error) | auto

    def __post_init__(self) -> None:
        from .io.hwaccel import check_hwaccel_mode  # names the key on a bad value

        check_hwaccel_mode(self.hwaccel)


@dataclass
class JobConfig:
    """Resumable jobs (``--resume``): segments of a long video, each its own file, then joined."""

    segment_frames: int = 250            # frames per segment (rounded to the next keyframe when possible)

    def __post_init__(self) -> None:
        _check_at_least("job.segment_frames", self.segment_frames, 1)


@dataclass
class LiveConfig:
    """Live feeds (``streamden live``): look-ahead, latency, timeouts, outputs (streamden.live)."""

    lookahead: int = 1                   # future frames the network waits for: 0, 1 or 2 (2 = offline quality)
    latency: float | None = None         # arrival->emission bound in seconds; None = (the larger of
                                         # lookahead and lite_lookahead + 2) periods
    open_timeout: float = 5.0            # seconds to connect and analyse the stream
    read_timeout: float = 2.0            # seconds without a frame before the source is re-opened
    backoff_base: float = 0.5            # first reconnect wait (s), doubled per failure, with jitter
    backoff_cap: float = 10.0            # longest reconnect wait (s)
    slate_after: float = 3.0             # seconds without input before NO SIGNAL replaces the last frame
    paths: list[str] = field(default_factory=lambda: ["full", "lite", "light2", "light4", "raw"])  # degrade order
    lite_model: str = "lite"             # the network of the lite path (a registry name or a weights file)
    lite_lookahead: int = 0              # the lite path's look-ahead (0-2): 0 leaves it two periods of the
                                         # default 3-period latency, what a 2-core CPU needs (README, Live)
    segment_seconds: float = 60.0        # length of recorded segments
    segment_keep: int = 0                # recorded segments kept (oldest deleted); 0 = all
    hls_seconds: float = 2.0             # HLS segment length


@dataclass
class AdaptConfig:
    """Self-supervised adaptation to the footage itself (``streamden adapt``, ``--adapt``;
    :mod:`streamden.train.adapt`): no clean data, neighbouring noisy frames are the targets."""

    enabled: bool = False                # denoise: adapt on a sample of the input first, then denoise all of it
    seconds: float = 0.0                 # denoise: adaptation budget (0 = auto: 45% of the estimated denoising time)
    steps: int = 300                     # at most this many steps (batches)
    lr: float = 1e-4                     # Adam, constant after a short warm-up (resume-safe)
    batch: int = 4                       # patches per step
    patch: int = 96                      # patch side (pixels)
    region: int = 256                    # side of the regions prepared per centre frame (flows, targets)
    frames: int = 64                     # frames read per input, in runs of 8 spread over it
    holdout: int = 4                     # every n-th centre frame is held out to check the loss (early stop)
    eval_every: int = 20                 # steps between held-out checks
    patience: int = 4                    # held-out checks without improvement before stopping
    max_correlation: float = 0.25        # frame-to-frame noise correlation above this is reported
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("steps", "batch", "holdout", "eval_every", "patience"):
            _check_at_least(f"adapt.{key}", getattr(self, key), 1)
        _check_at_least("adapt.patch", self.patch, 8)
        _check_at_least("adapt.region", self.region, 8)
        _check_at_least("adapt.frames", self.frames, 6)
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, numbers.Real) or self.seconds < 0:
            raise ConfigError(f"adapt.seconds must be positive seconds (0: automatic), got {self.seconds!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real) or not self.lr > 0:
            raise ConfigError(f"adapt.lr must be positive, got {self.lr!r}")


@dataclass
class DenoiseConfig:
    """Everything `streamden denoise` needs besides the paths."""

    model: ModelConfig = field(default_factory=ModelConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    input: InputConfig = field(default_factory=InputConfig)
    job: JobConfig = field(default_factory=JobConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


def _check_at_least(key: str, value: Any, low: int) -> None:
    """A whole-number key below ``low`` (or not a whole number) is a ConfigError naming the key."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{key} must be a whole number of at least {low}, got {value!r}")


def build(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError.

    >>> build(EncodeConfig, {"crf": 20}).crf
    20
    """
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown config key {prefix + str(key)!r} (known in this section: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key {key!r}: {value!r} does not fit {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)   # YAML 1.1 reads 1e-3 (no dot) as a string
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ConfigError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (for logs, checkpoints and model cards)."""
    return dataclasses.asdict(config)


def apply_overrides(config: T, overrides: list[str]) -> T:
    """Apply ``a.b=value`` overrides; the value is read as YAML (``crf=20``, ``fps=null``).

    >>> apply_overrides(DenoiseConfig(), ["encode.crf=22"]).encode.crf
    22
    """
    data = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown config key {'.'.join(parts[: i + 1])!r} in override {item!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key {key.strip()!r} in override {item!r}")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return build(type(config), data)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML raises ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def preset_names() -> list[str]:
    """The presets shipped in configs/, sorted.

    >>> "restoration" in preset_names()
    True
    """
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of a named preset in configs/ (``restoration`` -> restoration.yaml)."""
    path = configs_dir() / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(preset_names())
        raise ConfigError(f"unknown preset {name!r} (known: {known})")
    return path


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                section: str | None = None) -> T:
    """Defaults, then a YAML file (optionally one ``section`` of it), then overrides.

    >>> load_config(DenoiseConfig, preset_path("restoration")).encode.codec
    'h264'
    """
    data = read_yaml(path) if path else {}
    if section is not None:
        data = data.get(section, {})
    try:
        config = build(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") if path else exc
    return apply_overrides(config, overrides or [])


# Keyword shortcuts of denoise_video() and the config keys they set.
OPTION_KEYS = {
    "sigma": "noise.sigma",
    "smoothing": "noise.smoothing",
    "strength": "noise.strength",
    "model": "model.name",
    "device": "model.device",
    "precision": "model.precision",
    "backend": "model.backend",
    "align": "align.mode",
    "codec": "encode.codec",
    "crf": "encode.crf",
    "encoder_preset": "encode.preset",
    "fps": "encode.fps",
    "queue_size": "graph.queue_size",
    "max_pixels": "input.max_pixels",
    "isolate": "input.isolate",
    "max_corrupt_fraction": "input.max_corrupt_fraction",
    "hwaccel": "input.hwaccel",
    "tile": "model.tile",
    "ensemble": "model.ensemble",
    "refine": "model.refine",
    "segment_frames": "job.segment_frames",
    "adapt": "adapt.enabled",
    "adapt_seconds": "adapt.seconds",
}


#: The config keys (sections or single keys) each front door reads. A key given explicitly to
#: a front door that does not read it (a ``--set`` override, a keyword shortcut, a key of the
#: user's own ``--config`` file) is refused by :func:`make_config`: nothing is accepted and
#: ignored. The presets in configs/ may hold keys for several front doors (``night_burst``
#: serves bursts and lossless video), so their own keys are not checked.
FRONT_DOOR_KEYS: dict[str, tuple[str, ...]] = {
    # denoise_video, streamden denoise, --resume, --ray, streamden batch
    "denoise": ("model", "align", "noise", "encode", "graph", "input", "job", "adapt"),
    # Denoiser, denoise_frames: frames in memory, no file, no encoder
    "frames": ("model", "align", "noise", "adapt"),
    # streamden adapt, adapt_model: the base model, its alignment, the noise level, the recipe
    "adapt": ("model", "align", "noise.sigma", "input", "adapt"),
    # streamden live, run_live: live sources (no input.*), no segments (no job.*)
    "live": ("model", "align", "noise", "encode", "graph", "live"),
    # streamden burst, denoise_burst: its own alignment and noise model
    "burst": ("model", "noise.sigma", "noise.strength"),
}


def config_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted leaf keys of a nested mapping.

    >>> config_keys({"model": {"name": "x", "tile": 0}, "noise": {"sigma": 20}})
    ['model.name', 'model.tile', 'noise.sigma']
    """
    keys = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            keys += config_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def check_front_door(door: str, keys: Iterable[str]) -> None:
    """Raise ConfigError for the first of ``keys`` that front door ``door`` does not read.

    >>> check_front_door("burst", ["model.name", "noise.sigma"])
    >>> check_front_door("burst", ["align.mode"])
    Traceback (most recent call last):
    ...
    streamden.errors.ConfigError: align.mode: streamden burst does not use this key (it reads model.*, noise.sigma, noise.strength)
    """
    reads = FRONT_DOOR_KEYS[door]
    for key in keys:
        if not any(key == r or key.startswith(r + ".") for r in reads):
            listed = ", ".join(r if "." in r else f"{r}.*" for r in reads)
            raise ConfigError(f"{key}: streamden {door} does not use this key (it reads {listed})")


def shortcut_overrides(options: dict[str, Any]) -> list[str]:
    """The ``key=value`` overrides that keyword shortcuts stand for (None: not given).

    >>> shortcut_overrides({"sigma": 20, "model": None})
    ['noise.sigma=20']
    """
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} (known: {', '.join(sorted(OPTION_KEYS))})")
    return [f"{OPTION_KEYS[key]}={value}" for key, value in options.items() if value is not None]


def make_config(preset: str | None = "restoration", config_file: str | Path | None = None,
                overrides: Iterable[str] = (), *, door: str = "denoise", **options: Any) -> DenoiseConfig:
    """Preset (or config file), then dotted overrides, then keyword shortcuts (see OPTION_KEYS).

    ``door`` names the front door the config is for (see :data:`FRONT_DOOR_KEYS`): a key it
    does not read, given in ``overrides``, ``options`` or ``config_file``, is a ConfigError.

    >>> make_config(sigma=25, crf=20).encode.crf
    20
    >>> make_config(None, crf=20, door="frames")
    Traceback (most recent call last):
    ...
    streamden.errors.ConfigError: encode.crf: streamden frames does not use this key (it reads model.*, align.*, noise.*, adapt.*)
    """
    overrides = list(overrides)
    path = config_file or (preset_path(preset) if preset else None)
    config = load_config(DenoiseConfig, path, overrides)
    shortcut = shortcut_overrides(options)
    given = [item.split("=", 1)[0].strip() for item in overrides + shortcut]
    if config_file:
        given = config_keys(read_yaml(config_file)) + given
    check_front_door(door, given)
    return with_auto_model(apply_overrides(config, shortcut), given)


def with_auto_model(config: DenoiseConfig, given: Iterable[str] = ()) -> DenoiseConfig:
    """``config`` running ``noise.auto_model`` when the noise level is estimated
    (``noise.sigma: auto``) and one is set, unless ``model.name`` is among the keys the user
    ``given`` (an explicit model runs whatever the sigma). The network trained on realistic
    noise meets what the estimate reads; a known Gaussian sigma keeps ``model.name``.

    >>> with_auto_model(make_config(overrides=["noise.auto_model=lite"])).model.name
    'lite'
    >>> with_auto_model(make_config(sigma=20, overrides=["noise.auto_model=lite"])).model.name
    'fastdvdnet-aligned'
    """
    from .pipeline import parse_sigma   # here, not at the top: pipeline loads torch and the graph

    auto = config.noise.auto_model
    if not auto or parse_sigma(config.noise.sigma) is not None or "model.name" in set(given):
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, name=auto))
