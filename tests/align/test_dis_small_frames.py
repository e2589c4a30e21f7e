"""OpenCV's DIS refuses frames with a short side below about 12 px and crashes the process on
some thin frames (16x200 with the fast preset): DISFlow pads them (the default model aligns,
so every frame size a user can give reaches it)."""
import pytest
import torch

from streamden.align.flow import DIS_PRESETS, DISFlow


@pytest.mark.parametrize("preset", sorted(DIS_PRESETS))
@pytest.mark.parametrize("size", [(1, 1), (8, 8), (11, 11), (12, 4), (16, 200), (12, 100), (200, 16), (31, 500)])
def test_small_and_thin_frames_give_a_flow_of_their_size(preset, size):
    ref = torch.rand(1, 1, *size)
    shifted = torch.roll(ref, 1, dims=-1)
    flow = DISFlow(preset)(ref, shifted)
    assert flow.shape == (1, 2, *size) and torch.isfinite(flow).all()
