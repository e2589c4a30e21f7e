"""Burst photos run in tiles through models/tiling.py (issue 18): exact, not a 32-pixel overlap
that the network's 37-pixel receptive field sees past."""
import torch

from streamden.burst.fuse import denoise_single
from streamden.config import make_config
from streamden.engine import Engine
from tests.nets import random_fastdvdnet


def test_tiled_burst_pass_equals_the_whole_photo_at_700x500():
    net = random_fastdvdnet(seed=3)
    image = torch.rand(3, 500, 700, generator=torch.Generator().manual_seed(0))
    std = 0.02 + 0.1 * torch.rand(1, 500, 700, generator=torch.Generator().manual_seed(1))   # per-pixel map
    whole = Engine(make_config("night_burst", None, ["model.tile=0"], door="burst", device="cpu", precision="fp32"),
                   model=net)
    tiled = Engine(make_config("night_burst", door="burst", device="cpu", precision="fp32"), model=net)
    assert tiled.tiles_used == 512 and whole.tiles_used == 0
    diff = (denoise_single(tiled, image, std) - denoise_single(whole, image, std)).abs().max()
    assert float(diff) < 1e-4
