"""Issue 7, case 5: tiles with overlap. ``--tile`` on the CPU, and the automatic fallback when
CUDA runs out of memory (simulated: no GPU here, so a stage that raises
torch.OutOfMemoryError above a frame size stands in for the card). Tolerance: tiled and
whole-frame outputs agree within 1e-4 on [0, 1] (float summation order only), i.e. the
8-bit outputs differ by at most one level."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from streamden.api import denoise_video
from streamden.models.streaming import StreamingDenoiser
from streamden.models.tiling import RECEPTIVE_RADIUS, TiledModel, tiled_call
from tests.media import make_video, read_frames
from tests.nets import random_fastdvdnet

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def net():
    return random_fastdvdnet(seed=3)


def test_receptive_field_is_what_the_overlap_assumes(net):
    x = torch.rand(1, 3, 3, 128, 128, requires_grad=True)
    out = net.stage1(x, torch.full((1, 1, 128, 128), 0.1))
    out[0, :, 64, 64].sum().backward()
    ys, xs = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)), as_tuple=True)
    assert max(64 - ys.min().item(), ys.max().item() - 64, 64 - xs.min().item(), xs.max().item() - 64) \
        == RECEPTIVE_RADIUS


@pytest.mark.parametrize("tile", [32, 48, 100])
def test_tiled_stage_equals_whole_frame(net, tile):
    x, nm = torch.rand(1, 3, 3, 96, 136), torch.full((1, 1, 96, 136), 0.08)
    with torch.no_grad():
        whole = net.stage2(x, nm)
        tiled = tiled_call(net.stage2, x, nm, tile=tile, overlap=40)
    assert (tiled - whole).abs().max().item() < TOLERANCE


def test_too_small_an_overlap_shows_seams(net):
    x, nm = torch.rand(1, 3, 3, 96, 96), torch.full((1, 1, 96, 96), 0.08)
    with torch.no_grad():
        diff = (tiled_call(net.stage1, x, nm, tile=48, overlap=8) - net.stage1(x, nm)).abs().max().item()
    assert diff > 5 * TOLERANCE  # why the default overlap covers the receptive field


class OutOfMemoryAbove(torch.nn.Module):
    """A FastDVDnet whose stages raise torch.OutOfMemoryError on inputs above ``pixels``."""

    def __init__(self, model, pixels: int) -> None:
        super().__init__()
        self.model, self.pixels, self.refused = model, pixels, 0

    def _guard(self, x):
        if x.shape[-1] * x.shape[-2] > self.pixels:
            self.refused += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    def stage1(self, x, nm):
        self._guard(x)
        return self.model.stage1(x, nm)

    def stage2(self, x, nm):
        self._guard(x)
        return self.model.stage2(x, nm)


def test_out_of_memory_falls_back_to_tiles(net, caplog):
    frames = [torch.rand(3, 120, 160) for _ in range(4)]
    plain = StreamingDenoiser(net)
    want = [o for f in frames for _, o in plain.push(f, 25.0)] + [o for _, o in plain.finish()]
    engine = StreamingDenoiser(TiledModel(OutOfMemoryAbove(net, pixels=130 * 130)))
    tiled = engine.runner.model   # the engine runs its own copy
    got = [o for f in frames for _, o in engine.push(f, 25.0)] + [o for _, o in engine.finish()]
    assert tiled.inner.refused >= 1 and tiled.tiles_used == 80  # half of 160, once
    assert "out of GPU memory" in caplog.text
    assert max((a - b).abs().max().item() for a, b in zip(got, want)) < TOLERANCE


def test_out_of_memory_on_tiny_tiles_is_a_model_error(net):
    from streamden.errors import ModelError

    tiled = TiledModel(OutOfMemoryAbove(net, pixels=10))
    with pytest.raises(ModelError, match="out of GPU memory"):
        tiled.stage1(torch.rand(1, 3, 3, 120, 160), torch.full((1, 1, 120, 160), 0.1))


def test_cli_tile_equals_untiled(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mkv", frames=4, size=(136, 100), codec="ffv1")
    kw = dict(model=str(random_weights), sigma=20, codec="ffv1", handle_signals=False)
    denoise_video(src, tmp_path / "whole.mkv", **kw)
    denoise_video(src, tmp_path / "tiled.mkv", tile=64, **kw)
    for a, b in zip(read_frames(tmp_path / "whole.mkv"), read_frames(tmp_path / "tiled.mkv")):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
