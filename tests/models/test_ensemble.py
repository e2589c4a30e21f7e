"""The geometric self-ensemble (``model.ensemble``): what it averages, where it runs, what it buys."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from streamden.config import make_config
from streamden.engine import Engine
from streamden.errors import ConfigError
from streamden.metrics import psnr
from streamden.models.ensemble import (
    TRANSFORMS,
    SelfEnsemble,
    transform,
    untransform,
    with_ensemble,
)
from streamden.models.fastdvdnet import two_stage_forward
from streamden.noise.synth import noisy_8bit
from streamden.train.data import read_clip
from tests.nets import random_fastdvdnet

VAL_CLIP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "val" / "videos" / "da_demo1"


class PointwiseNet(nn.Module):
    """A network with no spatial structure (exactly flip- and rotation-equivariant): each
    stage returns its centre frame shrunk by the noise map."""

    def stage1(self, triplets: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        return triplets[:, 1] * (1 - noise_map) + triplets[:, 0] * noise_map

    def stage2(self, stage1_outputs: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        return self.stage1(stage1_outputs, noise_map)


@pytest.mark.parametrize("turns, mirrored", TRANSFORMS)
def test_each_transform_is_undone_on_non_square_frames(turns, mirrored):
    x = torch.rand(2, 3, 3, 6, 10)
    moved = transform(x, turns, mirrored)
    assert moved.shape[-2:] == ((10, 6) if turns % 2 else (6, 10))
    assert untransform(moved, turns, mirrored).equal(x)


@pytest.mark.parametrize("size", [2, 4, 8])
def test_each_stage_is_the_mean_of_the_transformed_passes(size):
    net = random_fastdvdnet(seed=5)
    x, noise = torch.rand(2, 3, 3, 12, 16), torch.rand(2, 1, 12, 16) * 0.2
    with torch.no_grad():
        expected = torch.stack([untransform(net.stage1(transform(x, t, m), transform(noise, t, m)), t, m)
                                for t, m in TRANSFORMS[:size]]).mean(0)
        got = SelfEnsemble(net, size).stage1(x, noise)
        plain = net.stage1(x, noise)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got - plain).abs().max() > 1e-3     # a convolutional network is not equivariant: it does average


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_an_equivariant_network_is_unchanged(size):
    net = PointwiseNet()
    window, noise = torch.rand(1, 5, 3, 8, 12), torch.rand(1, 1, 8, 12) * 0.2
    torch.testing.assert_close(two_stage_forward(with_ensemble(net, size), window, noise),
                               two_stage_forward(net, window, noise))


def test_the_engine_runs_the_ensemble_in_each_tile():
    frames = torch.rand(5, 3, 40, 52, generator=torch.Generator().manual_seed(1))
    whole = Engine(make_config(None, device="cpu", ensemble=4))
    tiled = Engine(make_config(None, device="cpu", ensemble=4, tile=24))
    assert type(whole.runner.model).__name__ == "SelfEnsemble" and tiled.tiles_used == 24
    torch.testing.assert_close(tiled.window(frames, 15.0), whole.window(frames, 15.0), rtol=0, atol=2e-2)
    plain = Engine(make_config(None, device="cpu"))
    assert whole.multiply_adds_per_frame(2) == pytest.approx(4 * plain.multiply_adds_per_frame(2))


@pytest.mark.parametrize("size", [0, 3, 16])
def test_a_size_out_of_range_is_a_config_error_naming_it(size):
    with pytest.raises(ConfigError, match=f"model.ensemble must be one of 1, 2, 4, 8 .*got {size!r}"):
        make_config(None, ensemble=size)


def test_the_shipped_network_gains_from_eight_passes():
    """On a held-out natural clip at sigma 15 (one window, 96 px, no alignment), eight passes beat
    one: measured +0.37 dB (two: +0.27, four: +0.36); the test asks for half of that."""
    if not VAL_CLIP.is_dir():
        pytest.skip(f"shared data not found: {VAL_CLIP} (the corpus lives in ../shared/data)")
    clean = read_clip(str(VAL_CLIP), max_frames=5)[..., 100:196, 100:196].float() / 255
    noisy = noisy_8bit(clean, 15.0, torch.Generator().manual_seed(0))
    one = Engine(make_config(None, device="cpu", precision="fp32")).window(noisy, 15.0)
    eight = Engine(make_config(None, device="cpu", precision="fp32", ensemble=8)).window(noisy, 15.0)
    gain = float(psnr(eight, clean[2]) - psnr(one, clean[2]))
    assert gain > 0.18, f"eight passes: {gain:+.3f} dB over one"
