"""The torch references of the alignment core: warp, consistency mask, luma."""
import math

import cv2
import numpy as np
import pytest
import torch

from streamden.align import consistency_mask, rgb_to_luma, warp
from streamden.align.warp import warp_torch


def _bilinear_by_hand(image: torch.Tensor, flow: torch.Tensor, y: int, x: int) -> torch.Tensor:
    _, _, h, w = image.shape
    px = min(max(x + float(flow[0, 0, y, x]), 0.0), w - 1.0)
    py = min(max(y + float(flow[0, 1, y, x]), 0.0), h - 1.0)
    x0, y0 = int(math.floor(px)), int(math.floor(py))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = px - x0, py - y0
    top = (1 - ax) * image[0, :, y0, x0] + ax * image[0, :, y0, x1]
    bottom = (1 - ax) * image[0, :, y1, x0] + ax * image[0, :, y1, x1]
    return (1 - ay) * top + ay * bottom


def test_warp_is_bilinear_with_replicated_borders():
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 11, 17, generator=gen)
    flow = torch.randn(1, 2, 11, 17, generator=gen) * 4   # many samples fall outside the frame
    out = warp_torch(image, flow)
    for y in range(11):
        for x in range(17):
            torch.testing.assert_close(out[0, :, y, x], _bilinear_by_hand(image, flow, y, x), atol=2e-6, rtol=0)


def test_warp_with_zero_flow_is_identity_and_integer_flow_shifts():
    image = torch.rand(2, 3, 9, 13)
    torch.testing.assert_close(warp(image, torch.zeros(2, 2, 9, 13)), image)
    flow = torch.zeros(2, 2, 9, 13)
    flow[:, 1] = 2.0                                       # look two rows down
    torch.testing.assert_close(warp(image, flow)[..., :-2, :], image[..., 2:, :])


def test_warp_matches_opencv_remap_inside_the_frame():
    rng = np.random.default_rng(0)
    image = rng.random((40, 50), dtype=np.float32)
    flow = (rng.random((2, 40, 50), dtype=np.float32) - 0.5) * 6
    ys, xs = np.mgrid[0:40, 0:50].astype(np.float32)
    expected = cv2.remap(image, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = warp(torch.from_numpy(image)[None, None], torch.from_numpy(flow)[None])[0, 0].numpy()
    # OpenCV quantises sample positions to 1/32 pixel; compare where the sample lies inside.
    inside = (xs + flow[0] >= 0) & (xs + flow[0] <= 49) & (ys + flow[1] >= 0) & (ys + flow[1] <= 39)
    assert np.abs(out - expected)[inside].max() < 0.03


def test_warp_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="does not match"):
        warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match="expected image"):
        warp(torch.rand(3, 8, 8), torch.zeros(2, 8, 8))


def test_consistency_mask_accepts_inverse_flows_and_rejects_disagreement():
    fw = torch.zeros(1, 2, 20, 20)
    fw[:, 0] = 3.0
    bw = -fw
    mask = consistency_mask(fw, bw)
    assert mask.shape == (1, 1, 20, 20)
    assert mask[..., :, :17].min() == 1.0           # consistent and inside
    assert mask[..., :, 17:].max() == 0.0           # points past the right edge
    wrong = bw.clone()
    wrong[..., 5:10, 5:10] = 4.0                    # the backward flow disagrees in a block
    mask = consistency_mask(fw, wrong)
    assert mask[0, 0, 5:10, 2:7].max() == 0.0       # reference pixels mapping into the block
    assert mask[0, 0, 15:, :10].min() == 1.0


def test_luma_uses_bt601_weights_like_opencv():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
    expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    luma = rgb_to_luma(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())[0, 0].numpy()
    assert np.abs(luma - expected).max() <= 0.51    # OpenCV rounds to integers
