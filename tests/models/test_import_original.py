"""Importing original FastDVDnet checkpoints (module.-prefixed state dicts, with or without conv biases)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamden.errors import ModelError
from streamden.models.fastdvdnet import FastDVDnet
from streamden.models.import_original import import_fastdvdnet_checkpoint
from streamden.models.registry import load_model
from streamden.models.weights import read_metadata
from tests.nets import random_fastdvdnet


def _original_model(bias: bool, seed: int) -> FastDVDnet:
    """A FastDVDnet with random weights and random BatchNorm statistics, in eval mode."""
    model = random_fastdvdnet(seed, bias=bias)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.num_batches_tracked.fill_(1234)
    return model


def _save_original(model: FastDVDnet, path: Path, wrapped: bool = False) -> dict[str, torch.Tensor]:
    """Save as the original code did: a DataParallel state dict (keys prefixed with ``module.``)."""
    state = {"module." + k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"epoch": 80, "state_dict": state} if wrapped else state, path)
    return state


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    window = torch.rand(1, 5, 3, 16, 20, generator=g)
    noise_map = torch.full((1, 1, 16, 20), 25 / 255)
    with torch.no_grad():
        return model(window, noise_map)


@pytest.mark.parametrize("bias", [False, True])
def test_import_then_load_gives_identical_outputs(tmp_path: Path, bias: bool) -> None:
    source = _original_model(bias, seed=3)
    src = tmp_path / "model.pth"
    _save_original(source, src, wrapped=bias)   # the bias=True case also covers the 'state_dict' wrapper
    dst = tmp_path / "imported.safetensors"

    meta = import_fastdvdnet_checkpoint(src, dst, metadata={"training_data": "DAVIS", "noise_range": [5, 55]})
    assert meta["bias"] == ("true" if bias else "false")
    written = read_metadata(dst)
    assert written == meta
    assert written["architecture"] == "fastdvdnet"
    assert written["source"] == "model.pth"
    assert written["imported_from"] == "original FastDVDnet checkpoint"
    assert written["training_data"] == "DAVIS" and written["noise_range"] == "[5, 55]"

    loaded = load_model(str(dst))
    assert loaded.bias is bias
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key   # BatchNorm statistics included
    # same weights; loaded models run channels-last, so float rounding may differ
    torch.testing.assert_close(_outputs(loaded), _outputs(source), rtol=0, atol=1e-5)


def test_checkpoint_without_num_batches_tracked_is_accepted(tmp_path: Path) -> None:
    source = _original_model(False, seed=4)
    state = {"module." + k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    import_fastdvdnet_checkpoint(tmp_path / "old.pth", tmp_path / "old.safetensors")
    torch.testing.assert_close(_outputs(load_model(str(tmp_path / "old.safetensors"))), _outputs(source), rtol=0, atol=1e-5)


def test_wrong_keys_fail_naming_the_file_and_the_keys(tmp_path: Path) -> None:
    state = _save_original(_original_model(False, seed=5), tmp_path / "unused.pth")
    state["module.temp1.inc.convblock.0.kernel"] = state.pop("module.temp1.inc.convblock.0.weight")
    bad = tmp_path / "renamed.pth"
    torch.save(state, bad)
    with pytest.raises(ModelError) as info:
        import_fastdvdnet_checkpoint(bad, tmp_path / "out.safetensors")
    message = str(info.value)
    assert "renamed.pth" in message
    assert "missing keys: temp1.inc.convblock.0.weight" in message
    assert "unexpected keys: temp1.inc.convblock.0.kernel" in message
    assert not (tmp_path / "out.safetensors").exists()


def test_wrong_shapes_and_non_checkpoints_fail_naming_the_file(tmp_path: Path) -> None:
    state = _save_original(_original_model(False, seed=6), tmp_path / "unused.pth")
    state["module.temp2.outc.convblock.3.weight"] = torch.zeros(4, 32, 3, 3)
    torch.save(state, tmp_path / "shapes.pth")
    with pytest.raises(ModelError, match="shapes.pth"):
        import_fastdvdnet_checkpoint(tmp_path / "shapes.pth", tmp_path / "out.safetensors")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ModelError, match="text.pth"):
        import_fastdvdnet_checkpoint(tmp_path / "text.pth", tmp_path / "out.safetensors")
    with pytest.raises(ModelError, match="missing.pth"):
        import_fastdvdnet_checkpoint(tmp_path / "missing.pth", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
