"""Shared fixtures: a set of small random-init weights (real file, real loading path)."""
from pathlib import Path

import pytest
import torch

from streamden.models.registry import build_model
from streamden.models.weights import save_weights


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial statistics so equivalence tests are real tests."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A .safetensors file of a randomly initialised FastDVDnet (tests never need trained weights)."""
    torch.manual_seed(0)
    model = randomise_batchnorm(build_model("fastdvdnet")).eval()
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    save_weights(model, path, {"architecture": "fastdvdnet", "training_data": "none (random init, tests)"})
    return path
