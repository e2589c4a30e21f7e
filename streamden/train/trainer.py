"""The training loop: sample patches from memory, synthesise noise, MSE, Adam with step decay.

Checkpoints (model, optimizer, learning-rate schedule, step) are written every
``checkpoint_every`` steps and on SIGTERM/SIGINT, so a run can be stopped at any time and
resumed with ``resume=True``: a batch is a function of the seed and the step
(:mod:`streamden.train.batches`, made ahead by ``data.workers`` processes when asked). A CSV
log (step, loss, lr, val_psnr, seconds) and a PNG plot of loss and validation PSNR live in the
work dir; the final weights are a safetensors file with metadata
(:func:`streamden.models.weights.save_weights`).

>>> from streamden.config import load_config
>>> cfg = load_config(TrainConfig, "configs/train/fastdvdnet.yaml")  # doctest: +SKIP
>>> train(cfg)                                                         # doctest: +SKIP
PosixPath('runs/fastdvdnet_gaussian/final.safetensors')
"""
from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import math
import os
import platform
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..align import align_windows
from ..config import to_dict
from ..errors import ConfigError
from ..metrics import psnr
from ..models.fastdvdnet import widen_state
from ..models.registry import build_for_state, build_model, load_model
from ..models.weights import save_weights
from ..noise.synth import noisy_8bit
from ..tensors import resolve_device
from .batches import Batch, BatchMaker, batch_stream
from .colour_check import worst_colour_shift
from .config import TrainConfig
from .data import FrameBank, PatchSampler, load_val_clips
from .plot import plot_log

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"
PLOT = "plot.png"
LOG_FIELDS = ["step", "loss", "lr", "val_psnr", "seconds"]


def lr_at(step: int, optim_cfg, total_steps: int = 0) -> float:
    """Learning rate at ``step``, a pure function of the step (resume-safe).

    ``step`` schedule: ``lr * gamma ** (milestones passed)``; ``cosine``: from ``lr`` down to
    ``lr_min`` at ``total_steps``. Both ramp up linearly over the first ``warmup`` steps.

    >>> from streamden.train.config import OptimConfig
    >>> lr_at(10, OptimConfig(lr=1.0, milestones=[5, 8], gamma=0.5))
    0.25
    >>> [round(lr_at(s, OptimConfig(lr=1.0, schedule="cosine", warmup=2), 10), 3) for s in (0, 5, 10)]
    [0.5, 0.5, 0.0]
    """
    if optim_cfg.schedule == "step":
        lr = optim_cfg.lr * optim_cfg.gamma ** sum(1 for m in optim_cfg.milestones if step >= m)
    elif optim_cfg.schedule == "cosine":
        progress = min(step / total_steps, 1.0) if total_steps > 0 else 0.0
        lr = optim_cfg.lr_min + 0.5 * (optim_cfg.lr - optim_cfg.lr_min) * (1.0 + math.cos(math.pi * progress))
    else:
        raise ConfigError(f"config key 'optim.schedule': unknown schedule {optim_cfg.schedule!r} (step | cosine)")
    if optim_cfg.warmup > 0 and step < optim_cfg.warmup:
        lr *= (step + 1) / optim_cfg.warmup
    return lr


def set_train_mode(model: torch.nn.Module, freeze_batchnorm: bool) -> None:
    """Training mode, with every BatchNorm kept in eval mode (running statistics used, not updated)
    when ``freeze_batchnorm``: small batches then no longer swing the statistics.

    >>> m = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))
    >>> set_train_mode(m, True); m.training, m[1].training
    (True, False)
    """
    model.train()
    if freeze_batchnorm:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def make_ema(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights and buffers (BatchNorm statistics).

    >>> ema = make_ema(torch.nn.Linear(2, 2), 0.99); ema.update_parameters(torch.nn.Linear(2, 2))
    """
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)


def autocast_context(device: torch.device, cfg: TrainConfig):
    """bf16/fp16 autocast on CUDA when ``amp``; bf16 autocast on the CPU when ``cpu_bf16``."""
    if device.type == "cuda" and cfg.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and cfg.cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loss_fn(output: torch.Tensor, target: torch.Tensor, kind: str, level: torch.Tensor | None = None,
            dc_weight: float = 0.0, dc_block: int = 16) -> torch.Tensor:
    """MSE: ``mse_mean`` averages over every value; ``mse_sum`` sums and halves per batch (FastDVDnet);
    ``mse_rel`` divides each sample's MSE by its noise level squared (``level``: ``(N,)``, the mean
    of its noise map), so light noise weighs as much as heavy noise: the mean of a PSNR gain, not of
    an MSE that the heaviest windows dominate.

    ``dc_weight`` > 0 adds that many times the MSE of the ``dc_block``-pixel block means of
    ``(N, C, H, W)`` images (their local colour: a shift of a level or two over a flat area costs
    more PSNR at light noise than any detail), weighed and reduced as ``kind`` says.

    >>> float(loss_fn(torch.ones(2, 3), torch.zeros(2, 3), "mse_mean"))
    1.0
    >>> float(loss_fn(torch.ones(2, 3), torch.zeros(2, 3), "mse_rel", torch.tensor([1.0, 0.5])))
    2.5
    >>> float(loss_fn(torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), "mse_mean", dc_weight=2.0, dc_block=2))
    3.0
    """
    if kind not in ("mse_mean", "mse_sum", "mse_rel"):
        raise ConfigError(f"config key 'optim.loss': unknown loss {kind!r} (mse_mean | mse_sum | mse_rel)")
    error = output.float() - target.float()
    per_sample = error.square().flatten(1).mean(1)
    if dc_weight > 0:
        per_sample = per_sample + dc_weight * F.avg_pool2d(error, dc_block, ceil_mode=True).square().flatten(1).mean(1)
    if kind == "mse_mean":
        return per_sample.mean()
    if kind == "mse_sum":
        return per_sample.sum() * error[0].numel() / (2 * output.shape[0])
    return (per_sample / level.float().clamp_min(1e-3).square()).mean()


def git_commit(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the source tree, or ``unknown``."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware_string(device: torch.device) -> str:
    """The accelerator or CPU model and thread count, for model cards."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads (CPU)"


class _StopFlag:
    """Turns SIGTERM/SIGINT into a flag the loop checks, so the run ends with a checkpoint."""

    def __init__(self):
        self.stop = False
        self._old = {}

    def __enter__(self):
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.stop = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@torch.no_grad()
def validate(model: torch.nn.Module, val_set: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
             device: torch.device) -> float:
    """Mean PSNR (dB) over held-out windows: ``val_set`` holds (noisy windows, the noise level of
    each window (0-255), clean centres), from :func:`make_val_set`.

    >>> validate(model, make_val_set(clips, 30.0, 3), torch.device("cpu"))  # doctest: +SKIP
    31.2
    """
    was_training = model.training
    model.eval()
    scores = []
    for windows, levels, targets in val_set:
        nmap = (levels / 255.0).reshape(-1, 1, 1, 1).expand(-1, 1, *windows.shape[-2:]).to(device)
        out = model(windows.to(device), nmap).clamp(0, 1).cpu()
        scores.append(float(psnr(out, targets)))
    model.train(was_training)
    return float(np.mean(scores)) if scores else float("nan")


def make_val_set(clips: list[tuple[str, torch.Tensor]], sigma: float, frames: int, window: int = 5,
                 seed: int = 1234, degradations: Sequence[str] = ()
                 ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Fixed noisy windows (8-bit, seeded), their noise levels and clean centre frames for
    ``frames`` outputs per clip: Gaussian noise of ``sigma`` at that level, or, per label of
    ``degradations`` (``streamden eval``'s, e.g. ``"compressed s15 x264 crf23"``), the clip
    degraded so, each window at the blind estimate of its centre frame (what ``--sigma auto``
    gives the network; the effective level where the estimate finds nothing).

    >>> vs = make_val_set([("c", torch.zeros(7, 3, 16, 16, dtype=torch.uint8))], 30.0, 3)
    >>> [t.shape for t in vs[0]]
    [torch.Size([3, 5, 3, 16, 16]), torch.Size([3]), torch.Size([3, 3, 16, 16])]
    """
    from ..noise.degrade import degrade, effective_level, parse_degradation
    from ..noise.estimate import estimate_level

    gen = torch.Generator().manual_seed(seed)
    specs = [parse_degradation(label) for label in degradations]
    out = []
    half = window // 2
    for index, (_, clip) in enumerate(clips):
        clean = clip.float() / 255.0
        n_out = min(frames, clean.shape[0] - window + 1)
        if n_out <= 0:
            continue
        clean = clean[: n_out + window - 1]
        targets = clean[half:half + n_out]
        if not specs:
            noisy = noisy_8bit(clean, sigma, gen)
            windows = torch.stack([noisy[i:i + window] for i in range(n_out)])
            out.append((windows, torch.full((n_out,), float(sigma)), targets))
            continue
        for k, spec in enumerate(specs):
            noisy = degrade(clean, spec, seed=seed + 1000 * index + k)
            levels = [estimate_level(noisy[half + i]) for i in range(n_out)]
            levels = [effective_level(noisy[half + i], targets[i]) if lv is None else lv for i, lv in enumerate(levels)]
            windows = torch.stack([noisy[i:i + window] for i in range(n_out)])
            out.append((windows, torch.tensor(levels, dtype=torch.float32), targets))
    return out


def load_val_set(cfg: TrainConfig, aligner=None) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], int]:
    """The held-out validation of a train config (:func:`make_val_set` on ``data.val_videos``),
    its windows aligned by ``aligner`` when given (flows on the noisy frames, as at inference),
    and the number of clips read. Without ``data.val_videos``: no windows.

    >>> val_set, clips = load_val_set(cfg, make_aligner(cfg.align, torch.device("cpu")))  # doctest: +SKIP
    """
    clips = load_val_clips(cfg.data.val_videos, cfg.val_frames + cfg.data.frames - 1, cfg.val_crop,
                           cfg.data.max_long_side) if cfg.data.val_videos else []
    val_set = make_val_set(clips, cfg.val_sigma, cfg.val_frames, cfg.data.frames, degradations=cfg.val_degradations)
    if aligner is not None:
        val_set = [(align_windows(windows, aligner), levels, targets) for windows, levels, targets in val_set]
    return val_set, len(clips)


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches: Iterable[Batch], device: torch.device) -> torch.nn.Module:
    """Re-estimate every BatchNorm's running statistics as a plain average over ``batches``
    (training batches, :func:`streamden.train.batches.batch_stream`).

    Training leaves exponential averages of the last few batches (momentum 0.1), which a few
    unusual batches can pull off; the exported weights get population statistics instead.
    Runs in fp32, in place; returns the model in eval mode.

    >>> recalibrate_batchnorm(model, batch_stream(maker, 0, 200), torch.device("cpu"))  # doctest: +SKIP
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None               # cumulative average over the calls that follow
    model.train()
    for _, noisy, nmap in batches:
        model(noisy.to(device), nmap.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def _optimizer_text(cfg: TrainConfig) -> str:
    o = cfg.optim
    sched = (f"milestones {o.milestones}, gamma {o.gamma}" if o.schedule == "step"
             else f"cosine to {o.lr_min} at step {cfg.steps}")
    extras = [f"warm-up {o.warmup}" if o.warmup else "", f"EMA {cfg.ema}" if cfg.ema > 0 else "",
              f"BatchNorm frozen from step {cfg.bn_freeze_after}" if cfg.bn_freeze_after >= 0 else ""]
    return ", ".join([f"Adam lr {o.lr}", sched, f"grad clip {o.grad_clip}"] + [e for e in extras if e])


def _metadata(cfg: TrainConfig, device: torch.device, step: int, seconds: float, val_psnr: float,
              sampler: PatchSampler | None) -> dict:
    noise = cfg.noise
    counts = f"{len(sampler.clips)} clips, {len(sampler.stills)} stills with synthetic motion, " if sampler else ""
    return {
        "architecture": cfg.architecture,
        "name": cfg.name,
        "training_data": (f"videos: {', '.join(cfg.data.videos)}; stills: {', '.join(cfg.data.stills)} "
                          f"({counts}still_fraction {cfg.data.still_fraction})"),
        "noise_model": noise.model if noise.model != "mix" else f"mix of {', '.join(noise.mix)}",
        "noise_realistic": (f"camera shot gain {noise.shot_min}-{noise.shot_max} (log-uniform), codecs "
                            f"{', '.join(noise.codecs)} (CRF {noise.crf_min}-{noise.crf_max}, JPEG "
                            f"{noise.jpeg_quality_min}-{noise.jpeg_quality_max}); map: effective level"
                            if noise.model in ("camera", "compressed", "camera+compressed", "mix") else ""),
        "sigma_range": [noise.sigma_min, noise.sigma_max],
        "sigma_sampling": noise.sigma_sampling,
        "augment": (f"flips {cfg.data.flips}, rot90 {cfg.data.rot90}, reverse {cfg.data.reverse}, "
                    f"invert {cfg.data.invert}, channel_shuffle {cfg.data.channel_shuffle}, colour {cfg.data.colour} "
                    f"(gain {cfg.data.colour_gain:g}, target {cfg.data.colour_target:g})"),
        "noise_clip": noise.clip,
        "steps": step,
        "patch": cfg.data.patch,
        "batch": cfg.batch,
        "loss": cfg.optim.loss + (f" + {cfg.optim.dc_weight:g} x MSE of {cfg.optim.dc_block}-pixel block means"
                                  if cfg.optim.dc_weight > 0 else ""),
        "optimizer": _optimizer_text(cfg),
        "precision": "bf16 autocast" if (device.type == "cpu" and cfg.cpu_bf16) or (device.type == "cuda" and cfg.amp) else "fp32",
        "wall_time_s": round(seconds, 1),
        "hardware": hardware_string(device),
        "git_commit": git_commit(),
        "val_psnr": round(val_psnr, 3) if math.isfinite(val_psnr) else None,
        "val_sigma": cfg.val_sigma,
        "val_noise": cfg.val_noise,
        "align": cfg.align.mode,
        "val_data": ", ".join(cfg.data.val_videos),
        "input_range": "[0, 1] RGB, noise map sigma/255",
    }


def initial_model(cfg: TrainConfig, log: Callable[[str], None] = print) -> torch.nn.Module:
    """The network a run starts from: random at ``channels`` (0: the architecture's width), or
    ``init``'s weights, carried into a wider FastDVDnet unchanged when ``channels`` asks for one
    (:func:`streamden.models.fastdvdnet.widen_state`).

    >>> initial_model(TrainConfig(channels=48)).base
    48
    """
    kwargs = {"base": cfg.channels} if cfg.channels else {}
    if not cfg.init:
        return build_model(cfg.architecture, **kwargs)
    start = load_model(cfg.init, device=torch.device("cpu")).state_dict()
    model = build_for_state(cfg.architecture, start)
    if not cfg.channels or cfg.channels == getattr(model, "base", cfg.channels):
        model.load_state_dict(start)
        log(f"initialised from {cfg.init}")
        return model
    if cfg.channels < model.base:
        raise ConfigError(f"channels: {cfg.channels} is narrower than {cfg.init} ({model.base}); a network is only widened")
    wide = build_model(cfg.architecture, **kwargs)
    wide.load_state_dict(widen_state(start, wide))
    log(f"initialised from {cfg.init}, widened from {model.base} to {cfg.channels} channels (the same output)")
    return wide


def export_checkpoint(config: TrainConfig, output: str | os.PathLike) -> Path:
    """The weights of a run's last checkpoint (``<work_dir>/checkpoint.pt``) as a safetensors
    file ``output``: the weight average when the run keeps one (``ema``), else the raw weights,
    so a long run can be evaluated while it goes on (checkpoints are replaced atomically).

    >>> export_checkpoint(load_config(TrainConfig, "configs/train/fastdvdnet_real4.yaml"),
    ...                   "runs/real4_now.safetensors")  # doctest: +SKIP
    """
    ckpt_path = Path(config.work_dir) / CHECKPOINT
    if not ckpt_path.is_file():
        raise ConfigError(f"{config.work_dir}: no checkpoint to export (train first; checkpoint_every > 0)")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    prefix = "module."
    weights = ({k[len(prefix):]: v for k, v in state["ema"].items() if k.startswith(prefix)}
               if state.get("ema") else state["model"])
    model = build_for_state(config.architecture, weights)
    model.load_state_dict(weights)
    meta = _metadata(config, torch.device("cpu"), state["step"], state["seconds"], state.get("last_val", math.nan), None)
    meta["exported_from"] = f"checkpoint at step {state['step']}" + (" (weight average)" if state.get("ema") else "")
    out = Path(output)
    save_weights(model, out, meta)
    return out


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Train a denoiser following ``config``; returns the path of the final weights file.

    With ``resume`` the run continues from ``<work_dir>/checkpoint.pt`` at the saved step
    (same data and noise streams). SIGTERM/SIGINT stop the run cleanly: a checkpoint and the
    final weights are written and their path returned.

    >>> from streamden.config import load_config
    >>> train(load_config(TrainConfig, "configs/train/fastdvdnet.yaml", ["steps=10"]))  # doctest: +SKIP
    """
    cfg = config
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise ConfigError(f"{work}: holds a checkpoint already; pass --resume to continue it or choose another work_dir")
    if resume and not ckpt_path.exists():
        log(f"no checkpoint in {work}: starting from step 0")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    t_load = time.time()
    bank = FrameBank.load(cfg.data, min_size=cfg.data.patch, min_frames=cfg.data.frames)
    maker = BatchMaker(bank, cfg)
    sampler = maker.sampler
    val_set, val_clip_count = load_val_set(cfg, maker.aligner)
    log(f"data: {bank.describe()}; val: {val_clip_count} clips ({cfg.val_noise}); loaded in {time.time() - t_load:.1f}s; "
        f"batches made {f'by {cfg.data.workers} worker process(es)' if cfg.data.workers else 'in this process'}")

    model = initial_model(cfg, log).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    ema = make_ema(model, cfg.ema) if cfg.ema > 0 else None
    step, seconds, best_val, last_val = 0, 0.0, -math.inf, math.nan

    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            if state.get("ema"):
                ema.load_state_dict(state["ema"])
            else:  # a checkpoint from before the average was switched on
                ema = make_ema(model, cfg.ema)
        step, seconds = state["step"], state["seconds"]
        best_val, last_val = state.get("best_val", -math.inf), state.get("last_val", math.nan)
        log(f"resumed from {ckpt_path} at step {step} ({seconds:.0f}s trained)")

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "scheduler": {"milestones": list(cfg.optim.milestones), "gamma": cfg.optim.gamma, "step": step},
            "step": step, "seconds": seconds, "best_val": best_val, "last_val": last_val,
            "config": to_dict(cfg),
        })

    log_path = work / LOG
    centre = cfg.data.frames // 2
    def averaged() -> torch.nn.Module:   # what is validated and exported
        return ema.module if ema is not None else model

    losses: list[float] = []
    t_last = time.time()
    batches = batch_stream(maker, step, cfg.steps, cfg.data.workers)
    with _StopFlag() as flag:
        while step < cfg.steps and not flag.stop:
            lr = lr_at(step, cfg.optim, cfg.steps)
            set_train_mode(model, 0 <= cfg.bn_freeze_after <= step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            clean, noisy, nmap = (t.to(device, non_blocking=True) for t in next(batches))
            if cfg.channels_last:
                noisy = noisy.contiguous(memory_format=torch.contiguous_format)
            with autocast_context(device, cfg):
                out = model(noisy, nmap)
            loss = loss_fn(out, clean[:, centre], cfg.optim.loss, nmap.flatten(1).mean(1),
                           cfg.optim.dc_weight, cfg.optim.dc_block)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            losses.append(float(loss.detach()))
            now = time.time()
            seconds += now - t_last
            t_last = now

            val_due = bool(val_set) and cfg.val_every > 0 and (step % cfg.val_every == 0 or step == cfg.steps)
            if val_due:
                last_val = validate(averaged(), val_set, device)
                shift = worst_colour_shift(averaged(), device) if cfg.val_colour_limit > 0 else math.nan
                if cfg.val_keep:
                    save_weights(averaged(), work / f"val_{step}.safetensors",
                                 _metadata(cfg, device, step, seconds, last_val, sampler))
                if last_val > best_val and not shift >= cfg.val_colour_limit:
                    best_val = last_val
                    save_weights(averaged(), work / "best.safetensors",
                                 _metadata(cfg, device, step, seconds, last_val, sampler))
                t_last = time.time()  # validation time is not training time
            if step % cfg.log_every == 0 or val_due or step == cfg.steps:
                mean_loss = float(np.mean(losses)) if losses else math.nan
                losses.clear()
                _append_log(log_path, {"step": step, "loss": f"{mean_loss:.6g}", "lr": f"{lr:.3g}",
                                       "val_psnr": f"{last_val:.3f}" if val_due else "", "seconds": f"{seconds:.1f}"})
                msg = f"step {step}/{cfg.steps} loss {mean_loss:.5g} lr {lr:.2g} {seconds:.0f}s"
                log(msg + (f" val_psnr {last_val:.2f} dB" if val_due else "")
                    + (f" colour shift {shift:.1f} levels{' (not eligible as best)' if shift >= cfg.val_colour_limit else ''}"
                       if val_due and cfg.val_colour_limit > 0 else ""))
            if val_due:
                with contextlib.suppress(Exception):  # a plot is never worth a failed run
                    plot_log(log_path, work / PLOT)
            if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0:
                checkpoint()
                t_last = time.time()
        del batches   # stops the workers
        if flag.stop:
            log(f"stopped by signal at step {step}")
        checkpoint()
    with contextlib.suppress(Exception):
        plot_log(log_path, work / PLOT)
    final = averaged()
    if cfg.bn_recalibrate > 0:
        # on a copy: the checkpoint keeps the training state, so a resume is unaffected
        final = copy.deepcopy(final)
        recal = BatchMaker(bank, dataclasses.replace(cfg, seed=cfg.seed + 3))
        recalibrate_batchnorm(final, batch_stream(recal, 0, cfg.bn_recalibrate), device)
    final_val = validate(final, val_set, device) if val_set else math.nan
    out_path = Path(cfg.output) if cfg.output else work / "final.safetensors"
    save_weights(final, out_path, _metadata(cfg, device, step, seconds, final_val, sampler))
    recal_note = f", BatchNorm recalibrated on {cfg.bn_recalibrate} batches" if cfg.bn_recalibrate > 0 else ""
    log(f"weights: {out_path} (step {step}, {seconds:.0f}s, val {final_val:.2f} dB{recal_note}; "
        f"best val during training {best_val:.2f} dB)")
    return out_path
