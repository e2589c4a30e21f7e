"""The known-flow set's ground truth is exact: warping the moving frame by it gives the reference."""
import numpy as np
import pytest
import torch

from streamden.align import warp_torch
from streamden.align.known_flow import (KINDS, add_noise, affine_pair, default_data_root, endpoint_error,
                                        known_flow_pairs, make_pair)

DATA = default_data_root()
needs_data = pytest.mark.skipif(not (DATA / "val" / "videos").is_dir(), reason=f"no footage at {DATA}")


def _texture(size: int = 200, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture (band-limited, so bilinear resampling is accurate)."""
    import cv2
    noise = np.random.default_rng(seed).random((size, size, 3))
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def _warp_error(pair, offset: float = 0.0) -> float:
    warped = warp_torch(pair.moving[None], pair.flow[None] + offset)[0]
    return float((warped - pair.ref).abs().mean(0, keepdim=True)[pair.valid].mean())


def test_integer_translation_copies_pixels():
    pair = affine_pair(_texture(), np.eye(2), (3.0, -2.0), 96, (50, 50))
    assert torch.allclose(pair.flow, torch.tensor([3.0, -2.0]).view(2, 1, 1).expand(2, 96, 96))
    assert torch.allclose(warp_torch(pair.moving[None], pair.flow[None])[0][:, pair.valid[0]],
                          pair.ref[:, pair.valid[0]], atol=1e-5)
    assert not pair.valid[0, :, -3:].any() and pair.valid[0, 2:, :-3].all()   # 3 px leave the frame


@pytest.mark.parametrize("kind", KINDS)
def test_synthetic_pairs_are_exact(kind):
    pair = make_pair(_texture(), kind, size=128, seed=3)
    assert pair.valid.float().mean() > 0.6
    exact, off = _warp_error(pair), _warp_error(pair, 0.5)
    assert exact < 0.15 * off, (exact, off)


def test_patch_marks_occlusion():
    pair = make_pair(_texture(), "patch", size=128, seed=5)
    background = pair.flow[:, 0, 0]
    moves_differently = (pair.flow - background.view(2, 1, 1)).abs().amax(0) > 1.0
    assert moves_differently.any() and (~pair.valid[0] & ~moves_differently).any()


@needs_data
def test_real_pairs_ground_truth_is_exact():
    pairs = known_flow_pairs(DATA, "val", count=8, size=128)
    assert [p.kind for p in pairs] == list(KINDS) * 2
    for pair in pairs:
        exact, off = _warp_error(pair), _warp_error(pair, 0.5)
        assert exact < 0.01 and exact < 0.5 * off, (pair.name, exact, off)


def test_noise_and_endpoint_error():
    pair = make_pair(_texture(), "translation", size=64)
    noisy = add_noise(pair, 30.0, seed=1)
    assert torch.equal(noisy.flow, pair.flow) and not torch.equal(noisy.ref, pair.ref)
    assert endpoint_error(pair.flow, pair.flow, pair.valid) == 0.0
    off = pair.flow + torch.tensor([0.6, 0.8]).view(2, 1, 1)
    assert endpoint_error(off, pair.flow, pair.valid) == pytest.approx(1.0)
