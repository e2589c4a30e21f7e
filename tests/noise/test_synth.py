import pytest
import torch

from streamden.noise.synth import add_gaussian, add_jpeg, add_poisson_gaussian, noisy_8bit, synthesize
from streamden.train.config import NoiseConfig


def test_gaussian_std_and_noise_map():
    clean = torch.full((3, 5, 3, 64, 64), 0.5)
    sigma = torch.tensor([5.0, 25.0, 50.0])
    noisy, nmap = add_gaussian(clean, sigma, torch.Generator().manual_seed(0))
    std = (noisy - clean).flatten(1).std(1) * 255
    assert torch.allclose(std, sigma, rtol=0.03)
    assert nmap.shape == (3, 1, 64, 64)
    assert torch.allclose(nmap[:, 0, 0, 0], sigma / 255)
    assert torch.all(nmap == nmap[:, :, :1, :1])


def test_gaussian_clip_and_seed():
    clean = torch.rand(2, 5, 3, 16, 16)
    a, _ = add_gaussian(clean, 40.0, torch.Generator().manual_seed(1), clip=True)
    b, _ = add_gaussian(clean, 40.0, torch.Generator().manual_seed(1), clip=True)
    assert torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_poisson_gaussian_variance_grows_with_signal():
    levels = torch.tensor([0.1, 0.5, 0.9]).reshape(1, 1, 3, 1, 1).expand(1, 5, 3, 64, 64)
    clean = levels.clone()
    gain, sigma = 0.01, 5.0
    noisy, nmap = add_poisson_gaussian(clean, gain, sigma, torch.Generator().manual_seed(0))
    var = (noisy - clean)[0].transpose(0, 1).flatten(1).var(1)   # per channel = per level
    expected = gain * torch.tensor([0.1, 0.5, 0.9]) + (sigma / 255) ** 2
    assert torch.all(var[1:] > var[:-1])
    assert torch.allclose(var, expected, rtol=0.05)
    assert torch.allclose(nmap, expected.sqrt().mean().expand_as(nmap), rtol=1e-4)


def test_jpeg_artefacts_grow_as_quality_drops():
    from tests.train import textured

    clean = torch.from_numpy(textured(32, 32)).expand(2, 5, 3, 32, 32).contiguous()
    noisy, nmap = add_jpeg(clean, torch.tensor([10, 95]))
    assert noisy.shape == clean.shape
    assert float(nmap[0, 0, 0, 0]) > float(nmap[1, 0, 0, 0]) > 0


@pytest.mark.parametrize("model", ["gaussian", "poisson_gaussian", "jpeg"])
def test_synthesize_models(model):
    clean = torch.rand(2, 5, 3, 16, 16)
    noisy, nmap = synthesize(clean, NoiseConfig(model=model), torch.Generator().manual_seed(0))
    assert noisy.shape == clean.shape and nmap.shape == (2, 1, 16, 16)
    assert float(nmap.min()) > 0


def test_synthesize_gaussian_sigma_range():
    clean = torch.zeros(256, 1, 3, 1, 1)
    _, nmap = synthesize(clean, NoiseConfig(sigma_min=5, sigma_max=55), torch.Generator().manual_seed(0))
    s = nmap.flatten() * 255
    assert float(s.min()) >= 5 and float(s.max()) <= 55 and float(s.max() - s.min()) > 40


def test_unknown_noise_model():
    with pytest.raises(ValueError, match="unknown noise model"):
        synthesize(torch.rand(1, 5, 3, 4, 4), NoiseConfig(model="salt"))


def test_noisy_8bit_is_quantised_clipped_and_seeded():
    clean = torch.rand(2, 3, 32, 32)
    a = noisy_8bit(clean, 30.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, noisy_8bit(clean, 30.0, torch.Generator().manual_seed(5)))
    assert torch.equal((a * 255).round(), a * 255) and float(a.min()) >= 0 and float(a.max()) <= 1


@pytest.mark.parametrize("model", ["camera", "compressed", "camera+compressed", "mix"])
def test_realistic_models_map_the_effective_level(model):
    from tests.train import textured

    clean = torch.from_numpy(textured(32, 32)).expand(3, 5, 3, 32, 32).contiguous()
    cfg = NoiseConfig(model=model, sigma_min=15, sigma_max=15)
    noisy, nmap = synthesize(clean, cfg, torch.Generator().manual_seed(0))
    again, _ = synthesize(clean, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)                                   # deterministic in the seed
    assert noisy.shape == clean.shape and nmap.shape == (3, 1, 32, 32)
    level = (noisy[:, 2] - clean[:, 2]).flatten(1).std(1)
    assert torch.allclose(nmap[:, 0, 0, 0], level, rtol=1e-3)          # the centre frame's effective level
    assert float(level.min()) > 1 / 255


def test_unknown_mix_kind():
    with pytest.raises(ValueError, match="noise.mix"):
        synthesize(torch.rand(1, 5, 3, 8, 8), NoiseConfig(model="mix", mix=["speckle"]))
