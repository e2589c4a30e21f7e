"""Self-supervised adaptation: fine-tune the denoiser on the user's own noisy footage, no clean data.

Frame-to-frame training (Ehret et al. 2019, "Model-blind video denoising via frame-to-frame
training") in its multi-frame form for FastDVDnet (Dewil et al. 2021, "Self-supervised
training for blind multi-frame video denoising"), written from the papers' descriptions:

* Noise is independent from frame to frame, so a neighbouring noisy frame moved onto the
  current one by optical flow is a target whose expectation is the clean current frame. The
  loss is the mean squared error against it, masked where the flow fails its
  forward-backward consistency check (occlusions, pixels leaving the frame, scene cuts).
* The frame used as target must not be in the network's input: the window ``t-2 .. t+2``
  with target ``t+1`` becomes ``(t-2, t-1, t, t+2, t+2)`` (the target replaced by its other
  neighbour), and with target ``t-1`` it becomes ``(t-2, t-2, t, t+1, t+2)``.
* The input window is aligned exactly as the model was trained (``align.mode``), with the
  flows of the noisy frames; targets are warped with bicubic interpolation, which blurs the
  target's content less than bilinear (a blurred target teaches the network to blur).
* BatchNorm stays frozen (:func:`~streamden.train.trainer.set_train_mode`): batches of four
  patches would ruin its statistics.

Guard rails. Every ``adapt.holdout``-th centre frame is held out: the same masked loss on
those frames, never trained on, is measured before the first step and every
``adapt.eval_every`` steps. Its expectation is the true squared error against the clean
frame plus a constant (the target's noise), so it ranks weights as clean data would; the
weights with the lowest held-out loss are kept (the unadapted ones when nothing beats
them), and training stops when it has not fallen for ``adapt.patience`` checks. Footage
whose noise is correlated from frame to frame (a temporal filter already ran) breaks the
method's assumption: :func:`~streamden.noise.estimate.temporal_correlation` measures it on
the aligned neighbours and :class:`AdaptResult` reports it.

>>> from streamden.config import make_config
>>> clip = clip_from_array(np.random.default_rng(0).integers(0, 255, (8, 48, 48, 3), np.uint8))
>>> result = adapt_model(load_model(allow_untrained=True), [clip], make_config(None, None,
...     ["adapt.steps=2", "adapt.patch=32", "model.precision=fp32"], door="adapt"), model_align="flow")
>>> result.steps
2
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..align import make_aligner
from ..align.warp import warp_torch
from ..errors import ConfigError, InputError, ModelError
from ..models.accel import autocast, resolve_precision
from ..models.registry import load_model, model_alignment, get_card
from ..models.weights import read_metadata, save_weights
from ..noise.estimate import estimate_sigma, temporal_correlation
from ..tensors import resolve_device
from .trainer import _StopFlag, git_commit, hardware_string, set_train_mode

if TYPE_CHECKING:
    from ..config import DenoiseConfig

RUN = 8             # consecutive frames per run read from a long input
MIN_FRAMES = 6      # two centre frames with full windows: one to train on, one held out
MIN_SIDE = 16       # smallest frame side adapted on (pixels)
MAX_CENTRES = 48    # centre frames prepared at most (memory: about 2.5 MB each at region 256)
MAX_HELD_OUT = 4    # held-out centre frames at most (each check runs the network on them)
HELD_OUT_SIDE = 128  # held-out regions are cut to this (a check then costs about four training steps)
MIN_COVERAGE = 0.25  # a target whose flow is trusted on less of the region is dropped (a cut)
WARMUP = 10         # steps of linear learning-rate warm-up
#: Input window positions (into t-2 .. t+2) for target t-1 (side 0) and t+1 (side 1).
WINDOWS = ((0, 0, 2, 3, 4), (0, 1, 2, 4, 4))
TARGETS = (1, 3)


@dataclass
class Clip:
    """Consecutive frames of one input: ``frames`` ``(T, H, W, 3)`` RGB, ``frames / scale`` in [0, 1]."""

    name: str
    frames: np.ndarray
    scale: float

    def crop(self, start: int, stop: int, y: int, x: int, h: int, w: int) -> torch.Tensor:
        """Frames ``start:stop`` of the region ``(y, x, h, w)`` as float ``(T, 3, h, w)`` in [0, 1]."""
        part = np.ascontiguousarray(self.frames[start:stop, y:y + h, x:x + w])
        return torch.from_numpy(part.astype(np.float32)).permute(0, 3, 1, 2) / float(self.scale)


def clip_from_array(frames: np.ndarray | torch.Tensor, name: str = "frames") -> Clip:
    """A :class:`Clip` from ``(T, H, W, 3)`` uint8/uint16 RGB or a ``(T, 3, H, W)`` float tensor in [0, 1].

    >>> clip_from_array(np.zeros((6, 16, 16, 3), np.uint8)).scale
    255.0
    """
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise InputError(f"{name}: expected (T, 3, H, W) frames, got {tuple(frames.shape)}")
        return Clip(name, frames.detach().float().cpu().permute(0, 2, 3, 1).numpy(), 1.0)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"{name}: expected (T, H, W, 3) frames, got shape {frames.shape}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(frames.dtype, 1.0)
    return Clip(name, frames, scale)


def read_footage(path: str | os.PathLike, frames: int, decode: dict[str, Any] | None = None) -> list[Clip]:
    """Read up to ``frames`` frames of a video file or image sequence as runs of consecutive frames.

    A short input is read whole; a longer one as runs of :data:`RUN` frames spread evenly over
    it, so adaptation sees the whole video. Decoding goes through
    :func:`~streamden.io.open_source` with ``decode`` (see :func:`~streamden.pipeline.decode_options`).

    >>> read_footage("clip.mp4", 64)[0].frames.shape  # doctest: +SKIP
    (8, 360, 640, 3)
    """
    from ..io import open_source

    text = str(path)
    if not (os.path.exists(text) or any(c in text for c in "%*?")):
        raise InputError(f"{text}: no such file or folder")
    source = open_source(text, **(decode or {}))
    count = source.frame_count or source.estimated_frame_count
    if count is not None and count > frames:
        n_runs = max(1, frames // RUN)
        starts = sorted({round(i * (count - RUN) / max(1, n_runs - 1)) for i in range(n_runs)})
        wanted = {s + k: s for s in starts for k in range(RUN)}
    else:
        wanted = {k: 0 for k in range(frames)}
    last = max(wanted)
    runs: dict[tuple[int, int], list[np.ndarray]] = {}
    part = 0
    try:
        source.open()
        for index, frame in enumerate(source.generate()):
            part += bool(getattr(frame, "new_sequence", False)) and index > 0
            if index in wanted:
                runs.setdefault((wanted[index], part), []).append(frame.image)
            if index >= last:
                break
    finally:
        source.close()
    clips = []
    for images in runs.values():
        stack = np.stack(images)
        scale = 65535.0 if stack.dtype == np.uint16 else 255.0
        clips.append(Clip(text, stack, scale))
    if not clips:
        raise InputError(f"{text}: no frames decoded")
    return clips


@dataclass
class _Centre:
    """One centre frame prepared for training: aligned window, warped targets and their masks."""

    window: torch.Tensor      # (5, 3, h, w) float16: t-2 .. t+2 aligned as the model expects
    targets: torch.Tensor     # (2, 3, h, w) float16: t-1 and t+1 warped onto t (bicubic)
    masks: torch.Tensor       # (2, 1, h, w) float16: where those warps are trusted
    sides: list[int]          # usable targets: 0 (t-1), 1 (t+1)

    def example(self, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input window, target, mask) with the target frame left out of the window."""
        return self.window[list(WINDOWS[side])], self.targets[side], self.masks[side]


@dataclass
class Material:
    """Everything training reads: prepared centres (train and held out), the noise level, checks."""

    train: list[_Centre]
    held_out: list[_Centre]
    sigma: float
    correlation: float | None
    frames: int
    names: list[str]
    patch: int
    seconds: float

    def describe(self) -> str:
        """One line for logs and the weights file."""
        size = f"{self.train[0].window.shape[-1]}x{self.train[0].window.shape[-2]}"
        return (f"{self.frames} frames of {', '.join(dict.fromkeys(self.names))}; {len(self.train)} centre frames "
                f"trained on, {len(self.held_out)} held out, regions {size}")


def _centres(clips: Sequence[Clip], most: int = MAX_CENTRES) -> list[tuple[int, int]]:
    """(clip, centre) pairs with a full 5-frame window, at most ``most``, spread evenly."""
    pairs = [(c, t) for c, clip in enumerate(clips) for t in range(2, clip.frames.shape[0] - 2)]
    if len(pairs) > most:
        pairs = [pairs[round(i * (len(pairs) - 1) / (most - 1))] for i in range(most)]
    return pairs


def prepare(clips: Sequence[Clip], config: "DenoiseConfig", model_align: str,
            max_centres: int = MAX_CENTRES) -> Material:
    """Cut, align and warp the training material of ``clips`` (``config.adapt``, ``config.align``).

    Each centre frame gets one region of ``adapt.region`` pixels (random, seeded); its window
    is aligned as ``align.mode`` (or ``model_align`` for ``auto``) says, its two neighbours are
    warped onto it as targets. The noise level is ``noise.sigma``, or estimated
    (:func:`~streamden.noise.estimate.estimate_sigma`, the median over the centre frames).
    Raises :class:`InputError` for too few frames or frames too small.
    """
    t0 = time.time()
    settings = config.adapt
    generator = torch.Generator().manual_seed(settings.seed)
    for clip in clips:
        h, w = clip.frames.shape[1:3]
        if min(h, w) < MIN_SIDE:
            raise InputError(f"{clip.name}: frames of {w}x{h} are too small to adapt on (at least {MIN_SIDE}x{MIN_SIDE})")
    pairs = _centres(clips, max(2, min(max_centres, MAX_CENTRES)))
    if len(pairs) < MIN_FRAMES - 4:
        longest = max((clip.frames.shape[0] for clip in clips), default=0)
        names = ", ".join(dict.fromkeys(clip.name for clip in clips)) or "input"
        raise InputError(f"{names}: {longest} consecutive frame{'s' if longest != 1 else ''}; self-supervised "
                         f"adaptation needs at least {MIN_FRAMES} consecutive frames")
    mode = model_align if config.align.mode == "auto" else config.align.mode
    align_input = mode == "flow"
    # The targets need flows even for a model that takes unaligned windows.
    aligner = make_aligner(replace(config.align, mode="flow"), torch.device("cpu"))
    n_held = min(MAX_HELD_OUT, max(1, len(pairs) // settings.holdout))
    held_idx = {round((i + 0.5) * len(pairs) / n_held - 0.5) for i in range(n_held)}
    train, held, sigmas, frames_c, nexts, masks_c = [], [], [], [], [], []
    for k, (c, t) in enumerate(pairs):
        clip = clips[c]
        height, width = clip.frames.shape[1:3]
        h, w = min(settings.region, height) // 4 * 4, min(settings.region, width) // 4 * 4
        y = int(torch.randint(height - h + 1, (1,), generator=generator))
        x = int(torch.randint(width - w + 1, (1,), generator=generator))
        raw = clip.crop(t - 2, t + 3, y, x, h, w)
        aligner.reset()
        aligned, masks = aligner.align(list(raw), tuple(range(5)))
        flows = torch.stack([aligner.flows[(2, i)] for i in TARGETS])
        targets = warp_torch(raw[list(TARGETS)], flows, mode="bicubic")
        target_masks = masks[list(TARGETS)]
        sides = [s for s in (0, 1) if float(target_masks[s].mean()) >= MIN_COVERAGE]
        sigmas.append(estimate_sigma(raw[2]))
        if 1 in sides:   # whole-pixel warp: interpolation would smooth the noise and read as correlation
            frames_c.append(raw[2])
            nexts.append(warp_torch(raw[3:4], flows[1:2].round())[0])
            masks_c.append(target_masks[1])
        if not sides:
            continue
        parts = [aligned if align_input else raw, targets, target_masks]
        if k in held_idx:
            top, left = (h - min(h, HELD_OUT_SIDE)) // 2, (w - min(w, HELD_OUT_SIDE)) // 2
            parts = [p[..., top:top + min(h, HELD_OUT_SIDE), left:left + min(w, HELD_OUT_SIDE)] for p in parts]
        centre = _Centre(*(p.half() for p in parts), sides)
        (held if k in held_idx else train).append(centre)
    aligner.reset()
    if not train or not held:
        raise InputError(f"{', '.join(dict.fromkeys(c.name for c in clips))}: no usable pairs of neighbouring "
                         f"frames (every neighbour fails the flow check: scene cuts on every frame?)")
    sigma = _sigma(config, sigmas)
    patch = min(settings.patch, *(min(s.window.shape[-2:]) for s in train)) // 4 * 4
    return Material(train, held, sigma, temporal_correlation(frames_c, nexts, masks_c),
                    sum(clip.frames.shape[0] for clip in clips), [clip.name for clip in clips], patch,
                    time.time() - t0)


def _sigma(config: "DenoiseConfig", estimates: list[float]) -> float:
    from ..pipeline import parse_sigma

    sigma = parse_sigma(config.noise.sigma)
    return float(np.median(estimates)) if sigma is None else sigma


def _batch(material: Material, batch: int, patch: int, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random patches: (windows (B, 5, 3, p, p), targets (B, 3, p, p), masks (B, 1, p, p)), float32."""
    examples = [(i, s) for i, centre in enumerate(material.train) for s in centre.sides]
    windows, targets, masks = [], [], []
    for _ in range(batch):
        i, side = examples[int(torch.randint(len(examples), (1,), generator=generator))]
        window, target, mask = material.train[i].example(side)
        h, w = window.shape[-2:]
        y = int(torch.randint(h - patch + 1, (1,), generator=generator))
        x = int(torch.randint(w - patch + 1, (1,), generator=generator))
        flips = torch.rand(2, generator=generator) < 0.5
        parts = [p[..., y:y + patch, x:x + patch] for p in (window, target, mask)]
        dims = [d for d, f in zip((-1, -2), flips.tolist()) if f]
        if dims:
            parts = [p.flip(dims) for p in parts]
        windows.append(parts[0]); targets.append(parts[1]); masks.append(parts[2])
    return torch.stack(windows).float(), torch.stack(targets).float(), torch.stack(masks).float()


def masked_mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels ``mask`` trusts (every channel).

    >>> float(masked_mse(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.tensor([[[[1.0, 0], [0, 0]]]])))
    1.0
    """
    se = ((output.float() - target) ** 2 * mask).sum()
    return se / (mask.sum() * output.shape[1]).clamp_min(1.0)


def _train_dtype(config: "DenoiseConfig", device: torch.device) -> torch.dtype:
    dtype = resolve_precision(config.model.precision, device)
    if dtype == torch.float16:   # fp16 training would need loss scaling: bf16 where it exists
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return dtype


@torch.no_grad()
def held_out_loss(model: nn.Module, material: Material, device: torch.device,
                  dtype: torch.dtype = torch.float32) -> float:
    """The masked self-supervised loss on the held-out centre frames (whole regions, both sides)."""
    se, count = 0.0, 0.0
    for centre in material.held_out:
        for side in centre.sides:
            window, target, mask = (p.float().unsqueeze(0).to(device) for p in centre.example(side))
            nmap = torch.full((1, 1, *window.shape[-2:]), material.sigma / 255.0, device=device)
            with autocast(device, dtype):
                out = model(window, nmap)
            se += float(((out.float() - target) ** 2 * mask).sum())
            count += float(mask.sum()) * 3
    return se / max(count, 1.0)


@dataclass
class AdaptProgress:
    """What a progress callback sees after each step."""

    step: int
    steps: int
    loss: float
    held_out: float
    initial: float
    best: float
    seconds: float
    budget: float                      # 0: none
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


@dataclass
class AdaptResult:
    """The adapted network (best held-out weights, eval mode) and how it came about."""

    model: nn.Module
    steps: int
    best_step: int
    seconds: float
    initial_loss: float
    best_loss: float
    stopped: str                      # steps | budget | early | interrupted
    sigma: float
    correlation: float | None
    material: str
    names: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    correlated: bool = False          # frame-to-frame noise correlation above adapt.max_correlation
    applied: bool = True              # False: --adapt kept the unadapted model (correlated noise)

    @property
    def improvement(self) -> float:
        """Relative fall of the held-out loss from the unadapted model (0: weights unchanged)."""
        return 1.0 - self.best_loss / self.initial_loss if self.initial_loss > 0 else 0.0

    def warnings(self) -> list[str]:
        """What the user should know: correlated noise, or nothing gained."""
        out = []
        if self.correlated:
            out.append(f"the noise is correlated from frame to frame (measured {self.correlation:.2f}): a temporal "
                       f"filter has probably run on this footage; self-supervised adaptation assumes independent "
                       f"noise and cannot remove what the neighbours share")
        if not self.applied:
            out.append("adaptation skipped: the unadapted model denoises this input")
        elif self.best_step == 0:
            out.append("adaptation did not lower the held-out loss: the weights are the unadapted model's")
        return out

    def summary(self) -> str:
        """One line: steps, time, held-out loss before and after, why it stopped."""
        return (f"{self.steps} steps in {self.seconds:.0f} s (stopped: {self.stopped}); held-out loss "
                f"{self.initial_loss:.3g} -> {self.best_loss:.3g} ({100 * self.improvement:.1f}% lower, best at step "
                f"{self.best_step}); sigma {self.sigma:.1f}; frame-to-frame noise correlation "
                f"{'n/a' if self.correlation is None else f'{self.correlation:.2f}'}")

    def metadata(self, base: str | os.PathLike) -> dict[str, object]:
        """The weights file's metadata: the base model's, plus what it was adapted on and how."""
        base_text = str(base)
        try:
            meta: dict[str, object] = dict(read_metadata(base_text if base_text.endswith(".safetensors")
                                                         else get_card(base_text).weights_path))
        except ModelError:
            meta = {"architecture": "fastdvdnet"}
        meta.update({
            "name": "adapted",
            "align": model_alignment(base_text) if base_text else "none",
            "adapted_from": base_text,
            "adapted_on": self.material,
            "adapt_inputs": list(dict.fromkeys(self.names)),
            "adapt_sigma": round(self.sigma, 3),
            "adapt_steps": self.steps,
            "adapt_best_step": self.best_step,
            "adapt_seconds": round(self.seconds, 1),
            "adapt_held_out_loss": [self.initial_loss, self.best_loss],
            "adapt_stopped": self.stopped,
            "adapt_noise_correlation": None if self.correlation is None else round(self.correlation, 3),
            "training_data": f"self-supervised frame-to-frame adaptation (no clean data) on {self.material}; "
                             f"base: {meta.get('training_data', base_text)}",
            "git_commit": git_commit(),
        })
        return meta


def _run_key(material: Material, config: "DenoiseConfig", base: str) -> dict[str, Any]:
    """What must match for ``--resume`` to continue a checkpoint (steps and budget may change)."""
    a = config.adapt
    return {"inputs": material.names, "frames": material.frames, "sigma": round(material.sigma, 4), "base": base,
            "recipe": [a.lr, a.batch, a.patch, a.region, a.holdout, a.eval_every, a.patience, a.seed]}


def adapt_model(model: nn.Module, clips: Sequence[Clip], config: "DenoiseConfig", *, model_align: str = "none",
                device: str | torch.device | None = None, seconds: float = 0.0,
                checkpoint: str | os.PathLike | None = None, resume: bool = False, base: str = "",
                progress: Callable[[AdaptProgress], None] | None = None, handle_signals: bool = False,
                material: Material | None = None) -> AdaptResult:
    """Fine-tune a copy of ``model`` on ``clips`` without clean data; returns the best weights.

    ``config.adapt`` is the recipe (steps, learning rate, batch, patch, held-out checks),
    ``config.align`` how windows are aligned (``auto``: ``model_align``), ``config.noise.sigma``
    the noise map (``auto``: estimated), ``config.model.precision`` the arithmetic (bf16 on a
    CPU that has it). ``seconds`` > 0 bounds the wall time of preparation and training.
    With ``checkpoint`` the state is saved there every held-out check and at the end, and
    ``resume`` continues it (same inputs and recipe; more steps or time). With
    ``handle_signals`` Ctrl-C and SIGTERM end the run cleanly with the best weights so far
    (``stopped == "interrupted"``); otherwise KeyboardInterrupt propagates.
    """
    t_start = time.time()
    settings = config.adapt
    device = resolve_device(device if device is not None else config.model.device)
    material = material or prepare(clips, config, model_align)
    generator = torch.Generator().manual_seed(settings.seed + 1)   # patches: apart from prepare's regions
    dtype = _train_dtype(config, device)
    net = copy.deepcopy(model).to(device, memory_format=torch.contiguous_format)
    set_train_mode(net, freeze_batchnorm=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    key = _run_key(material, config, base)
    ckpt = Path(checkpoint) if checkpoint else None
    step, loop_seconds, since_best, best_step = 0, 0.0, 0, 0
    history: list[dict[str, float]] = []
    if resume and ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["key"] != key:
            raise ConfigError(f"{ckpt}: this checkpoint belongs to another adaptation run (other inputs, noise level "
                              f"or recipe); run without --resume to start afresh")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, loop_seconds, since_best, best_step = state["step"], state["seconds"], state["since_best"], state["best_step"]
        initial, best, best_state, history = state["initial"], state["best"], state["best_state"], state["history"]
    else:
        initial = held_out_loss(net, material, device, dtype)
        best, best_state = initial, {k: v.detach().clone() for k, v in net.state_dict().items()}
        history.append({"step": 0, "seconds": 0.0, "loss": math.nan, "held_out": initial})
    prep = time.time() - t_start

    def save() -> None:
        if ckpt is None:
            return
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_name(ckpt.name + ".part")
        torch.save({"key": key, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "step": step, "seconds": loop_seconds,
                    "since_best": since_best, "best_step": best_step, "initial": initial, "best": best,
                    "best_state": best_state, "history": history}, tmp)
        os.replace(tmp, ckpt)

    nmap = torch.full((settings.batch, 1, material.patch, material.patch), material.sigma / 255.0, device=device)
    stopped, last_held, loss_value = "steps", history[-1]["held_out"], math.nan
    flag_context = _StopFlag() if handle_signals else contextlib.nullcontext(None)
    with flag_context as flag:
        t_last = time.time()
        while True:
            if since_best >= settings.patience:
                stopped = "early"
                break
            if step >= settings.steps:
                stopped = "steps"
                break
            if seconds > 0 and prep + loop_seconds >= seconds:
                stopped = "budget"
                break
            if flag is not None and flag.stop:
                stopped = "interrupted"
                break
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * min(1.0, (step + 1) / WARMUP)
            windows, targets, masks = (p.to(device) for p in _batch(material, settings.batch, material.patch, generator))
            with autocast(device, dtype):
                out = net(windows, nmap)
            loss = masked_mse(out, targets, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            if step % settings.eval_every == 0 or step >= settings.steps:
                last_held = held_out_loss(net, material, device, dtype)
                if last_held < best:
                    best, best_step, since_best = last_held, step, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    since_best += 1
            now = time.time()
            loop_seconds += now - t_last
            t_last = now
            if step % settings.eval_every == 0 or step >= settings.steps:
                history.append({"step": step, "seconds": loop_seconds, "loss": loss_value, "held_out": last_held})
                save()
            if progress is not None:
                progress(AdaptProgress(step, settings.steps, loss_value, last_held, initial, best,
                                       prep + loop_seconds, seconds, best_state))
    save()
    if history[-1]["step"] != step:
        # Steps since the last check (a budget or Ctrl-C ended the run) get a check of their
        # own, for the result only: the checkpoint keeps the state a straight run would have.
        t_check = time.time()
        last_held = held_out_loss(net, material, device, dtype)
        loop_seconds += time.time() - t_check
        history.append({"step": step, "seconds": loop_seconds, "loss": loss_value, "held_out": last_held})
        if last_held < best:
            best, best_step = last_held, step
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    adapted = copy.deepcopy(model)
    adapted.load_state_dict(best_state)
    correlated = material.correlation is not None and material.correlation > settings.max_correlation
    return AdaptResult(adapted.eval(), step, best_step, prep + loop_seconds, initial, best, stopped,
                       material.sigma, material.correlation, material.describe(), material.names, history, correlated)


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Where ``streamden adapt -o OUT`` keeps its resumable state: ``.OUT.adapt.pt`` beside OUT.

    >>> checkpoint_path("runs/cam.safetensors").name
    '.cam.safetensors.adapt.pt'
    """
    out = Path(output)
    return out.with_name(f".{out.name}.adapt.pt")


def adapt_files(inputs: Iterable[str | os.PathLike], output: str | os.PathLike, config: "DenoiseConfig", *,
                seconds: float = 0.0, resume: bool = False, overwrite: bool = False,
                progress: Callable[[AdaptProgress], None] | None = None, handle_signals: bool = True,
                log: Callable[[str], None] = lambda _: None) -> AdaptResult:
    """Adapt ``config.model.name`` to noisy videos or image sequences and write ``output`` (safetensors).

    Reads up to ``adapt.frames`` frames per input (:func:`read_footage`), adapts
    (:func:`adapt_model`), and writes the best weights with metadata saying what they were
    adapted on and from which model; ``--model OUTPUT`` then uses them anywhere. The
    resumable state lives in :func:`checkpoint_path`. Everything is checked before any
    work: the output must be a new ``.safetensors`` file (or ``overwrite``/``resume``).

    >>> adapt_files(["night.mp4"], "night.safetensors", make_config(None, door="adapt"))  # doctest: +SKIP
    """
    from ..io.atomic import check_output_path
    from ..pipeline import decode_options

    inputs = [str(p) for p in inputs]
    if not inputs:
        raise InputError("adapt: no input given")
    out = Path(output)
    if out.suffix.lower() != ".safetensors":
        raise ConfigError(f"{out}: the adapted weights are a .safetensors file; name the output *.safetensors")
    if not seconds >= 0 or (isinstance(seconds, float) and math.isnan(seconds)):
        raise ConfigError(f"time budget must be positive seconds, got {seconds}")
    check_output_path(str(out), overwrite=overwrite or resume, inputs=tuple(inputs))
    clips: list[Clip] = []
    t0 = time.time()
    for path in inputs:
        clips += read_footage(path, config.adapt.frames, dict(decode_options(config), isolate=False))
    base = config.model.name
    align = model_alignment(base)
    material = prepare(clips, config, align)      # bad footage is refused before the model loads
    log(f"read and prepared {material.describe()} in {time.time() - t0:.1f} s")
    device = resolve_device(config.model.device)
    model = load_model(base, device=device)
    ckpt = checkpoint_path(out)
    if not resume and ckpt.exists():
        ckpt.unlink()
    result = adapt_model(model, clips, config, model_align=align, device=device,
                         seconds=max(1e-9, seconds - material.seconds) if seconds > 0 else 0.0,
                         checkpoint=ckpt, resume=resume, base=base, progress=progress, handle_signals=handle_signals,
                         material=material)
    save_weights(result.model, out, {**result.metadata(base), "name": out.stem,
                                     "hardware": hardware_string(device)})
    return result


#: ``--adapt`` without ``--adapt-seconds``: adaptation takes at most this share of the time
#: denoising the whole input is estimated to take (the issue asks for under half).
AUTO_SHARE = 0.45
SECONDS_PER_CENTRE = 3.0   # --adapt prepares at most one centre frame per this many seconds of budget


def auto_seconds(engine, clip: Clip, total_frames: int) -> float:
    """The default ``--adapt`` budget: :data:`AUTO_SHARE` of the estimated denoising time of
    ``total_frames`` frames, timed on the first five frames of ``clip`` through ``engine``."""
    h, w = clip.frames.shape[1:3]
    frames = clip.crop(0, min(5, clip.frames.shape[0]), 0, 0, h, w)
    t0 = time.time()
    engine.denoise_clip(frames, 25.0)   # timing only: the cost does not depend on the level
    per_frame = (time.time() - t0) / frames.shape[0]
    return AUTO_SHARE * per_frame * max(total_frames, frames.shape[0]) - (time.time() - t0)


def adapt_engine(engine, clips: Sequence[Clip], total_frames: int,
                 progress: Callable[[AdaptProgress], None] | None = None) -> AdaptResult:
    """``--adapt``: adapt ``engine`` on ``clips`` (a sample of the input), within
    ``adapt.seconds`` or the automatic budget (:func:`auto_seconds` for ``total_frames``).

    When the noise turns out correlated from frame to frame the engine keeps the unadapted
    model (``result.applied`` False): the method's assumption does not hold, and a wrong
    model silently applied to a whole video is worse than none.
    """
    seconds = engine.config.adapt.seconds or auto_seconds(engine, clips[0], total_frames)
    # A short budget buys steps, not breadth: preparing a centre frame (its flows) costs about
    # what a step does, so a few seconds of budget prepare a few centre frames only.
    material = prepare(clips, engine.config, engine.model_align, max_centres=int(seconds / SECONDS_PER_CENTRE))
    base = engine.model
    result = engine.adapt(list(clips), seconds=max(1e-9, seconds - material.seconds), progress=progress,
                          material=material)
    if result.correlated:
        engine.replace_model(base)
        engine.adapted = result
        result.applied = False
    return result
