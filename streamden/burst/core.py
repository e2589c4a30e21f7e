"""One burst in, one photo out: reference, global + local alignment, merge, network."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import InputError

# Bursts use the registry's default model like every front door: fastdvdnet-aligned beat the
# unaligned model in single-frame mode on the synthetic night bursts (26.03 against 24.63 dB;
# burst 30.89 against 30.73 dB, benchmarks/burst_quality.py --count 10 --size 384).
from .fuse import aligned_mean, denoise_single, denoise_windows, residual_guard, robust_merge
from .global_align import estimate_homography, homography_map, remap
from .local import LocalAligner
from .reference import sharpest
from ..models.refine import wiener_refine
from ..noise.estimate import NoiseModel, estimate_noise_model

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["FUSION_METHODS", "BurstResult", "fuse_burst"]

#: ``network``: robust merge then the network (the default); ``windows``: the network over
#: windows of five aligned frames; ``merge``: the robust merge alone; ``mean``: the plain
#: mean of the globally aligned frames.
FUSION_METHODS = ("network", "windows", "merge", "mean")


@dataclass
class BurstResult:
    """The fused photo and how it was made."""

    image: torch.Tensor                 # (3, H, W) float32 in [0, 1]
    reference: int                      # index of the reference frame in the burst
    noise: NoiseModel                   # noise of one frame
    method: str
    homographies: list[np.ndarray] = field(default_factory=list)   # reference -> frame, per frame
    frames_used: float = 1.0            # mean effective number of frames per pixel
    timings: dict[str, float] = field(default_factory=dict)        # seconds per stage
    path: str | None = None             # where it was written, if it was
    metadata_copied: tuple[str, ...] = ()                          # "exif", "icc" carried over

    def to_numpy(self, dtype: type = np.uint16) -> np.ndarray:
        """``(H, W, 3)`` RGB of ``dtype`` (uint8 or uint16, rounded and clipped)."""
        from ..tensors import tensor_to_image
        return tensor_to_image(self.image, dtype)


def fuse_burst(frames: torch.Tensor, *, reference: int | str = "sharpest", noise: NoiseModel | None = None,
               method: str = "network", engine: "Engine | None" = None, refine: bool = True,
               flow_preset: str = "medium") -> BurstResult:
    """Fuse a burst ``(N, 3, H, W)`` float in [0, 1], ``N >= 2``, into one frame.

    ``reference`` is ``"sharpest"`` or a frame index; ``noise`` the noise of one frame
    (estimated from the reference when None); ``method`` one of :data:`FUSION_METHODS`;
    ``engine`` runs the network (:class:`~streamden.engine.Engine`; when None and the method
    needs one, the ``night_burst`` preset's: the default model, tiled, its precision);
    ``refine`` turns the DIS refinement of the alignment on. With ``model.refine`` (the engine's
    config) the network method ends with the Wiener pass over the merged frame
    (:func:`~streamden.models.refine.wiener_refine`, one frame).

    >>> from streamden.config import make_config
    >>> from streamden.engine import Engine
    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> burst = torch.rand(1, 3, 32, 32).repeat(3, 1, 1, 1)
    >>> engine = Engine(make_config("night_burst", device="cpu"), model=FastDVDnet().eval())
    >>> res = fuse_burst(burst, engine=engine, noise=NoiseModel.gaussian(20))
    >>> res.image.shape, res.reference
    (torch.Size([3, 32, 32]), 0)
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"fuse_burst: expected (N, 3, H, W) frames, got {tuple(frames.shape)}")
    count = frames.shape[0]
    if count < 2:
        raise InputError(f"a burst needs at least 2 frames, got {count}")
    if method not in FUSION_METHODS:
        raise ValueError(f"method must be one of {FUSION_METHODS}, got {method!r}")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    frames = frames.float()
    ref_index = sharpest(frames) if reference == "sharpest" else int(reference)
    if not -count <= ref_index < count:
        raise InputError(f"reference frame {ref_index} is out of range for a burst of {count} frames")
    ref_index %= count
    ref = frames[ref_index]
    noise = estimate_noise_model(ref) if noise is None else noise
    lap("reference+noise")

    others = [i for i in range(count) if i != ref_index]
    homs = {ref_index: np.eye(3)}
    for i in others:
        homs[i] = estimate_homography(ref, frames[i])
    lap("global")
    homographies = [homs[i] for i in range(count)]
    if method == "mean":
        warped = torch.stack([remap(frames[i], homography_map(homs[i], ref.shape[-2:]))[0] for i in others])
        image = aligned_mean(ref, warped)
        return BurstResult(image.clamp(0, 1), ref_index, noise, method, homographies, float(count), timings)

    aligner = LocalAligner(flow_preset, refine=refine)
    aligned, conf = aligner(ref, frames[others], [homs[i] for i in others], noise)
    lap("local")
    merged, n_eff = robust_merge(ref, aligned, conf)
    lap("merge")
    frames_used = float(n_eff.mean())
    if method == "merge":
        return BurstResult(merged.clamp(0, 1), ref_index, noise, method, homographies, frames_used, timings)

    if engine is None:
        from ..config import make_config
        from ..engine import Engine
        engine = Engine(make_config("night_burst"))
    if method == "network":
        std = noise.std_map(merged.unsqueeze(0))[0] / n_eff.sqrt()
        image = residual_guard(merged, denoise_single(engine, merged, std), std)
        if engine.config.model.refine:   # the Wiener pass on the merged frame (README "Night-mode bursts")
            image = wiener_refine(merged.unsqueeze(0), image.unsqueeze(0), engine.strength)
    else:
        std = noise.std_map(ref.unsqueeze(0))[0]
        image = denoise_windows(engine, ref, aligned, conf, std)
    lap("network")
    return BurstResult(image, ref_index, noise, method, homographies, frames_used, timings)
