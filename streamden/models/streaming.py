"""Streaming FastDVDnet inference: each new output frame costs two denoising blocks, not four.

FastDVDnet's window of frame ``t`` is the five frames ``t-2 .. t+2``; stage 1 (``temp1``)
runs on its three overlapping triplets and stage 2 (``temp2``) on their three outputs. When
the window slides by one frame, two of its triplets are triplets of the previous window, so
their stage-1 outputs are cached and only one new triplet goes through ``temp1``.

Rules shared by the cached engine and the plain reference :func:`denoise_sequence`, so that
the two give the same frames:

* **Reflection.** Frame ``t`` of a sequence of ``T`` frames sees the frames
  ``reflect_index(t + k, T)`` for ``k = -2 .. 2`` (see :func:`reflect_index`). The triplets of
  a window at the ends are therefore not symmetric: the window of ``t = 0`` is frames
  ``(2, 1, 0, 1, 2)``, whose triplets are ``(2, 1, 0)``, ``(1, 0, 1)`` and ``(0, 1, 2)``.
* **Cache key.** A stage-1 output is keyed by the tuple of the source frame indices of its
  triplet, in order (``(2, 1, 0)`` and ``(0, 1, 2)`` are different triplets).
* **Sigma.** Each frame carries its own sigma (0-255). The noise map of a triplet is the sigma
  of the triplet's centre frame; the noise map of stage 2 is the sigma of the window's centre
  frame (the output frame). With a constant sigma this is exactly ``model(window, map)``. A
  sigma that carries per-channel levels (:class:`~streamden.noise.estimate.NoiseLevel`, a
  clipped colour channel) runs each stage once more for that channel (:func:`run_per_channel`).
* **Padding.** Frames are reflect-padded to a multiple of 4 (:func:`pad_to_multiple`) before
  the network and cropped back after it, then clamped to [0, 1].
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch import nn

from ..noise.estimate import NoiseLevel, channel_levels, scaled_level
from .accel import InferenceOptions, NetworkRunner
from .fastdvdnet import WINDOW, crop_to, pad_to_multiple

if TYPE_CHECKING:
    from ..align import WindowAligner
    from .refine import WienerRefiner

HALF = WINDOW // 2   # frames on each side of the centre: the look-ahead latency


def reflect_index(i: int, length: int) -> int:
    """Mirror index ``i`` into ``[0, length)`` without repeating the edge frame (period ``2 * (length - 1)``).

    >>> [reflect_index(i, 4) for i in range(-3, 8)]
    [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]
    >>> reflect_index(-2, 1)
    0
    """
    if length < 1:
        raise ValueError(f"reflect_index: length must be at least 1, got {length}")
    if length == 1:
        return 0
    period = 2 * (length - 1)
    i %= period
    return period - i if i >= length else i


def window_indices(t: int, length: int) -> tuple[int, ...]:
    """Source frame indices of the 5-frame window of frame ``t`` in a sequence of ``length`` frames.

    >>> window_indices(0, 9), window_indices(8, 9)
    ((2, 1, 0, 1, 2), (6, 7, 8, 7, 6))
    """
    return tuple(reflect_index(t + k, length) for k in range(-HALF, HALF + 1))


def sigma_per_frame(sigma: float | torch.Tensor | Sequence[float], count: int) -> list[float]:
    """One level per frame: ``sigma`` a value, ``(T,)`` values, or a list of levels (which may be
    :class:`~streamden.noise.estimate.NoiseLevel` with per-channel levels, kept)."""
    if isinstance(sigma, torch.Tensor) and sigma.ndim > 0:
        sigma = [float(s) for s in sigma.reshape(-1).tolist()]
    if isinstance(sigma, (list, tuple)):
        if len(sigma) != count:
            raise ValueError(f"sigma has {len(sigma)} values for {count} frames")
        return list(sigma)
    return [sigma if isinstance(sigma, NoiseLevel) else float(sigma)] * count


def _noise_map(sigma: float, like: torch.Tensor) -> torch.Tensor:
    """A ``(1, 1, H, W)`` map of ``sigma / 255`` matching ``like`` (``(..., H, W)``) in device and dtype."""
    return torch.full((1, 1, *like.shape[-2:]), float(sigma) / 255.0, device=like.device, dtype=like.dtype)


def channel_maps(sigmas: Sequence[float], like: torch.Tensor) -> list[torch.Tensor | None]:
    """Per colour channel, the ``(N, 1, H, W)`` maps of the own levels that ``sigmas`` carry
    (:class:`~streamden.noise.estimate.NoiseLevel`), or None for a channel that runs at the
    overall levels (every channel, in the common case)."""
    maps: list[torch.Tensor | None] = []
    for c in range(3):
        own = [channel_levels(s)[c] if channel_levels(s) is not None else float(s) for s in sigmas]
        differs = any(o != float(s) for o, s in zip(own, sigmas))
        maps.append(torch.cat([_noise_map(o, like) for o in own]) if differs else None)
    return maps


def run_per_channel(stage: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                    maps: torch.Tensor, own: Sequence[torch.Tensor | None] = (None, None, None)) -> torch.Tensor:
    """``stage`` (a network stage) on ``inputs`` ``(N, ...)`` with the noise ``maps`` ``(N, 1, H, W)``;
    for each colour channel with its own maps in ``own`` (:func:`channel_maps`: a clipped colour
    channel, see :func:`~streamden.noise.estimate.censored_level`) the stage runs once more at
    them, and that channel of the output comes from that run. Without own maps: one call.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> net, x = FastDVDnet().eval(), torch.rand(1, 3, 3, 8, 8)
    >>> levels = [NoiseLevel(10.0, (30.0, 10.0, 10.0))]
    >>> both = run_per_channel(net.stage1, x, torch.full((1, 1, 8, 8), 10 / 255), channel_maps(levels, x))
    >>> bool(torch.equal(both[:, 0], net.stage1(x, torch.full((1, 1, 8, 8), 30 / 255))[:, 0]))
    True
    """
    out = stage(inputs, maps)
    for c, channel in enumerate(own):
        if channel is not None:
            out = out.clone()            # a runner may hand back a buffer the next call reuses
            out[:, c] = stage(inputs, channel)[:, c]
    return out


def _run_at(stage: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], inputs: torch.Tensor,
            sigmas: Sequence[float]) -> torch.Tensor:
    """``stage`` on ``inputs`` at one level per item (and its channels' own levels)."""
    return run_per_channel(stage, inputs, torch.cat([_noise_map(s, inputs) for s in sigmas]), channel_maps(sigmas, inputs))


def denoise_sequence(model: nn.Module, frames: torch.Tensor, sigma: float | torch.Tensor,
                     aligner: "WindowAligner | None" = None, refiner: "WienerRefiner | None" = None) -> torch.Tensor:
    """Denoise a whole sequence the plain way (four blocks per frame, no cache): the reference.

    ``frames`` is ``(T, 3, H, W)`` in [0, 1] on the model's device; ``sigma`` is one value or
    ``(T,)`` values on the 0-255 scale. Returns ``(T, 3, H, W)`` clamped to [0, 1]. The sigma
    rule (triplet: its centre frame's sigma; stage 2: the output frame's) is the module's.
    With an ``aligner`` each window is first warped onto its centre frame; with a
    ``window="triplet"`` aligner each triplet onto its own centre, and the three stage-1
    outputs onto the output frame (see :class:`streamden.align.WindowAligner`). With a
    ``refiner`` each output then goes through its Wiener pass (:mod:`streamden.models.refine`).

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> denoise_sequence(FastDVDnet().eval(), torch.rand(3, 3, 10, 14), 20.0).shape
    torch.Size([3, 3, 10, 14])
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"denoise_sequence: expected (T, 3, H, W) frames, got {tuple(frames.shape)}")
    count = frames.shape[0]
    sigmas = sigma_per_frame(sigma, count)
    padded, size = pad_to_multiple(frames)
    outputs = []
    if aligner is not None:
        aligner.reset()
    if refiner is not None:
        refiner.reset()
    with torch.no_grad():
        for t in range(count):
            idx = window_indices(t, count)
            window = padded[list(idx)]                                   # (5, 3, Hp, Wp)
            per_triplet = aligner is not None and aligner.window == "triplet"
            if aligner is not None and not per_triplet:
                window, _ = aligner.align(list(window), idx)
            triplets = torch.stack([window[i:i + 3] for i in range(3)])  # (3, 3, 3, Hp, Wp)
            if per_triplet:
                triplets = torch.stack([aligner.align(list(t), idx[i:i + 3])[0] for i, t in enumerate(triplets)])
            middle = _run_at(model.stage1, triplets, [sigmas[idx[i + 1]] for i in range(3)])  # (3, 3, Hp, Wp)
            if per_triplet:
                middle = aligner.onto(idx[2], list(middle), idx[1:4])
            out = _run_at(model.stage2, middle.unsqueeze(0), [sigmas[t]])[0].clamp(0.0, 1.0)
            if refiner is not None:
                out = refiner.push(t, padded[t], out)
            outputs.append(crop_to(out, size))
            if aligner is not None:
                aligner.evict(t - 1)
    return torch.stack(outputs)


class StreamingDenoiser:
    """Frame-at-a-time FastDVDnet with the stage-1 cache: two block calls per output frame.

    ``push`` a frame ``(3, H, W)`` in [0, 1] with its sigma (0-255) and get back the
    ``(index, denoised frame)`` pairs that became ready: the output of frame ``n - 2`` when
    frame ``n`` arrives (look-ahead of 2 frames, none for the first two). ``lookahead`` 1 or
    0 (causal mode, for live feeds) outputs frame ``n - 1`` or ``n`` instead; the window's
    missing future frames are then past frames reflected about frame ``n`` (at 1 the window
    of ``t`` is ``t-2, t-1, t, t+1, t``; at 0 it is ``t-2, t-1, t, t-1, t-2``), which costs
    one (look-ahead 1) or two (0) more stage-1 blocks per frame than the default 2.
    ``finish`` ends the sequence and returns the frames still held, reflecting the missing neighbours at the end;
    the next ``push`` starts a new sequence. ``reset`` drops everything held without output
    (a scene cut after which the held frames are not wanted; call ``finish`` first to keep them).
    Indices count the frames pushed since construction, across sequences.

    Memory is bounded: after the output of frame ``t`` only frames ``>= t - 1`` and stage-1
    outputs whose triplet centre is ``>= t`` are kept (at most 5 frames and 4 outputs, plus
    ``batch - 1`` more of each when batching).
    ``model`` is a network or a shared runner (:class:`~streamden.models.accel.NetworkRunner`,
    :class:`~streamden.models.ort_runner.OrtRunner`);
    ``options`` (:class:`~streamden.models.accel.InferenceOptions`) say how a network runs:
    the default is the plain fp32 model, exactly what :func:`denoise_sequence` computes.
    With ``options.batch`` > 1 outputs come ``batch`` at a time: the new triplets of
    ``batch`` windows go through stage 1 in one call and their stage 2 in another.

    With an ``aligner`` (:class:`streamden.align.WindowAligner`) every window is warped
    onto its centre frame before the network; the warped triplets differ from window to
    window, so the stage-1 cache is off and each output costs four blocks (the flows are
    still estimated once per frame pair). A ``window="triplet"`` aligner keeps the cache:
    each triplet is aligned onto its own centre and the cached stage-1 outputs are warped
    onto the output frame (two blocks per frame). ``strength`` scales every sigma pushed
    (``noise.strength``). With a ``refiner`` (:class:`~streamden.models.refine.WienerRefiner`,
    ``model.refine``) each network output goes through its Wiener pass with the frame's
    noisy input before it is returned (no added latency: the pass looks back only).

    A single-stage network (``model.single_stage``, :class:`~streamden.models.lite.LiteDVD`)
    whose stage 2 only picks the middle triplet's output costs one block per output frame:
    only the middle triplet of each window goes through stage 1 (aligned onto its centre,
    the output frame, by either kind of aligner), and stage 2 is skipped. The frames out are
    those of :func:`denoise_sequence`.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> engine = StreamingDenoiser(FastDVDnet())
    >>> ready = [r for _ in range(4) for r in engine.push(torch.rand(3, 12, 12), 20.0)]
    >>> ready += engine.finish()
    >>> [i for i, _ in ready], tuple(ready[0][1].shape)
    ([0, 1, 2, 3], (3, 12, 12))
    """

    def __init__(self, model: "nn.Module | NetworkRunner", device: str | torch.device = "cpu",
                 options: InferenceOptions | None = None, aligner: "WindowAligner | None" = None,
                 lookahead: int = HALF, strength: float = 1.0, refiner: "WienerRefiner | None" = None):
        if lookahead not in (0, 1, 2):
            raise ValueError(f"StreamingDenoiser: lookahead must be 0, 1 or 2 frames, got {lookahead!r}")
        self.lookahead = lookahead
        self.strength = float(strength)   # every sigma pushed is scaled by it (noise.strength)
        self.device = torch.device(device)
        self.aligner = aligner
        self.refiner = refiner
        # A network is wrapped in a runner; anything else is a runner already (torch or onnxruntime).
        self.runner = NetworkRunner(model, self.device, options) if isinstance(model, nn.Module) else model
        self.batch = int(self.runner.options.batch)
        self.single_stage = bool(getattr(self.runner.model, "single_stage", False))
        self._base = 0          # global index of frame 0 of the current sequence
        self._count = 0         # frames pushed in the current sequence
        self.reset()

    def reset(self) -> None:
        """Drop every held frame and cached output; the next ``push`` starts a new sequence."""
        self._base += self._count
        self._frames: dict[int, torch.Tensor] = {}     # sequence index -> padded (3, Hp, Wp)
        self._sigmas: dict[int, float] = {}
        self._stage1: dict[tuple[int, int, int], torch.Tensor] = {}
        self._count = 0         # frames pushed in this sequence
        self._next = 0          # next sequence index to output
        self._size: tuple[int, int] | None = None
        if self.aligner is not None:
            self.aligner.reset()
        if self.refiner is not None:
            self.refiner.reset()

    def push(self, frame: torch.Tensor, sigma: float) -> list[tuple[int, torch.Tensor]]:
        """Add the next frame ``(3, H, W)`` in [0, 1] and its sigma (0-255); return the outputs now ready."""
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"StreamingDenoiser.push: expected a (3, H, W) frame, got {tuple(frame.shape)}")
        size = (int(frame.shape[1]), int(frame.shape[2]))
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise ValueError(f"StreamingDenoiser.push: frame size {size} differs from {self._size} "
                             f"in the same sequence; call finish() or reset() first")
        # A copy: the caller may refill its frame buffer while this one is still held.
        padded, _ = pad_to_multiple(frame.to(self.device, torch.float32, copy=True))
        n = self._count
        self._frames[n] = padded
        self._sigmas[n] = scaled_level(sigma, self.strength)
        self._count += 1
        # Frame n completes the window of n - lookahead (at a look-ahead below 2, the frames
        # past n are past frames reflected about n); no other reflection before finish().
        due = list(range(self._next, n - self.lookahead + 1))
        if len(due) < self.batch:
            return []
        return self._outputs(due, length=None)

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        """End the sequence: return the outputs still held (missing frames reflected) and start anew."""
        length = self._count
        due = list(range(self._next, length))
        ready = [r for i in range(0, len(due), self.batch) for r in self._outputs(due[i:i + self.batch], length)]
        self.reset()
        return ready

    def _outputs(self, ts: list[int], length: int | None) -> list[tuple[int, torch.Tensor]]:
        # Before finish() the final length is unknown but at least t + lookahead + 1; at the
        # default look-ahead of 2 that gives the same reflection as any longer sequence.
        windows = [window_indices(t, length if length is not None else t + self.lookahead + 1) for t in ts]
        with torch.no_grad():
            if self.single_stage:
                out = self._middle_outputs(windows)
            else:
                if self.aligner is not None and self.aligner.window == "window":
                    middle = self._aligned_triplet_outputs(windows)
                else:
                    middle = self._triplet_outputs(windows)
                out = _run_at(self.runner.stage2, middle, [self._sigmas[t] for t in ts])  # (k, 3, Hp, Wp)
        ready = []
        for i, t in enumerate(ts):
            image = out[i].clamp(0.0, 1.0)
            if self.refiner is not None:
                image = self.refiner.push(t, self._frames[t], image)
            ready.append((self._base + t, crop_to(image, self._size)))
        self._next = ts[-1] + 1
        self._evict(ts[-1])
        return ready

    def _triplet_outputs(self, windows: list[tuple[int, ...]]) -> torch.Tensor:
        """Stage-1 outputs ``(k, 3, 3, Hp, Wp)`` of the windows, computing the uncached ones in one call.

        With a triplet aligner each triplet is aligned onto its own centre before stage 1, and
        the three outputs of a window are warped onto its centre frame after.
        """
        keys = [w[i:i + 3] for w in windows for i in range(3)]
        missing = list(dict.fromkeys(k for k in keys if k not in self._stage1))
        if missing:
            triplets = torch.stack([self._triplet(key) for key in missing])
            outputs = _run_at(self.runner.stage1, triplets, [self._sigmas[key[1]] for key in missing])
            for key, output in zip(missing, outputs):
                self._stage1[key] = output
        middles = []
        for w in windows:
            outputs = [self._stage1[w[i:i + 3]] for i in range(3)]
            middles.append(self.aligner.onto(w[2], outputs, w[1:4]) if self.aligner else torch.stack(outputs))
        return torch.stack(middles)

    def _middle_outputs(self, windows: list[tuple[int, ...]]) -> torch.Tensor:
        """A single-stage network's outputs ``(k, 3, Hp, Wp)``: stage 1 on each window's middle
        triplet (its centre is the output frame), in one call."""
        keys = [w[1:4] for w in windows]
        triplets = torch.stack([self._triplet(key) for key in keys])
        return _run_at(self.runner.stage1, triplets, [self._sigmas[key[1]] for key in keys])

    def _triplet(self, key: tuple[int, ...]) -> torch.Tensor:
        frames = [self._frames[i] for i in key]
        return self.aligner.align(frames, key)[0] if self.aligner else torch.stack(frames)

    def _aligned_triplet_outputs(self, windows: list[tuple[int, ...]]) -> torch.Tensor:
        triplets, sigmas = [], []
        for idx in windows:
            window, _ = self.aligner.align([self._frames[i] for i in idx], idx)   # (5, 3, Hp, Wp)
            triplets += [window[i:i + 3] for i in range(3)]
            sigmas += [self._sigmas[idx[i + 1]] for i in range(3)]
        outputs = _run_at(self.runner.stage1, torch.stack(triplets), sigmas)   # (3k, 3, Hp, Wp)
        return outputs.reshape(len(windows), 3, *outputs.shape[1:])

    def _evict(self, t: int) -> None:
        # Every later window u >= t + 1 reads frames >= u - 2 and triplets centred >= u - 1,
        # also at the reflected end (reflect(u + k) >= u - k there).
        for i in [i for i in self._frames if i < t - 1]:
            del self._frames[i], self._sigmas[i]
        for key in [k for k in self._stage1 if k[1] < t]:
            del self._stage1[key]
        if self.aligner is not None:
            self.aligner.evict(t - 1)
