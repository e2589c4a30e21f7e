"""The base of networks that wrap a two-stage network and change how each stage call runs
(tiles: :class:`~streamden.models.tiling.TiledModel`; a self-ensemble:
:class:`~streamden.models.ensemble.SelfEnsemble`)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .fastdvdnet import two_stage_forward

Stage = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StageWrapper(nn.Module):
    """``inner`` (anything with ``stage1`` and ``stage2``) with each stage call run through
    :meth:`_call`, which a subclass defines; ``forward`` and ``single_stage`` as the inner model's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    @property
    def single_stage(self) -> bool:
        """The inner model's ``single_stage`` (one block per output frame, see :mod:`.lite`)."""
        return bool(getattr(self.inner, "single_stage", False))

    def stage1(self, triplets: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """The inner model's stage 1 on triplets ``(N, 3, 3, H, W)``, run by :meth:`_call`."""
        return self._call(self.inner.stage1, triplets, noise_map)

    def stage2(self, stage1_outputs: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """The inner model's stage 2 on stage-1 outputs ``(N, 3, 3, H, W)``, run by :meth:`_call`."""
        return self._call(self.inner.stage2, stage1_outputs, noise_map)

    def forward(self, window: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """The whole network on a ``(N, 5, 3, H, W)`` window, as FastDVDnet.forward."""
        return two_stage_forward(self, window, noise_map)

    def _call(self, stage: Stage, x: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
