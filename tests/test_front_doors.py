"""One engine (issue 18): every front door runs the network the same way, so the same config
gives the same frames, bit for bit, through each of them.

The front doors: a file job (``denoise_video``), a resumable job in segments (``--resume``),
the frame-at-a-time ``Denoiser``, ``denoise_frames``, eval's clip pass (``Engine.denoise_clip``)
and the burst's and eval's single-frame pass (``Engine.single_frame`` against a window of five
copies). Output is PNG (lossless RGB), input decoded by our own source, flow alignment on,
fp32, a random network.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamden.api import Denoiser, denoise_frames, denoise_video
from streamden.config import make_config
from streamden.engine import Engine
from streamden.io import VideoFileSource
from streamden.live import LiveJob
from streamden.tensors import image_to_tensor, tensor_to_image
from tests.media import make_video

FRAMES = 9


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("doors") / "in.mp4", frames=FRAMES, size=(64, 48))


@pytest.fixture(scope="module")
def options(random_weights) -> dict:
    return dict(model=str(random_weights), sigma="20", precision="fp32", align="flow", device="cpu")


@pytest.fixture(scope="module")
def decoded(clip) -> list[np.ndarray]:
    return [frame.image for frame in VideoFileSource(str(clip)).generate()]


def _pngs(folder: Path) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]


def _file_job(clip, options, tmp_path, **extra) -> list[np.ndarray]:
    out = tmp_path / "out"
    out.mkdir()
    denoise_video(clip, out / "%05d.png", preset=None, handle_signals=False, **options, **extra)
    return _pngs(out)


FRONT_DOORS = {
    "denoise_video": lambda clip, decoded, options, tmp_path: _file_job(clip, options, tmp_path),
    "denoise_video --resume": lambda clip, decoded, options, tmp_path: _file_job(
        clip, options, tmp_path, resume=True, segment_frames=4),
    "Denoiser": lambda clip, decoded, options, tmp_path: list(Denoiser(**options)(decoded)),
    "denoise_frames": lambda clip, decoded, options, tmp_path: list(denoise_frames(np.stack(decoded), **options)),
    "Engine.denoise_clip (eval)": lambda clip, decoded, options, tmp_path: [
        tensor_to_image(t, np.uint8) for t in Engine(make_config(None, **options)).denoise_clip(
            torch.stack([image_to_tensor(im, "cpu") for im in decoded]), 20.0)],
}


@pytest.fixture(scope="module")
def reference(decoded, options) -> list[np.ndarray]:
    return list(Denoiser(**options)(decoded))


@pytest.mark.parametrize("door", sorted(FRONT_DOORS))
def test_the_same_config_gives_the_same_frames_through_every_front_door(door, clip, decoded, options, reference,
                                                                           tmp_path):
    got = FRONT_DOORS[door](clip, decoded, options, tmp_path)
    assert len(got) == FRAMES
    differ = [i for i, (a, b) in enumerate(zip(got, reference)) if not np.array_equal(a, b)]
    assert not differ, f"{door}: frames {differ} differ from Denoiser's"


def test_single_frame_pass_is_the_network_on_five_copies(options):
    engine = Engine(make_config(None, **options))
    image = torch.rand(3, 20, 28)
    window = image.unsqueeze(0).expand(5, -1, -1, -1)
    assert torch.allclose(engine.single_frame(image, 20.0), engine.window(window, 20.0), atol=1e-6)
    noise_map = torch.full((1, 20, 28), 20.0 / 255)
    assert torch.allclose(engine.single_frame(image, noise_map), engine.single_frame(image, 20.0), atol=1e-6)


def test_a_clipped_channels_own_level_reaches_the_single_frame_pass_and_windows(options):
    # live's cheap paths and bursts run Engine.single_frame / window: a NoiseLevel's own level
    # for red runs red again there too, scaled by the strength like the overall level
    from streamden.noise.estimate import NoiseLevel

    engine = Engine(make_config(None, **dict(options, strength=0.5)))
    image = torch.rand(3, 20, 28)
    window = image.unsqueeze(0).expand(5, -1, -1, -1)
    own, plain = NoiseLevel(20.0, (60.0, 20.0, 20.0)), 20.0
    for scale in (1, 2):
        got, base = engine.single_frame(image, own, scale), engine.single_frame(image, plain, scale)
        assert float((got[0] - base[0]).abs().max()) > 1e-3
        assert torch.equal(engine.single_frame(image, NoiseLevel(20.0, (20.0,) * 3), scale), base)
    assert torch.allclose(engine.single_frame(image, own), engine.window(window, own), atol=1e-6)
    doubled = Engine(make_config(None, **options))
    assert torch.allclose(engine.window(window, own), doubled.window(window, own.scaled(0.5)), atol=1e-6)


def test_live_runs_the_engine_of_its_config(options):
    config = make_config("surveillance", None, ["model.batch=4"], door="live", **dict(options, align="none"))
    engine = Engine(config, live=True)
    job = LiveJob([], [], engine)
    # one frame per network call whatever model.batch says: what the streams' runner does
    assert job.streams == [] and engine.runner.options.batch == 1 and engine.stream().batch == 1
    assert not engine.aligns


STRENGTH_DOORS = ("denoise_video", "Denoiser", "Engine.denoise_clip (eval)")


@pytest.mark.parametrize("door", STRENGTH_DOORS)
def test_strength_scales_the_noise_map_in_every_front_door(door, clip, decoded, options, tmp_path):
    # noise.strength 2 at sigma 10 is sigma 20 for the network: the same frames, bit for bit
    # (without the Wiener pass, whose noise variance is measured, then scaled by strength^2:
    # tests/models/test_refine.py)
    network_only = dict(options, refine=False)
    reference = list(Denoiser(**network_only)(decoded))
    strong = dict(network_only, sigma="10", strength=2.0)
    if door == "Engine.denoise_clip (eval)":
        engine = Engine(make_config(None, **dict(strong, sigma=None)))
        got = [tensor_to_image(t, np.uint8) for t in engine.denoise_clip(
            torch.stack([image_to_tensor(im, "cpu") for im in decoded]), 10.0)]
    else:
        got = FRONT_DOORS[door](clip, decoded, strong, tmp_path)
    differ = [i for i, (a, b) in enumerate(zip(got, reference)) if not np.array_equal(a, b)]
    assert not differ, f"{door}: frames {differ} differ at strength 2 x sigma 10 from sigma 20"


def test_strength_scales_maps_of_the_single_frame_pass_and_live(options):
    engine = Engine(make_config(None, **dict(options, strength=0.5)))
    plain = Engine(make_config(None, **options))
    image, noise_map = torch.rand(3, 20, 28), torch.rand(1, 20, 28) * 0.2
    assert torch.equal(engine.single_frame(image, noise_map), plain.single_frame(image, noise_map * 0.5))
    live = Engine(make_config("surveillance", door="live", **dict(options, align="none", strength=3.0)), live=True)
    assert live.strength == 3.0 and live.stream().strength == 3.0
    from streamden.config import STRENGTH_RANGE
    from streamden.errors import ConfigError

    for bad in (STRENGTH_RANGE[0] / 2, STRENGTH_RANGE[1] * 2, "strong"):
        with pytest.raises(ConfigError, match="noise.strength"):
            make_config(None, strength=bad)
    make_config("night_burst", door="burst", strength=2)         # bursts read it too


@pytest.mark.parametrize("door", sorted(FRONT_DOORS))
def test_the_self_ensemble_runs_the_same_in_every_front_door(door, clip, decoded, options, reference, tmp_path):
    averaged = dict(options, ensemble=2)
    expected = list(Denoiser(**averaged)(decoded))
    got = FRONT_DOORS[door](clip, decoded, averaged, tmp_path)
    differ = [i for i, (a, b) in enumerate(zip(got, expected)) if not np.array_equal(a, b)]
    assert not differ, f"{door}: frames {differ} differ from Denoiser's at model.ensemble 2"
    assert not all(np.array_equal(a, b) for a, b in zip(got, reference))    # two passes are not one


def test_live_and_bursts_read_the_self_ensemble(options):
    live = Engine(make_config("surveillance", door="live", **dict(options, align="none", ensemble=4)), live=True)
    assert type(live.runner.model).__name__ == "SelfEnsemble" and live.runner.model.size == 4
    assert make_config("night_burst", door="burst", ensemble=8).model.ensemble == 8
