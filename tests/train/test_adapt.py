"""Self-supervised adaptation (issue 20): the loss falls, resume equals a straight run, the
weights round-trip and are used by --model, frame-to-frame correlated noise is reported, and
bad input is one clear error. Tiny clips, fp32, a few steps each."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamden.api import Denoiser, denoise_frames
from streamden.cli import main
from streamden.config import make_config
from streamden.engine import Engine
from streamden.errors import ConfigError, InputError
from streamden.models.registry import load_model, model_alignment
from streamden.models.weights import load_weights, read_metadata
from streamden.train.adapt import adapt_files, adapt_model, checkpoint_path, clip_from_array
from tests.media import make_image_sequence
from tests.train import textured


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scrolling(frames: int = 10, size: int = 64, seed: int = 1) -> torch.Tensor:
    """Clean frames (T, 3, size, size) of a texture scrolling 1 px per frame, in [0, 1]."""
    base = torch.from_numpy(textured(size, size + frames, seed=seed))
    return torch.stack([base[:, :, t:t + size] for t in range(frames)])


def blurred_noise(shape, sigma: float, seed: int) -> torch.Tensor:
    """Spatially correlated Gaussian noise (3x3 binomial blur, renormalised), 0-1 scale."""
    g = torch.Generator().manual_seed(seed)
    k = torch.tensor([1.0, 2.0, 1.0])
    kernel = (k[:, None] * k[None, :] / 16)[None, None]
    white = torch.randn(shape, generator=g).reshape(-1, 1, *shape[-2:])
    noise = F.conv2d(F.pad(white, (1, 1, 1, 1), mode="reflect"), kernel) / float(kernel.square().sum().sqrt())
    return noise.reshape(shape) * sigma / 255.0


def to_u8(frames: torch.Tensor) -> np.ndarray:
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def cfg(*overrides: str, door: str = "adapt"):
    return make_config(None, None, ["model.precision=fp32", "model.device=cpu", "adapt.patch=32", *overrides],
                       door=door)


@pytest.fixture(scope="module")
def noisy_clip() -> np.ndarray:
    clean = scrolling(10, 64)
    return to_u8(clean + blurred_noise(clean.shape, 25.0, seed=3))


def test_held_out_loss_falls_on_a_synthetic_clip(noisy_clip):
    config = cfg("adapt.steps=20", "adapt.eval_every=10", "adapt.lr=0.0003", "adapt.patience=10")
    result = adapt_model(load_model("fastdvdnet-aligned"), [clip_from_array(noisy_clip)], config,
                         model_align="flow")
    assert result.steps == 20 and result.stopped == "steps"
    assert result.best_loss < 0.97 * result.initial_loss and result.best_step > 0
    assert [h["step"] for h in result.history] == [0, 10, 20]
    assert not result.correlated and result.correlation is not None and abs(result.correlation) < 0.2


def test_resume_equals_one_straight_run_and_weights_round_trip(tmp_path, noisy_clip):
    src = make_image_sequence(tmp_path / "frames", frames=8, size=(48, 48))
    straight, split = tmp_path / "straight.safetensors", tmp_path / "split.safetensors"
    common = ["adapt.eval_every=2", "adapt.patience=50", "adapt.patch=24"]
    full = adapt_files([src], straight, cfg("adapt.steps=6", *common), handle_signals=False)
    adapt_files([src], split, cfg("adapt.steps=3", *common), handle_signals=False)
    assert checkpoint_path(split).is_file()
    resumed = adapt_files([src], split, cfg("adapt.steps=6", *common), resume=True, handle_signals=False)
    assert resumed.steps == full.steps == 6 and resumed.best_step == full.best_step
    a, _ = load_weights(straight)
    b, meta = load_weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the weights round-trip: what was returned is what was written, and --model uses it aligned
    assert all(torch.equal(v, b[k]) for k, v in resumed.model.state_dict().items())
    assert meta["adapted_from"] == "fastdvdnet-real" and str(src) in meta["adapted_on"]   # sigma auto: noise.auto_model
    assert meta["align"] == "flow" and model_alignment(str(split)) == "flow"
    engine = Engine(make_config(None, None, [f"model.name={split}", "model.device=cpu"], door="frames"))
    assert engine.aligns
    loaded = load_model(str(split)).state_dict()
    assert all(torch.equal(loaded[k], b[k]) for k in b)
    # another run's checkpoint is refused, not continued
    with pytest.raises(ConfigError, match="belongs to another adaptation run"):
        adapt_files([src], split, cfg("adapt.steps=8", "adapt.lr=0.001", *common), resume=True, handle_signals=False)


def test_correlated_noise_is_reported_and_adapt_keeps_the_unadapted_model():
    size, count = 96, 8
    wide = torch.from_numpy(textured(size, size + count, seed=1))
    g = torch.Generator().manual_seed(5)
    white = torch.randn((count, *wide.shape), generator=g) * 20 / 255
    filtered = white.clone()
    for t in range(1, count):   # a motion-compensated recursive filter: each frame keeps 70% of its predecessor's noise
        filtered[t] = 0.7 * filtered[t - 1] + 0.71 * white[t]
    frames = to_u8(torch.stack([(wide + filtered[t])[:, :, t:t + size] for t in range(count)]))
    den = Denoiser(sigma=20, device="cpu", precision="fp32",
                   overrides=["adapt.steps=2", "adapt.patch=32", "adapt.enabled=true", "adapt.seconds=600"])
    base = {k: v.clone() for k, v in den.engine.model.state_dict().items()}
    with pytest.raises(ConfigError, match="call Denoiser.adapt"):
        den.push(frames[0])
    result = den.adapt(frames)
    assert result.correlated and result.correlation > 0.25 and not result.applied
    assert any("correlated from frame to frame" in w for w in result.warnings())
    assert all(torch.equal(base[k], v) for k, v in den.engine.model.state_dict().items())


def test_denoise_frames_adapts_on_its_input(noisy_clip):
    out = denoise_frames(noisy_clip[:6], sigma=20, device="cpu", precision="fp32", adapt=True, adapt_seconds=600,
                         overrides=["adapt.steps=2", "adapt.patch=32"])
    assert out.shape == noisy_clip[:6].shape and out.dtype == np.uint8


def test_cli_adapt_then_denoise_with_it(tmp_path, capsys):
    src = make_image_sequence(tmp_path / "frames", frames=8, size=(48, 48))
    weights = tmp_path / "cam.safetensors"
    assert main(["adapt", str(src), "-o", str(weights), "--steps", "2", "--no-progress",
                 "--set", "adapt.patch=24", "--set", "model.precision=fp32", "--device", "cpu"]) == 0
    assert "held-out loss" in capsys.readouterr().err
    assert read_metadata(weights)["adapt_steps"] == "2"
    out = tmp_path / "out.mkv"
    assert main(["denoise", str(src), "-o", str(out), "--no-progress", "--model", str(weights), "--codec", "ffv1",
                 "--device", "cpu", "--adapt-seconds", "600", "--set", "adapt.steps=1",
                 "--set", "adapt.patch=24"]) == 0
    err = capsys.readouterr().err
    assert "adapted to" in err and out.is_file()


def test_bad_input_is_one_clear_error(tmp_path):
    one = tmp_path / "one"
    make_image_sequence(one, frames=1, size=(48, 48))
    with pytest.raises(InputError, match="1 consecutive frame; self-supervised adaptation needs at least 6"):
        adapt_files([one], tmp_path / "x.safetensors", cfg())
    with pytest.raises(InputError, match="no such file"):
        adapt_files([tmp_path / "missing.mp4"], tmp_path / "x.safetensors", cfg())
    with pytest.raises(ConfigError, match="steps must be a whole number of at least 1"):
        cfg("adapt.steps=0")
    assert not list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob(".*.adapt.pt"))


def test_ctrl_c_keeps_the_best_weights_so_far(tmp_path):
    src = make_image_sequence(tmp_path / "frames", frames=8, size=(48, 48))
    out = tmp_path / "cam.safetensors"

    def interrupt(progress) -> None:
        if progress.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    result = adapt_files([src], out, cfg("adapt.steps=50", "adapt.eval_every=1", "adapt.patch=24"),
                         progress=interrupt)
    assert result.stopped == "interrupted" and result.steps == 2
    assert read_metadata(out)["adapt_stopped"] == "interrupted" and checkpoint_path(out).is_file()
    written, _ = load_weights(out)
    assert all(torch.equal(v, written[k]) for k, v in result.model.state_dict().items())


def test_adapt_is_refused_by_resumable_jobs(tmp_path):
    from streamden.api import denoise_video
    from tests.media import make_video

    src = make_video(tmp_path / "in.mp4", frames=8, size=(48, 48))
    with pytest.raises(ConfigError, match="--adapt does not combine with --resume"):
        denoise_video(src, tmp_path / "out.mp4", resume=True, adapt=True)
    assert not (tmp_path / "out.mp4").exists()
