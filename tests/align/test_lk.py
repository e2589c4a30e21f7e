"""The pyramidal Lucas-Kanade flow (torch reference): exact on trivial motion, as good as DIS medium."""
import numpy as np
import pytest
import torch

from streamden.align import make_flow_estimator, rgb_to_luma_torch
from streamden.align.flow import DISFlow
from streamden.align.known_flow import add_noise, affine_pair, default_data_root, endpoint_error, known_flow_pairs
from streamden.align.lk import LKFlow, lk_flow, lk_flow_torch

DATA = default_data_root()


def _texture(size: int = 200, seed: int = 0) -> np.ndarray:
    import cv2
    return cv2.GaussianBlur(np.random.default_rng(seed).random((size, size, 3)), (0, 0), 1.5)


def _luma(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_luma_torch(image[None])


def test_identical_frames_give_zero_flow():
    luma = _luma(torch.from_numpy(_texture(90)).permute(2, 0, 1).float())[..., :70, :90]
    assert lk_flow_torch(luma, luma).abs().max() < 1e-3


def test_recovers_subpixel_translation():
    pair = affine_pair(_texture(), np.eye(2), (2.3, -1.6), 112, (40, 40))
    flow = lk_flow_torch(_luma(pair.ref), _luma(pair.moving))[0]
    inner = pair.valid.clone()
    inner[:, :8], inner[:, -8:], inner[:, :, :8], inner[:, :, -8:] = False, False, False, False
    # What is left is the bias of bilinear resampling in the warp (~0.04 px; DIS medium: 0.09).
    assert endpoint_error(flow, pair.flow, inner) < 0.06


def test_estimator_interface():
    est = make_flow_estimator("lk", "cpu", prefilter=1.5)
    assert isinstance(est, LKFlow) and est.params.prefilter == 1.5
    assert est(torch.rand(2, 1, 33, 47), torch.rand(2, 1, 33, 47)).shape == (2, 2, 33, 47)
    with pytest.raises(ValueError, match="luma"):
        lk_flow(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


@pytest.mark.skipif(not (DATA / "val" / "videos").is_dir(), reason=f"no footage at {DATA}")
@pytest.mark.parametrize("sigma", [0.0, 30.0])
def test_epe_within_1_2x_of_dis_medium(sigma):
    pairs = known_flow_pairs(DATA, "val", count=8, size=224, seed=2)
    if sigma:
        pairs = [add_noise(p, sigma, seed=i) for i, p in enumerate(pairs)]
    lk, dis = LKFlow(prefilter=1.0), DISFlow("medium", prefilter=1.0)
    lk_epe, dis_epe = [], []
    for pair in pairs:
        ref, moving = _luma(pair.ref), _luma(pair.moving)
        lk_epe.append(endpoint_error(lk(ref, moving)[0], pair.flow, pair.valid))
        dis_epe.append(endpoint_error(dis(ref, moving)[0], pair.flow, pair.valid))
    assert np.mean(lk_epe) <= 1.2 * np.mean(dis_epe), (lk_epe, dis_epe)
