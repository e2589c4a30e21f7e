"""Model registry: one card per shipped weights file, and loading by name.

Tests parametrise over :func:`list_models`. A card whose weights file is not shipped yet
is still listed; loading it raises :class:`ModelError` unless ``allow_untrained``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ModelError
from .fastdvdnet import FastDVDnet, base_width
from .lite import LiteDVD
from .weights import load_weights, read_metadata

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"fastdvdnet": FastDVDnet, "litedvd": LiteDVD}


@dataclass(frozen=True)
class ModelCard:
    """What a weights file is: architecture, input convention, training data, licence."""

    name: str
    architecture: str
    weights_file: str                 # file name inside streamden/models/weights
    description: str
    input_range: tuple[float, float] = (0.0, 1.0)
    noise_map: bool = True            # takes a sigma/255 noise map
    noise_model: str = "gaussian"
    sigma_range: tuple[float, float] = (5.0, 55.0)   # 0-255 scale, as trained
    training_data: str = ""
    licence: str = "MIT"
    align: str = "none"               # the align.mode the model was trained with: none | flow
    arch_kwargs: dict = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        """Where the weights file lives inside the installed package."""
        return WEIGHTS_DIR / self.weights_file

    @property
    def is_trained(self) -> bool:
        """True when the weights file ships with the package."""
        return self.weights_path.is_file()


_REGISTRY: dict[str, ModelCard] = {}
#: The model of every front door (API, presets, live, burst) until the retrain replaces it: the
#: unaligned model fails on large bright areas at low noise (tests/models/test_shipped_quality.py).
DEFAULT_MODEL = "fastdvdnet-aligned"


def register(card: ModelCard) -> ModelCard:
    """Add a card to the registry (names are unique)."""
    if card.name in _REGISTRY:
        raise ValueError(f"model {card.name!r} is already registered")
    if card.architecture not in ARCHITECTURES:
        raise ValueError(f"model {card.name!r}: unknown architecture {card.architecture!r}")
    _REGISTRY[card.name] = card
    return card


def list_models() -> list[ModelCard]:
    """All registered model cards, default first."""
    return sorted(_REGISTRY.values(), key=lambda c: (c.name != DEFAULT_MODEL, c.name))


def get_card(name: str | None = None) -> ModelCard:
    """The card for ``name`` (the default model when None)."""
    name = name or DEFAULT_MODEL
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelError(f"unknown model {name!r} (known: {known})")
    return _REGISTRY[name]


def build_model(architecture: str = "fastdvdnet", **kwargs) -> nn.Module:
    """A randomly initialised network of the given architecture."""
    try:
        return ARCHITECTURES[architecture](**kwargs)
    except KeyError:
        raise ModelError(f"unknown architecture {architecture!r}") from None


def build_for_state(architecture: str, state: dict[str, torch.Tensor]) -> nn.Module:
    """A randomly initialised network of ``architecture`` shaped for a state dict (a
    FastDVDnet's conv biases and width), ready for ``load_state_dict(state)``.

    >>> build_for_state("fastdvdnet", FastDVDnet(base=40).state_dict()).base
    40
    """
    if architecture != "fastdvdnet":
        return build_model(architecture)
    return build_model(architecture, bias=has_conv_biases(state), base=base_width(state))


def load_model(name_or_path: str | None = None, device: str | torch.device = "cpu",
               allow_untrained: bool = False) -> nn.Module:
    """Load a registered model (or a ``.safetensors`` path) in eval mode on ``device``.

    Raises :class:`ModelError` when the weights are not shipped, unless ``allow_untrained``
    (then a randomly initialised network comes back: tests only).

    >>> net = load_model(allow_untrained=True)
    """
    if name_or_path and str(name_or_path).endswith(".onnx"):
        raise ModelError(f"{name_or_path}: an ONNX export runs on the onnxruntime backend "
                         f"(--backend onnxruntime, model.backend: onnxruntime), not in torch")
    if name_or_path and str(name_or_path).endswith(".safetensors"):
        state, meta = load_weights(name_or_path, device="cpu")
        model = build_for_state(meta.get("architecture", "fastdvdnet"), state)
        _load_state(model, state, str(name_or_path))
        return for_inference(model, device)
    card = get_card(name_or_path)
    if not card.is_trained:
        if not allow_untrained:
            raise ModelError(
                f"model {card.name!r} has no trained weights in this install "
                f"({card.weights_path.name} is missing); train them with `streamden train` "
                f"or pass a weights file with --model PATH.safetensors")
        return for_inference(build_model(card.architecture, **card.arch_kwargs), device)
    state, _ = load_weights(card.weights_path, device="cpu")
    model = build_model(card.architecture, **card.arch_kwargs)
    _load_state(model, state, str(card.weights_path))
    return for_inference(model, device)


def model_alignment(name_or_path: str | None = None) -> str:
    """The ``align.mode`` a model was trained with: its card's, or a weights file's or an ONNX
    export's metadata.

    >>> model_alignment("fastdvdnet-gaussian"), model_alignment("fastdvdnet-aligned")
    ('none', 'flow')
    """
    if name_or_path and str(name_or_path).endswith(".onnx"):
        from .onnx_export import read_onnx_metadata, stage_paths

        return read_onnx_metadata(stage_paths(name_or_path)[0]).get("align", "none")
    if name_or_path and str(name_or_path).endswith(".safetensors"):
        return read_metadata(name_or_path).get("align", "none")
    return get_card(name_or_path).align


def for_inference(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Eval mode on ``device`` in channels-last layout.

    Channels-last convolutions run about 1.35x faster than NCHW on this project's CPUs
    (oneDNN; one 640x360 block, 2 threads) and suit tensor cores on a GPU.
    """
    return model.to(device, memory_format=torch.channels_last).eval()


def is_conv_bias(key: str, state: dict[str, torch.Tensor]) -> bool:
    """A bias belongs to a conv (not a BatchNorm) when no running_mean sits beside it.

    >>> is_conv_bias("a.0.bias", {"a.0.bias": None}), is_conv_bias("a.1.bias", {"a.1.running_mean": None})
    (True, False)
    """
    return key.endswith(".bias") and key[: -len("bias")] + "running_mean" not in state


def has_conv_biases(state: dict[str, torch.Tensor]) -> bool:
    """True when a state dict has biases on its convolutions (``FastDVDnet(bias=True)``).

    >>> has_conv_biases(FastDVDnet(bias=False).state_dict()), has_conv_biases(FastDVDnet(bias=True).state_dict())
    (False, True)
    """
    return any(is_conv_bias(key, state) for key in state)


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{source}: weights do not match the architecture ({exc})") from exc


register(ModelCard(
    name="fastdvdnet-gaussian",
    architecture="fastdvdnet",
    weights_file="fastdvdnet_gaussian.safetensors",
    description="FastDVDnet for additive white Gaussian noise, sigma 5-55 (0-255), non-blind (noise map).",
    training_data="streamden shared corpus: 14 clips + ~130 stills with synthetic hand-held motion",
))

register(ModelCard(
    name="fastdvdnet-aligned",
    architecture="fastdvdnet",
    weights_file="fastdvdnet_aligned.safetensors",
    description="FastDVDnet fine-tuned on flow-aligned windows (align.mode flow, DIS medium on the noisy frames); "
                "Gaussian noise sigma 5-55 (0-255), non-blind.",
    training_data="as fastdvdnet-gaussian, windows warped onto their centre frame by optical flow",
    align="flow",
))

register(ModelCard(
    name="fastdvdnet-real",
    architecture="fastdvdnet",
    weights_file="fastdvdnet_real.safetensors",
    description="fastdvdnet-aligned fine-tuned on realistic noise (camera noise, Gaussian noise through x264 and "
                "JPEG, both) and on strongly coloured content; the model of --sigma auto (noise.auto_model): real "
                "footage, whose noise is estimated. Effective levels 5-40 (0-255), flow-aligned windows.",
    noise_model="realistic",
    sigma_range=(5.0, 40.0),
    training_data="as fastdvdnet-aligned (train + train_extra footage), degraded by streamden.noise.degrade "
                  "(configs/train/fastdvdnet_real*.yaml)",
    align="flow",
))

register(ModelCard(
    name="lite",
    architecture="litedvd",
    weights_file="lite.safetensors",
    description="LiteDVD: the light temporal network for CPUs (live feeds without a GPU): one small block over "
                "frames t-1, t, t+1, about 12 500 multiply-adds per pixel; Gaussian noise sigma 5-55, non-blind.",
    training_data="as fastdvdnet-aligned (train + train_extra footage, synthetic hand-held motion), unaligned windows",
))
