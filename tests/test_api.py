"""The Python API: denoise_frames, Denoiser and denoise_video."""
import numpy as np
import pytest
import torch

import streamden
from streamden.api import Denoiser, denoise_frames, denoise_video
from streamden.models.registry import load_model
from tests.media import make_video


@pytest.fixture(scope="module")
def model(random_weights):
    return load_model(str(random_weights))


def test_denoise_frames_keeps_shape_and_dtype(model):
    frames = np.random.default_rng(0).integers(0, 256, (5, 30, 22, 3), dtype=np.uint8)
    out = denoise_frames(frames, sigma=25, model=model, device="cpu")
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frames)


def test_denoise_frames_uint16(model):
    frames = np.random.default_rng(0).integers(0, 65536, (3, 16, 16, 3), dtype=np.uint16)
    out = denoise_frames(frames, sigma=25, model=model, device="cpu")
    assert out.shape == frames.shape and out.dtype == np.uint16


def test_denoiser_has_two_frames_of_look_ahead_and_matches_denoise_frames(model):
    frames = np.random.default_rng(1).integers(0, 256, (6, 24, 20, 3), dtype=np.uint8)
    den = Denoiser(sigma=20, model=model, device="cpu")
    ready = [len(den.push(f)) for f in frames]
    assert ready == [0, 0, 1, 1, 1, 1]
    rest = den.flush()
    assert len(rest) == 2
    den.reset()
    streamed = np.stack([o for f in frames for o in den.push(f)] + den.flush())
    np.testing.assert_array_equal(streamed, denoise_frames(frames, sigma=20, model=model, device="cpu"))


def test_denoiser_takes_tensors_and_returns_tensors(model):
    den = Denoiser(sigma=20, model=model, device="cpu")
    out = list(den(torch.rand(4, 3, 16, 16)))
    assert len(out) == 4 and all(isinstance(o, torch.Tensor) and o.shape == (3, 16, 16) for o in out)


def test_denoiser_rejects_wrong_shapes(model):
    den = Denoiser(sigma=20, model=model, device="cpu")
    with pytest.raises(ValueError, match="H, W, 3"):
        den.push(np.zeros((16, 16), np.uint8))


def test_package_exports_the_front_doors():
    assert streamden.denoise_video is denoise_video
    assert streamden.denoise_frames is denoise_frames
    assert streamden.Denoiser is Denoiser


def test_denoise_video_auto_sigma_returns_a_report(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=6, size=(48, 32))
    report = denoise_video(src, tmp_path / "out.mp4", model=str(random_weights), sigma="auto", handle_signals=False)
    assert [n.name for n in report.nodes] == ["VideoFileSource", "upload", "denoise", "download", "VideoFileSink"]
    assert [n.items_out for n in report.nodes] == [6] * 5
    assert report.outcome == "complete" and "denoise" in report.format_table()
