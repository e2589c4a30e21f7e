"""The engine: the network as every front door runs it, built once from the typed config.

``denoise_video``, ``Denoiser``/``denoise_frames``, segments, Ray, live, burst, eval and bench
all hold an :class:`Engine` and never build a network themselves, so an option added here
reaches every one of them. The engine owns:

* the model (registry name or weights file, ``model.name``), wrapped in tiles when
  ``model.tile`` asks and on CUDA, where running out of memory falls back to tiles
  (:mod:`streamden.models.tiling`);
* how it runs (``model.precision``, ``channels_last``, BatchNorm folding, cuDNN autotuning,
  CUDA graphs, ``batch``: one shared :class:`~streamden.models.accel.NetworkRunner`; or,
  with ``model.backend: onnxruntime``, an :class:`~streamden.models.ort_runner.OrtRunner`
  with the same calls, on an ONNX export or the model exported in memory);
* alignment (``align.*``, ``auto`` following the model card): each :meth:`stream` gets its
  own aligner and stage-1 cache over the shared runner;
* the single-frame pass (:meth:`single_frame`: one frame five times, so stage 1 runs once;
  a per-pixel noise map; optionally at reduced resolution), used by live's cheap paths,
  burst and eval's single-frame baseline;
* the noise level (``noise.sigma``, ``noise.smoothing``): :meth:`sigma_tracker` and
  :meth:`estimate_sigma` (None for a frame that tells nothing: the tracker keeps the last
  good level);
* the strength (``noise.strength``, ``--strength``): every noise map the network sees, in
  streams, windows and the single-frame pass, is the given or estimated one times it;
* self-supervised adaptation to the footage (``adapt.*``, :meth:`adapt`): the network is
  fine-tuned on noisy frames and replaces the loaded one for every later stream.

Streams sharing an engine take turns on :attr:`lock` for each network call where they run
in threads of their own (live); the graph runs one denoise node per engine.

>>> from streamden.config import make_config
>>> engine = Engine(make_config(None, model="fastdvdnet-gaussian", device="cpu"))
>>> stream = engine.stream()
>>> out = [r for _ in range(3) for r in stream.push(torch.rand(3, 16, 16), 20.0)] + stream.finish()
>>> len(out), tuple(engine.single_frame(torch.rand(3, 16, 16), 20.0).shape)
(3, (3, 16, 16))
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .align import make_aligner
from .align.flow import make_flow_estimator
from .errors import ConfigError
from .models.accel import InferenceOptions, NetworkRunner
from .models.ensemble import with_ensemble
from .models.fastdvdnet import crop_to, pad_to_multiple
from .models.refine import WienerRefiner
from .models.registry import load_model, model_alignment
from .models.streaming import HALF, StreamingDenoiser, channel_maps, run_per_channel, sigma_per_frame
from .models.tiling import maybe_tiled
from .noise.estimate import SigmaTracker, estimate_level, scaled_level
from .tensors import resolve_device

if TYPE_CHECKING:
    from .config import DenoiseConfig

__all__ = ["Engine"]


class Engine:
    """The network of ``config`` on ``device`` (default ``config.model.device``), ready to run.

    ``model`` gives an already-built network instead of ``config.model.name`` (then
    ``align: auto`` means no alignment, as the network carries no card); ``allow_untrained``
    lets a registered model without shipped weights load randomly initialised (tests only);
    ``options`` replace the inference options of ``config.model`` (the benchmark's ladder
    measures them one by one); ``live=True`` runs one frame per network call (live outputs
    are paced frame by frame: batching would add latency).
    """

    def __init__(self, config: "DenoiseConfig", device: str | torch.device | None = None, *,
                 model: nn.Module | None = None, allow_untrained: bool = False,
                 options: InferenceOptions | None = None, live: bool = False) -> None:
        self.config = config
        self.device = resolve_device(device if device is not None else config.model.device)
        self.backend = config.model.backend
        options = options or config.model.inference_options()
        self.options = options.with_(batch=1) if live else options
        self.model: nn.Module | None = None   # the torch network (None on the onnxruntime backend)
        if self.backend == "onnxruntime":
            from .models.ort_runner import OrtRunner, ort_network

            network = ort_network(config.model.name, self.device, self.options.precision, model=model,
                                  allow_untrained=allow_untrained)
            self.model_align = "none" if model is not None else model_alignment(config.model.name)
            self.runner = OrtRunner(self._wrapped(network), self.options)
        elif model is None:
            model = load_model(config.model.name, device=self.device, allow_untrained=allow_untrained)
            self.model_align = model_alignment(config.model.name)
        else:
            self.model_align = "none"
        self.strength = float(config.noise.strength)
        self.lock = threading.Lock()
        self.adapted = None            # the AdaptResult once :meth:`adapt` ran
        self._macs_per_block: float | None = None
        if self.backend != "onnxruntime":
            self.replace_model(model)

    def replace_model(self, model: nn.Module) -> None:
        """Run ``model`` from now on (same alignment, options and tiling): adapted weights.

        >>> from streamden.config import make_config
        >>> engine = Engine(make_config(None, device="cpu"))
        >>> engine.replace_model(engine.model); engine.aligns
        True
        """
        self.model = model             # as loaded: BatchNorm not folded (adaptation trains it)
        self.runner = NetworkRunner(self._wrapped(model), self.device, self.options)   # a prepared copy

    def _wrapped(self, network):
        """``network`` as ``model.ensemble`` and ``model.tile`` run it (each tile an ensemble)."""
        model = self.config.model
        return maybe_tiled(with_ensemble(network, model.ensemble), model.tile, model.tile_overlap, self.device)

    def adapt(self, clips: list, seconds: float = 0.0, progress=None, material=None):
        """Fine-tune the network on noisy footage, no clean data (:func:`streamden.train.adapt.adapt_model`,
        recipe ``config.adapt``), and run the best weights from now on; returns the
        :class:`~streamden.train.adapt.AdaptResult`. ``clips`` are
        :class:`~streamden.train.adapt.Clip` records; ``seconds`` > 0 bounds the time.

        >>> from streamden.config import make_config
        >>> from streamden.train.adapt import clip_from_array
        >>> engine = Engine(make_config(None, None, ["adapt.steps=1", "adapt.patch=16"], door="frames", device="cpu"))
        >>> engine.adapt([clip_from_array(torch.rand(6, 3, 32, 32))]).steps
        1
        """
        from .train.adapt import adapt_model

        if self.model is None:
            raise ConfigError("adaptation trains the torch network: run it with model.backend torch "
                              "(then export the adapted weights with `streamden export`)")
        result = adapt_model(self.model, clips, self.config, model_align=self.model_align, device=self.device,
                             seconds=seconds, base=self.config.model.name, progress=progress, material=material)
        self.replace_model(result.model.to(self.device))
        self.adapted = result
        return result

    @property
    def tiles_used(self) -> int:
        """The tile size in force (0: whole frames; set by ``model.tile`` or an out-of-memory fallback)."""
        return int(getattr(self.runner.model, "tile", 0))

    @property
    def single_stage(self) -> bool:
        """True for a network that runs one block per output frame (``lite``, :mod:`streamden.models.lite`)."""
        return bool(getattr(self.runner.model, "single_stage", False))

    def blocks_per_frame(self, lookahead: int) -> int:
        """Network blocks one streamed output frame costs at ``lookahead`` frames: with the
        stage-1 cache 2, 3 or 4 at look-ahead 2, 1 or 0; one for a single-stage network.
        A single-frame pass (:meth:`single_frame`) costs as many blocks as look-ahead 2.

        >>> from streamden.config import make_config
        >>> Engine(make_config(None, model="lite", device="cpu"), allow_untrained=True).blocks_per_frame(0)
        1
        """
        if self.single_stage:
            return 1
        return {2: 2, 1: 3, 0: 4}[lookahead]

    def multiply_adds_per_frame(self, lookahead: int) -> float | None:
        """Multiply-adds per pixel of one streamed output frame at ``lookahead``, counted on the
        network (:func:`~streamden.models.cost.multiply_adds_per_pixel`, times ``model.ensemble``);
        None on the onnxruntime backend (no torch network to count).

        >>> from streamden.config import make_config
        >>> round(Engine(make_config(None, model="lite", device="cpu")).multiply_adds_per_frame(1))
        12544
        """
        if self.model is None:
            return None
        if self._macs_per_block is None:
            from .models.cost import multiply_adds_per_pixel

            self._macs_per_block = (multiply_adds_per_pixel(self.model) * self.config.model.ensemble
                                    / self.blocks_per_frame(2))
        return self._macs_per_block * self.blocks_per_frame(lookahead)

    @property
    def aligns(self) -> bool:
        """True when streams align their windows with optical flow."""
        mode = self.model_align if self.config.align.mode == "auto" else self.config.align.mode
        return mode == "flow"

    def stream(self, lookahead: int = HALF) -> StreamingDenoiser:
        """A streaming engine for one sequence of frames: its own aligner and stage-1 cache over
        the shared network. ``lookahead`` 2 (offline quality), 1 or 0 (causal, live).

        >>> from streamden.config import make_config
        >>> Engine(make_config(None, model="fastdvdnet-aligned", device="cpu")).stream().aligner is not None
        True
        """
        aligner = make_aligner(self.config.align, self.device, self.model_align)
        return StreamingDenoiser(self.runner, device=self.device, aligner=aligner, lookahead=lookahead,
                                 strength=self.strength, refiner=self.refiner())

    def refiner(self) -> WienerRefiner | None:
        """A fresh Wiener pass over the network's output for one sequence (``model.refine``),
        with the flow settings of ``align`` (whatever ``align.mode``), or None when it is off."""
        if not self.config.model.refine:
            return None
        align = self.config.align
        estimator = make_flow_estimator(align.flow, self.device, preset=align.preset, prefilter=align.prefilter)
        return WienerRefiner(estimator, strength=self.strength)

    def denoise_clip(self, frames: torch.Tensor, sigma: float | torch.Tensor | Sequence[float]) -> torch.Tensor:
        """A whole clip ``(T, 3, H, W)`` in [0, 1] with one sigma or one per frame (0-255; a list
        keeps the per-channel levels of :class:`~streamden.noise.estimate.NoiseLevel`), as a file
        job runs it (streaming, aligned as configured); returns ``(T, 3, H, W)`` on the CPU.

        >>> from streamden.config import make_config
        >>> Engine(make_config(None, device="cpu")).denoise_clip(torch.rand(4, 3, 16, 16), 20.0).shape
        torch.Size([4, 3, 16, 16])
        """
        sigmas = sigma_per_frame(sigma, frames.shape[0])
        stream = self.stream()
        ready = [r for frame, s in zip(frames, sigmas) for r in stream.push(frame, s)] + stream.finish()
        return torch.stack([image.cpu() for _, image in ready])

    def single_frame(self, image: torch.Tensor, sigma: float | torch.Tensor, scale: int = 1) -> torch.Tensor:
        """The network on one frame ``(3, H, W)`` in [0, 1] (a window of five copies: stage 1 runs
        once), with ``sigma`` on the 0-255 scale (a :class:`~streamden.noise.estimate.NoiseLevel`'s
        own channel levels run those channels again) or a per-pixel map ``(1, H, W)`` of sigma/255.
        ``scale`` 2 or 4 runs it at that fraction of the resolution and upscales the result
        (live's cheap paths). Large frames run in tiles when ``model.tile`` is set.

        >>> from streamden.config import make_config
        >>> engine = Engine(make_config(None, device="cpu"))
        >>> engine.single_frame(torch.rand(3, 10, 14), torch.full((1, 10, 14), 0.1)).shape
        torch.Size([3, 10, 14])
        """
        height, width = image.shape[-2:]
        small = image.to(self.device, torch.float32).unsqueeze(0)
        noise, *own = self._noise_maps(sigma, height, width)
        if scale > 1:
            small = F.interpolate(small, scale_factor=1 / scale, mode="area")
            noise, *own = [None if m is None else F.interpolate(m, size=small.shape[-2:], mode="area") for m in [noise, *own]]
        padded, size = pad_to_multiple(small)
        noise, *own = [None if m is None else pad_to_multiple(m)[0] for m in [noise, *own]]
        with self.lock, torch.no_grad():
            triplet = padded.unsqueeze(1).expand(-1, 3, -1, -1, -1)            # (1, 3, 3, H, W)
            middle = run_per_channel(self.runner.stage1, triplet, noise, own)
            out = run_per_channel(self.runner.stage2, middle.unsqueeze(1).expand(-1, 3, -1, -1, -1), noise, own)[0]
        out = crop_to(out, size)
        if scale > 1:
            out = F.interpolate(out.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False)[0]
        return out.clamp(0.0, 1.0)

    def window(self, frames: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """The network on one 5-frame window ``(5, 3, H, W)`` (no alignment, no cache), with a
        sigma (0-255, its own channel levels too) or a per-pixel map ``(1, H, W)`` of sigma/255;
        returns the centre's output.

        >>> from streamden.config import make_config
        >>> Engine(make_config(None, device="cpu")).window(torch.rand(5, 3, 8, 8), 20.0).shape
        torch.Size([3, 8, 8])
        """
        padded, size = pad_to_multiple(frames.to(self.device, torch.float32))
        noise, *own = [None if m is None else pad_to_multiple(m)[0] for m in self._noise_maps(sigma, *frames.shape[-2:])]
        three = [None if m is None else m.expand(3, -1, -1, -1) for m in own]
        with self.lock, torch.no_grad():
            triplets = torch.stack([padded[i:i + 3] for i in range(3)])        # (3, 3, 3, H, W)
            middle = run_per_channel(self.runner.stage1, triplets, noise.expand(3, -1, -1, -1), three)
            out = run_per_channel(self.runner.stage2, middle.unsqueeze(0), noise, own)[0]
        return crop_to(out, size).clamp(0.0, 1.0)

    def _noise_maps(self, sigma: float | torch.Tensor, height: int, width: int) -> list[torch.Tensor | None]:
        """:meth:`_noise_map`, then per colour channel the map of its own level where ``sigma`` (a
        :class:`~streamden.noise.estimate.NoiseLevel`) carries one, else None."""
        noise = self._noise_map(sigma, height, width)
        if isinstance(sigma, torch.Tensor):
            return [noise, None, None, None]
        return [noise, *channel_maps([scaled_level(sigma, self.strength)], noise)]

    def _noise_map(self, sigma: float | torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A ``(1, 1, H, W)`` noise map on the device: a sigma (0-255) or a ``(1, H, W)`` map of
        sigma/255, times ``noise.strength``."""
        if isinstance(sigma, torch.Tensor):
            return sigma.to(self.device, torch.float32).reshape(1, 1, height, width) * self.strength
        return torch.full((1, 1, height, width), float(sigma) * self.strength / 255.0, device=self.device)

    def sigma_tracker(self) -> SigmaTracker:
        """A fresh per-sequence smoother of noise estimates (``noise.smoothing``)."""
        return SigmaTracker(self.config.noise.smoothing)

    @staticmethod
    def estimate_sigma(image: torch.Tensor) -> float | None:
        """The noise level (0-255) of one frame ``(3, H, W)``, or None for a black, flat or saturated
        frame (:func:`streamden.noise.estimate.estimate_level`); fold it into :meth:`sigma_tracker`."""
        return estimate_level(image)
