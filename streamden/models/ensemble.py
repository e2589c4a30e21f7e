"""Geometric self-ensemble: the network on flipped and rotated copies of its input, averaged.

A convolutional denoiser is not exactly equivariant to flips and 90-degree rotations, so
its errors on the eight transformed copies of a window are partly independent: their mean
is a better estimate than any one of them. The cost is one network pass per transform (a
whole file job on a CPU: 1.6x, 2.4x and 4.7x its time for 2, 4 and 8). On white noise the
four turns gain +0.56 / +0.38 dB at sigma 10 / 30, on the realistic gate +0.19 to +0.27 dB
(README "More quality for more time"; ``benchmarks/ensemble/``).

Both stages average: stage 1's outputs (what the streaming engine caches and reuses for
three windows) are themselves ensembles, so stage 2 sees the better estimates. Alignment,
the noise estimate and the streaming schedule are untouched: the transforms act on the
already aligned window, which a flip or a rotation keeps aligned.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .wrapper import Stage, StageWrapper

#: The dihedral transforms in the order a smaller ensemble takes them: (quarter turns,
#: mirrored). Two: a quarter turn; four: the four turns; eight: the four turns, mirrored too.
#: Turns first because they buy most: on the validation clips (Gaussian sigma 10 / 30, 6
#: frames, 384 px, ``streamden eval --ensemble N``, model v3) a quarter turn gained
#: +0.43 / +0.30 dB where a mirror gained +0.16 / +0.13, the four turns +0.56 / +0.38 where
#: the two mirrors and the half turn gained +0.29 / +0.22, and all eight +0.58 / +0.39.
TRANSFORMS: tuple[tuple[int, bool], ...] = ((0, False), (1, False), (2, False), (3, False),
                                            (0, True), (1, True), (2, True), (3, True))
ENSEMBLE_SIZES = (1, 2, 4, 8)


def check_ensemble(size: int) -> int:
    """``size`` if it is a valid ``model.ensemble`` (1, 2, 4 or 8); a ConfigError naming it otherwise.

    >>> check_ensemble(4)
    4
    >>> check_ensemble(3)
    Traceback (most recent call last):
    ...
    streamden.errors.ConfigError: model.ensemble must be one of 1, 2, 4, 8 (network passes per output), got 3
    """
    if isinstance(size, bool) or size not in ENSEMBLE_SIZES:
        raise ConfigError(f"model.ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))} "
                          f"(network passes per output), got {size!r}")
    return int(size)


def transform(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    """``x`` rotated by ``turns`` quarter turns over its last two axes, then mirrored left-right."""
    x = torch.rot90(x, turns, (-2, -1)) if turns else x
    return x.flip(-1) if mirrored else x


def untransform(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    """The inverse of :func:`transform`.

    >>> x = torch.rand(2, 3, 4, 6)
    >>> all(untransform(transform(x, t, m), t, m).equal(x) for t, m in TRANSFORMS)
    True
    """
    x = x.flip(-1) if mirrored else x
    return torch.rot90(x, -turns, (-2, -1)) if turns else x


class SelfEnsemble(StageWrapper):
    """A FastDVDnet (anything with ``stage1`` and ``stage2``) whose stages each return the mean
    over the first ``size`` of :data:`TRANSFORMS` of the inner stage on the transformed input,
    transformed back.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> net = SelfEnsemble(FastDVDnet(), 4)
    >>> net.stage1(torch.rand(1, 3, 3, 8, 12), torch.full((1, 1, 8, 12), 0.1)).shape
    torch.Size([1, 3, 8, 12])
    """

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__(model)
        self.size = check_ensemble(size)

    def _call(self, stage: Stage, x: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        total = None
        for turns, mirrored in TRANSFORMS[:self.size]:
            out = untransform(stage(transform(x, turns, mirrored), transform(noise_map, turns, mirrored)),
                              turns, mirrored)
            total = out if total is None else total + out
        return total / self.size


def with_ensemble(model, size: int):
    """``model`` wrapped in :class:`SelfEnsemble` when ``size`` > 1; ``model`` itself otherwise.

    >>> from streamden.models.fastdvdnet import FastDVDnet
    >>> type(with_ensemble(FastDVDnet(), 1)).__name__, type(with_ensemble(FastDVDnet(), 8)).__name__
    ('FastDVDnet', 'SelfEnsemble')
    """
    return SelfEnsemble(model, size) if check_ensemble(size) > 1 else model
