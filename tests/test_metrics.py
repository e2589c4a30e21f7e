import math

import torch

from streamden.metrics import psnr, psnr_per_image, ssim, ssim_per_image, temporal_consistency


def test_identical_images():
    x = torch.rand(2, 3, 32, 32)
    assert math.isinf(float(psnr(x, x)))
    assert abs(float(ssim(x, x)) - 1.0) < 1e-6


def test_known_mse_gives_known_psnr():
    a = torch.zeros(3, 16, 16)
    assert abs(float(psnr(a, a + 0.1)) - 20.0) < 1e-4             # MSE 0.01
    assert abs(float(psnr(a, a + 0.01)) - 40.0) < 1e-4            # MSE 1e-4
    assert abs(float(psnr(a * 255, a * 255 + 2.55, data_range=255.0)) - 40.0) < 1e-4
    per = psnr_per_image(torch.zeros(2, 3, 4, 4), torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)]))
    assert torch.allclose(per, torch.tensor([20.0, 40.0]))


def test_ssim_of_noisy_image_is_below_one():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 48, 48, generator=gen)
    weak = (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    strong = (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    s_weak, s_strong = float(ssim(weak, x)), float(ssim(strong, x))
    assert 0 < s_strong < s_weak < 1
    assert abs(float(ssim(x, weak)) - s_weak) < 1e-6               # symmetric
    assert ssim_per_image(torch.cat([x, x]), torch.cat([x, weak])).shape == (2,)


def test_ssim_matches_kornia_on_the_interior():
    import kornia

    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 64, 64, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    ref = kornia.metrics.ssim(x, y, 11)[..., 5:-5, 5:-5].mean()
    assert abs(float(ssim(x, y)) - float(ref)) < 1e-3


def test_temporal_consistency():
    x = torch.rand(4, 3, 8, 8)
    assert math.isinf(float(temporal_consistency(x, x)))
    assert float(temporal_consistency(x + 0.01 * torch.randn_like(x), x)) < 60
