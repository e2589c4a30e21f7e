"""`streamden eval`: our network against the classics, on the same noisy frames, in one run.

For each clean clip (a folder of frames or a video file) and each sigma, seeded Gaussian
noise is added and the result clipped and rounded to 8 bits, as real video carries it. The
same noisy frames then go to every method:

* ``noisy``  - the noisy input itself;
* ``nlm``    - OpenCV ``fastNlMeansDenoisingColoredMulti``, temporal window 5 (reflected at
  the clip ends), ``h = hColor = NLM_H_PER_SIGMA * sigma`` (the rule tuned on a training clip);
* ``cbm3d``  - CBM3D frame by frame from the optional ``bm3d`` package, when it imports;
* ``single`` - our network fed the centre frame five times (no temporal information);
* ``model``  - our network on the whole sequence (:func:`streamden.models.streaming.denoise_sequence`),
  windows flow-aligned when the model was trained that way (``align.mode: auto``).

PSNR and SSIM are averaged over the frames of a clip; the table also shows the mean over clips.

With ``degradations`` (``streamden eval --degradation gaussian,camera,compressed,camera+compressed``)
the clips get the realistic degradations of :mod:`streamden.noise.degrade` instead, and
every method gets its best strength, found on the clean clip (an oracle, the same for all):

* ``nlm`` at ``h = k * L`` and ``cbm3d`` at ``sigma = k * L`` for ``k`` in :data:`NLM_GRID`
  and :data:`CBM3D_GRID`, with ``L`` the effective level ``std(noisy - clean)``;
* ``model`` is what users get: ``--sigma auto`` (per-frame estimate, smoothed as ``noise.smoothing``);
* ``fixed`` is our network at its best fixed level ``k * L``, ``k`` in :data:`MODEL_GRID`.

Each row records the effective level and the setting that won.

>>> result = evaluate(["../shared/data/val/videos/da_demo1"], [30], frames=5, crop=128)  # doctest: +SKIP
>>> print(result.format_table())                                                         # doctest: +SKIP
"""
from __future__ import annotations

import csv
import json
import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from .errors import InputError
from .metrics import psnr_per_image, ssim_per_image
from .models.fastdvdnet import WINDOW
from .noise.degrade import Degradation, degrade, effective_level
from .noise.estimate import channel_levels
from .noise.synth import noisy_8bit
from .train.data import find_clips, read_clip

if TYPE_CHECKING:
    from .engine import Engine

BASELINES = ("noisy", "nlm", "cbm3d", "single")
METHOD_ORDER = ("noisy", "nlm", "cbm3d", "single", "model", "fixed")
METHOD_LABELS = {
    "noisy": "noisy input",
    "nlm": "OpenCV NLM-multi (5 fr)",
    "cbm3d": "CBM3D (per frame)",
    "single": "ours, single-frame",
    "model": "ours, FastDVDnet",
    "fixed": "ours, best fixed level",
}
# Strength grids of the degradation runs, as multiples of the effective level (best one kept).
# Measured on the validation clips: NLM peaks near 0.6, CBM3D and our Gaussian-trained
# network at 1.5-2 x the effective level of compressed noise.
NLM_GRID = (0.4, 0.6, 0.8)
CBM3D_GRID = (1.0, 1.5, 2.0, 3.0)
MODEL_GRID = (1.0, 1.5, 2.0, 3.0)
NLM_H_PER_SIGMA = 0.6        # h = hColor = 0.6 * sigma; see MODEL_CARD.md for the tuning
NLM_TEMPLATE, NLM_SEARCH = 7, 21


@dataclass
class EvalRow:
    """One method on one clip at one sigma (PSNR in dB, SSIM, averaged over frames)."""

    clip: str
    sigma: float
    method: str
    psnr: float
    ssim: float
    frames: int
    seconds: float
    degradation: str = ""        # the degradation's label (empty: Gaussian noise of ``sigma``)
    effective: float = math.nan  # std(noisy - clean), 0-255
    setting: str = ""            # the strength that won (grid runs) or the level used

    @property
    def level(self) -> str:
        """The table group this row belongs to: the degradation label, or the sigma."""
        return self.degradation or f"{self.sigma:g}"


@dataclass
class EvalResult:
    """All rows of an evaluation plus its settings and notes (e.g. a skipped baseline).

    >>> r = EvalResult(rows=[EvalRow("a", 30.0, "noisy", 18.6, 0.3, 5, 0.0)])
    >>> r.average("noisy", 30.0)
    (18.6, 0.3)
    """

    rows: list[EvalRow] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def clips(self) -> list[str]:
        """Clip names in order of first appearance."""
        return list(dict.fromkeys(r.clip for r in self.rows))

    @property
    def sigmas(self) -> list[float]:
        """Sigmas in order of first appearance."""
        return list(dict.fromkeys(r.sigma for r in self.rows))

    @property
    def levels(self) -> list[str]:
        """Table groups (degradation labels, or sigmas) in order of first appearance."""
        return list(dict.fromkeys(r.level for r in self.rows))

    @property
    def methods(self) -> list[str]:
        """Methods present, in the canonical order."""
        present = {r.method for r in self.rows}
        return [m for m in METHOD_ORDER if m in present]

    def get(self, clip: str, level: float | str, method: str) -> EvalRow | None:
        """The row for one clip, level (a sigma or a degradation label) and method, or None."""
        for r in self.rows:
            if r.clip == clip and r.level == _level_key(level) and r.method == method:
                return r
        return None

    def average(self, method: str, level: float | str) -> tuple[float, float]:
        """Mean (PSNR, SSIM) over clips for one method and level (NaN when absent)."""
        rows = [r for r in self.rows if r.method == method and r.level == _level_key(level)]
        if not rows:
            return math.nan, math.nan
        return float(np.mean([r.psnr for r in rows])), float(np.mean([r.ssim for r in rows]))

    def effective(self, level: float | str) -> float:
        """Mean effective level (std(noisy - clean), 0-255) over clips of one level."""
        values = [r.effective for r in self.rows if r.level == _level_key(level) and r.method == "noisy"]
        return float(np.mean(values)) if values else math.nan

    def format_table(self) -> str:
        """A plain-text table: per sigma, one line per method with PSNR/SSIM per clip and the mean.

        >>> print(EvalResult(rows=[EvalRow("a", 30.0, "noisy", 18.6, 0.3, 5, 0.0)]).format_table())  # doctest: +ELLIPSIS
        sigma  method ...
        """
        clips = self.clips
        name_w = max(len(v) for v in METHOD_LABELS.values())
        level_w = max([6] + [len(level) for level in self.levels])
        head = f"{'sigma' if level_w == 6 else 'degradation':<{level_w}} {'method':<{name_w}}" + \
            "".join(f" {c[:15]:>15}" for c in clips) + f" {'mean':>15}"
        sub = f"{'':<{level_w}} {'':<{name_w}}" + "".join(f" {'PSNR / SSIM':>15}" for _ in clips + ['mean'])
        lines = [head, sub, "-" * len(head)]
        for level in self.levels:
            for m in self.methods:
                cells = []
                for c in clips:
                    r = self.get(c, level, m)
                    cells.append(f"{r.psnr:6.2f} / {r.ssim:.3f}" if r else f"{'-':>15}")
                p, s = self.average(m, level)
                cells.append(f"{p:6.2f} / {s:.3f}")
                lines.append(f"{level:<{level_w}} {METHOD_LABELS.get(m, m):<{name_w}}" + "".join(f" {x:>15}" for x in cells))
            effective = self.effective(level)
            if any(r.degradation for r in self.rows):
                lines.append(f"{'':<{level_w}} effective level {effective:.2f} (std of noisy - clean, mean of the clips)")
            lines.append("")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self) -> dict:
        """Settings, notes, rows and per-sigma means as plain data."""
        means = {level: {m: dict(zip(("psnr", "ssim"), self.average(m, level))) for m in self.methods}
                 for level in self.levels}
        return {"settings": self.settings, "notes": self.notes, "rows": [asdict(r) for r in self.rows],
                "mean": means}

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True) + "\n")
        return path

    def to_csv(self, path: str | Path) -> Path:
        """Write one CSV line per row (clip, sigma, method, psnr, ssim, frames, seconds); returns the path."""
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(EvalRow.__dataclass_fields__))
            w.writeheader()
            for r in self.rows:
                w.writerow(asdict(r))
        return path


def _level_key(level: float | str) -> str:
    return level if isinstance(level, str) else f"{float(level):g}"


def centre_crop(frames: torch.Tensor, crop: int | None) -> torch.Tensor:
    """The centre ``crop`` x ``crop`` square of ``(T, 3, H, W)`` frames (clipped to the frame size).

    >>> centre_crop(torch.zeros(2, 3, 10, 20), 8).shape
    torch.Size([2, 3, 8, 8])
    """
    if not crop:
        return frames
    h, w = frames.shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return frames[..., top:top + ch, left:left + cw]


def read_clean(path: str | Path, frames: int | None = None, crop: int | None = None) -> torch.Tensor:
    """A clean clip as every eval reads it: its first ``frames`` frames (all when None), the
    centre ``crop`` square (whole frames when None), ``(T, 3, H, W)`` float in [0, 1]."""
    return centre_crop(read_clip(path, max_frames=frames or 0), crop).float() / 255.0


def degrade_clip(clean: torch.Tensor, clip: str, spec: Degradation, seed: int = 0) -> torch.Tensor:
    """``clean`` degraded as ``spec`` says with the noise of (``seed``, clip name, setting): the
    input :func:`evaluate` gives every method for that row, whatever else runs."""
    return degrade(clean, spec, clip_seed(seed, clip, spec.sigma, spec.label))


def degraded_clips(clean_dirs: Sequence[str | Path], specs: Sequence[Degradation], frames: int | None = None,
                   crop: int | None = None, seed: int = 0
                   ) -> Iterator[tuple[Degradation, list[tuple[str, torch.Tensor, torch.Tensor]]]]:
    """Each degradation with its (clip name, clean, degraded) inputs over the clips of
    ``clean_dirs``, built as :func:`evaluate` builds them (for scripts that study its rows)."""
    cleans = [(Path(path).name, read_clean(path, frames, crop)) for path in find_clips(clean_dirs)]
    for spec in specs:
        yield spec, [(name, clean, degrade_clip(clean, name, spec, seed)) for name, clean in cleans]


def clip_seed(seed: int, clip: str, sigma: float, label: str = "") -> int:
    """A noise seed per (run seed, clip name, sigma, degradation label), independent of the order
    things run in.

    >>> clip_seed(0, "a", 30) == clip_seed(0, "a", 30.0)
    True
    """
    extra = zlib.crc32(label.encode()) if label else 0
    return (seed * 1_000_003 + zlib.crc32(clip.encode()) + int(round(sigma * 100)) + extra) % (2 ** 63)


def _to_uint8_bgr(frames: torch.Tensor) -> list[np.ndarray]:
    arr = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(a[..., ::-1]) for a in arr]


def _from_uint8_bgr(images: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack([im[..., ::-1] for im in images])
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 255.0


def nlm_denoise(noisy: torch.Tensor, sigma: float, h_per_sigma: float = NLM_H_PER_SIGMA,
                window: int = WINDOW) -> torch.Tensor:
    """OpenCV ``fastNlMeansDenoisingColoredMulti`` over a reflected temporal window, frame by frame.

    ``noisy`` is ``(T, 3, H, W)`` in [0, 1]; ``h = hColor = h_per_sigma * sigma``.

    >>> nlm_denoise(torch.rand(3, 3, 32, 32), 20.0).shape
    torch.Size([3, 3, 32, 32])
    """
    from .models.streaming import reflect_index

    imgs = _to_uint8_bgr(noisy)
    count, half = len(imgs), window // 2
    h = float(h_per_sigma * sigma)
    out = []
    for t in range(count):
        stack = [imgs[reflect_index(t + k, count)] for k in range(-half, half + 1)]
        out.append(cv2.fastNlMeansDenoisingColoredMulti(stack, half, window, None, h, h, NLM_TEMPLATE, NLM_SEARCH))
    return _from_uint8_bgr(out)


def cbm3d_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    """CBM3D frame by frame with the optional ``bm3d`` package (raises ImportError without it)."""
    import bm3d  # optional, non-commercial licence: never a core dependency

    out = []
    for frame in noisy:
        img = frame.permute(1, 2, 0).double().numpy()
        out.append(torch.from_numpy(np.asarray(bm3d.bm3d_rgb(img, sigma / 255.0), dtype=np.float32)).permute(2, 0, 1))
    return torch.stack(out).clamp(0, 1)


def single_frame_denoise(engine: "Engine", noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    """The network fed each frame five times (no temporal information): the single-frame
    baseline, through the engine's single-frame pass.

    >>> from streamden.config import make_config
    >>> from streamden.engine import Engine
    >>> single_frame_denoise(Engine(make_config(None, device="cpu")), torch.rand(2, 3, 10, 14), 20.0).shape
    torch.Size([2, 3, 10, 14])
    """
    return torch.stack([engine.single_frame(frame, sigma).cpu() for frame in noisy])


def auto_denoise(engine: "Engine", noisy: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """The network as ``--sigma auto`` runs it: a per-frame estimate folded through the engine's
    tracker (``noise.smoothing``, the last good level on a failed frame), then the whole clip;
    returns the output and the levels used.

    >>> from streamden.config import make_config
    >>> from streamden.engine import Engine
    >>> out, levels = auto_denoise(Engine(make_config(None, device="cpu")), torch.rand(2, 3, 32, 32))
    >>> out.shape, len(levels)
    (torch.Size([2, 3, 32, 32]), 2)
    """
    tracker = engine.sigma_tracker()
    levels = [tracker.update(engine.estimate_sigma(frame)) for frame in noisy]
    return engine.denoise_clip(noisy, levels), levels


def auto_setting(levels: Sequence[float]) -> str:
    """How ``--sigma auto`` ran, for a table row: the mean level, and how many frames gave a
    clipped colour channel its own level (:class:`~streamden.noise.estimate.NoiseLevel`).

    >>> from streamden.noise.estimate import NoiseLevel
    >>> auto_setting([10.0, NoiseLevel(12.0, (30.0, 12.0, 12.0))])
    'auto, mean 11.0, 1 of 2 frames with a channel at its own level (mean r 30.0, g 12.0, b 12.0)'
    """
    own = [channel_levels(v) for v in levels if channel_levels(v) is not None]
    line = f"auto, mean {np.mean([float(v) for v in levels]):.1f}"
    if own:
        means = np.mean(own, axis=0)
        line += (f", {len(own)} of {len(levels)} frames with a channel at its own level "
                 f"(mean r {means[0]:.1f}, g {means[1]:.1f}, b {means[2]:.1f})")
    return line


def _best_over_grid(clean: torch.Tensor, run: Callable[[float], torch.Tensor], base: float,
                    grid: Sequence[float]) -> tuple[torch.Tensor, str]:
    """Run ``run(k * base)`` for every ``k`` of the grid; the output with the best PSNR and its setting."""
    best, best_psnr, setting = None, -math.inf, ""
    for k in grid:
        out = run(k * base)
        p = score(clean, out)[0]
        if p > best_psnr:
            best, best_psnr, setting = out, p, f"{k:g} x level = {k * base:.1f}"
    return best, setting


def score(clean: torch.Tensor, out: torch.Tensor) -> tuple[float, float]:
    """(mean PSNR over the frames whose PSNR is finite, mean SSIM) of ``out`` against ``clean``,
    both ``(T, 3, H, W)`` in [0, 1]: the figures every eval row reports.

    >>> clean = torch.full((2, 3, 16, 16), 0.5)
    >>> round(score(clean, clean + 0.1)[0], 2)
    20.0
    """
    p = psnr_per_image(out, clean)
    finite = p[torch.isfinite(p)]
    return (float(finite.mean()) if finite.numel() else math.inf), float(ssim_per_image(out, clean).mean())


def evaluate(clean_dirs: list[str | Path], sigmas: list[float], model: str | None = None, frames: int | None = None,
             crop: int | None = None, seed: int = 0, device: str = "cpu", precision: str = "auto", align: str = "auto",
             baselines: Sequence[str] = ("noisy", "nlm", "single"), cbm3d: bool = True,
             log: Callable[[str], None] = print, degradations: Sequence[Degradation] | None = None,
             ensemble: int = 1, refine: bool = True) -> EvalResult:
    """Evaluate a model (registry name or ``.safetensors`` path; None = default) and the baselines.

    ``clean_dirs`` are clips (frame folders or video files) or folders of clips; ``frames``
    keeps the first N frames, ``crop`` the centre C x C square. CBM3D runs when ``cbm3d`` and
    ``import bm3d`` works; otherwise a note says it was skipped. The network runs through
    the :class:`~streamden.engine.Engine` of a job with these settings (``precision`` auto:
    bf16 on a CPU with native bf16), aligned as the model card says (``align`` auto) or as
    ``align`` forces: what users get. ``degradations`` replace the Gaussian ``sigmas`` by
    realistic degradations, each method at its best strength (see the module docstring).
    ``ensemble`` is ``model.ensemble``: the network's passes on flipped and rotated windows;
    ``refine`` is ``model.refine``: the Wiener pass over its output (False: the network alone).

    >>> r = evaluate(["../shared/data/val/videos"], [30], frames=8, crop=128)  # doctest: +SKIP
    >>> r.methods                                                              # doctest: +SKIP
    ['noisy', 'nlm', 'single', 'model']
    """
    from .config import make_config
    from .engine import Engine

    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baseline(s) {sorted(unknown)} (known: {', '.join(BASELINES)})")
    if not sigmas and not degradations:
        raise ValueError("evaluate: no sigma given")
    use = list(baselines)
    notes: list[str] = []
    if cbm3d and "cbm3d" not in use:
        try:
            import bm3d  # noqa: F401
            use.append("cbm3d")
        except ImportError:
            notes.append("CBM3D skipped: the optional `bm3d` package is not installed")
            log("note: " + notes[-1])

    # The network a job runs: with a known sigma model.name, with --sigma auto (the degradation
    # runs, "model" and "fixed" alike: the gate compares auto with the same network's best) the
    # auto model (noise.auto_model); --model names one for both.
    job_sigma = "auto" if degradations else sigmas[0]
    engine = Engine(make_config(None, model=model, sigma=job_sigma, device=device, precision=precision, align=align,
                                ensemble=ensemble, refine=refine))
    clips = find_clips(clean_dirs)
    if not clips:
        raise InputError("evaluate: no clips found")
    log(f"network: {engine.config.model.name}" + ("" if model else " (the default for this noise)"))
    result = EvalResult(settings={
        "clips": [str(c) for c in clips], "sigmas": [float(s) for s in sigmas], "model": model or "default",
        "network": engine.config.model.name,
        "frames": frames, "crop": crop, "seed": seed, "device": device, "precision": precision, "align": align,
        "ensemble": ensemble, "refine": refine,
        "nlm": f"fastNlMeansDenoisingColoredMulti, temporal window {WINDOW} (reflected at the ends), "
               f"h = hColor = {NLM_H_PER_SIGMA} * sigma, template {NLM_TEMPLATE}, search {NLM_SEARCH}",
        "noise": "Gaussian, clipped to [0, 255] and rounded to 8 bits",
    }, notes=notes)
    if degradations:
        result.settings.update({
            "degradations": [d.label for d in degradations],
            "noise": "streamden.noise.degrade (8-bit); each method at its best strength over a grid, "
                     "k times the effective level L = std(noisy - clean)",
            "nlm": f"fastNlMeansDenoisingColoredMulti, temporal window {WINDOW}, h = hColor = k * L, "
                   f"k in {list(NLM_GRID)}, template {NLM_TEMPLATE}, search {NLM_SEARCH}",
            "cbm3d": f"bm3d.bm3d_rgb per frame, sigma = k * L, k in {list(CBM3D_GRID)}",
            "model": "--sigma auto (per-frame estimate, smoothed by noise.smoothing)",
            "fixed": f"our network at a fixed level k * L, k in {list(MODEL_GRID)}",
        })
        _evaluate_degraded(result, engine, clips, degradations, frames, crop, seed, use, log)
        return result

    for path in clips:
        name = Path(path).name
        clean = read_clean(path, frames, crop)
        for sigma in sigmas:
            sigma = float(sigma)
            gen = torch.Generator().manual_seed(clip_seed(seed, name, sigma))
            noisy = noisy_8bit(clean, sigma, gen)
            runs: dict[str, Callable[[], torch.Tensor]] = {
                "noisy": lambda: noisy,
                "nlm": lambda: nlm_denoise(noisy, sigma),
                "cbm3d": lambda: cbm3d_denoise(noisy, sigma),
                "single": lambda: single_frame_denoise(engine, noisy, sigma),
                "model": lambda: engine.denoise_clip(noisy, sigma),
            }
            for method in METHOD_ORDER:
                if method != "model" and method not in use:
                    continue
                t0 = time.time()
                out = runs[method]()
                seconds = time.time() - t0
                p, s = score(clean, out)
                result.rows.append(EvalRow(name, sigma, method, round(p, 4), round(s, 5), clean.shape[0], round(seconds, 2)))
                log(f"{name} sigma {sigma:g} {method}: {p:.2f} dB, SSIM {s:.4f} ({seconds:.1f}s)")
    return result


def _evaluate_degraded(result: EvalResult, engine: "Engine", clips: list, degradations: Sequence[Degradation],
                       frames: int | None, crop: int | None, seed: int, use: Sequence[str],
                       log: Callable[[str], None]) -> None:
    """The degradation runs of :func:`evaluate` (rows appended to ``result``)."""
    for path in clips:
        name = Path(path).name
        clean = read_clean(path, frames, crop)
        for spec in degradations:
            noisy = degrade_clip(clean, name, spec, seed)
            level = effective_level(noisy, clean)
            runs: dict[str, Callable[[], tuple[torch.Tensor, str]]] = {
                "noisy": lambda: (noisy, ""),
                "nlm": lambda: _best_over_grid(clean, lambda h: nlm_denoise(noisy, h, h_per_sigma=1.0), level, NLM_GRID),
                "cbm3d": lambda: _best_over_grid(clean, lambda s: cbm3d_denoise(noisy, s), level, CBM3D_GRID),
                "single": lambda: (single_frame_denoise(engine, noisy, level), f"level {level:.1f}"),
                "model": lambda: (lambda out, used: (out, auto_setting(used)))(*auto_denoise(engine, noisy)),
                "fixed": lambda: _best_over_grid(clean, lambda s: engine.denoise_clip(noisy, s), level, MODEL_GRID),
            }
            for method in METHOD_ORDER:
                if method not in ("model", "fixed") and method not in use:
                    continue
                t0 = time.time()
                out, setting = runs[method]()
                seconds = time.time() - t0
                p, s = score(clean, out)
                result.rows.append(EvalRow(name, spec.sigma, method, round(p, 4), round(s, 5), clean.shape[0],
                                           round(seconds, 2), spec.label, round(level, 3), setting))
                log(f"{name} {spec.label} (level {level:.2f}) {method}: {p:.2f} dB, SSIM {s:.4f} "
                    f"[{setting}] ({seconds:.1f}s)")
