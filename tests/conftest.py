"""Shared fixtures: a set of small random-init weights (real file, real loading path)."""
from pathlib import Path

import pytest

from streamden.models.weights import save_weights
from tests.nets import random_fastdvdnet


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A .safetensors file of a randomly initialised FastDVDnet (tests never need trained weights)."""
    model = random_fastdvdnet(seed=0)
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    save_weights(model, path, {"architecture": "fastdvdnet", "training_data": "none (random init, tests)"})
    return path
