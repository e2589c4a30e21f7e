"""``denoise_burst``: files in, one photo out (the front door behind ``streamden burst``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..io.atomic import check_output_path
from .core import FUSION_METHODS, BurstResult, fuse_burst
from .io import check_output_format, list_burst, read_burst, read_metadata, write_photo
from ..noise.estimate import NoiseModel

if TYPE_CHECKING:
    from ..config import DenoiseConfig

__all__ = ["denoise_burst"]

#: The preset a burst runs with when no config is given (``streamden burst --preset``'s default).
BURST_PRESET = "night_burst"


def _parse_reference(reference: int | str, count: int) -> int | str:
    if reference == "sharpest":
        return reference
    try:
        index = int(reference)
    except (TypeError, ValueError):
        raise ConfigError(f"reference must be 'sharpest' or a frame index, got {reference!r}") from None
    if not 0 <= index < count:
        raise InputError(f"reference frame {index} is out of range for a burst of {count} frames "
                         f"(0 to {count - 1})")
    return index


def denoise_burst(inputs: str | os.PathLike | Iterable[str | os.PathLike], output: str | os.PathLike | None = None,
                  *, reference: int | str = "sharpest", sigma: float | str | None = None,
                  strength: float | None = None,
                  frames: int | None = None, method: str = "network", model: str | torch.nn.Module | None = None,
                  device: str | torch.device | None = None, refine: bool = True, overwrite: bool = False,
                  config: "DenoiseConfig | None" = None) -> BurstResult:
    """Fuse a hand-held burst of noisy shots into one photo, and write it if ``output`` is given.

    ``inputs`` is a file, folder or glob, or a list of them (PNG, JPEG, TIFF, RAW with the
    ``raw`` extra). ``reference`` is ``"sharpest"`` or the index of the frame to align to;
    ``frames`` keeps only the first N files; ``method`` is one of ``network`` (default),
    ``windows``, ``merge``, ``mean`` (see :mod:`streamden.burst.fuse`). The output
    (``.png``/``.tif`` 16-bit, ``.jpg`` 8-bit) is written atomically, with the reference's
    EXIF and ICC profile where the formats allow.

    The network and the noise level come from ``config`` (a :class:`~streamden.config.DenoiseConfig`,
    by default the ``night_burst`` preset): ``model.name``, ``model.device``,
    ``model.precision`` (and ``model.tile``) and ``noise.sigma`` (0-255, Gaussian, or
    ``"auto"`` to fit a Poisson-Gaussian model to the reference). ``sigma``, ``device`` and
    ``model`` (a registry name, a ``.safetensors`` file or a network module) override those
    keys when given, and ``strength`` (0.25-4) scales the noise map (``noise.strength``), as the keyword shortcuts of :func:`~streamden.denoise_video` do.
    Everything that can be checked is checked before work starts. Raises InputError,
    OutputError, ConfigError or ModelError. The result's ``image`` is ``(3, H, W)`` float.

    >>> result = denoise_burst("shots/", "night.tiff", reference="sharpest")  # doctest: +SKIP
    >>> result.to_numpy().dtype  # doctest: +SKIP
    dtype('uint16')
    """
    from ..pipeline import parse_sigma

    module = model if isinstance(model, torch.nn.Module) else None
    config = _burst_config(config, sigma=sigma, strength=strength, device=None if device is None else str(device),
                           model=None if module is not None else model)
    if method not in FUSION_METHODS:
        raise ConfigError(f"method must be one of {', '.join(FUSION_METHODS)}, got {method!r}")
    paths = list_burst(inputs)
    if frames is not None:
        if int(frames) < 2:
            raise ConfigError(f"frames must be at least 2, got {frames}")
        paths = paths[:int(frames)]
    if len(paths) < 2:
        raise InputError(f"a burst needs at least 2 frames, got {len(paths)} ({', '.join(map(str, paths))})")
    ref = _parse_reference(reference, len(paths))
    level = parse_sigma(config.noise.sigma)
    noise = None if level is None else NoiseModel.gaussian(level)
    if output is not None:
        check_output_format(output)
        check_output_path(output, overwrite=overwrite, inputs=tuple(paths))
    engine = None
    if method in ("network", "windows"):   # the model loads (or fails) before the shots are read
        from ..engine import Engine

        engine = Engine(config, model=module)
    burst = torch.from_numpy(read_burst(paths)).permute(0, 3, 1, 2)
    result = fuse_burst(burst, reference=ref, noise=noise, method=method, engine=engine, refine=refine)
    if output is not None:
        image = result.image.permute(1, 2, 0).cpu().numpy().astype(np.float32)
        result.metadata_copied = write_photo(output, image, read_metadata(paths[result.reference]))
        result.path = str(Path(output))
    return result


def _burst_config(config: "DenoiseConfig | None", **shortcuts: object) -> "DenoiseConfig":
    """``config`` (default: the night_burst preset) with the keyword shortcuts that are not None applied."""
    from ..config import apply_overrides, make_config, shortcut_overrides

    if config is None:
        return make_config(BURST_PRESET, door="burst", **shortcuts)
    return apply_overrides(config, shortcut_overrides(shortcuts))
