"""Blind noise-level estimation on real frames with synthetic 8-bit Gaussian noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamden.noise.estimate import SigmaTracker, estimate_level, estimate_noise, estimate_sigma

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WIDTH = 256          # frames are downscaled before the noise is added, which leaves the noise intact
TOLERANCE = 0.15     # relative error allowed


def _real_frames() -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    paths = sorted(DATA.glob("val/videos/*/0000*.jpg"))
    if not paths:
        pytest.skip(f"shared corpus not found: no val/videos/*/0000*.jpg under {DATA}")
    frames = []
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        height = round(image.shape[0] * WIDTH / image.shape[1])
        frames.append(cv2.resize(image, (WIDTH, height), interpolation=cv2.INTER_AREA))
    return frames


def _add_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian noise per RGB channel, clipped and rounded to 8 bits as real video carries it."""
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_estimate_on_real_frames(sigma: float) -> None:
    frames = _real_frames()
    errors = []
    for i, frame in enumerate(frames):
        estimate = estimate_sigma(_add_noise(frame, sigma, seed=1000 * sigma + i))
        errors.append(estimate / sigma - 1.0)
    worst = max(errors, key=abs)
    assert abs(worst) < TOLERANCE, f"sigma {sigma}: relative errors {np.round(errors, 3).tolist()}"


def test_clean_frames_give_a_small_sigma() -> None:
    for frame in _real_frames():
        assert estimate_sigma(frame) < 2.0


def test_tensor_and_uint8_inputs_agree() -> None:
    frame = _add_noise(np.full((64, 96, 3), 120, np.uint8), 15, seed=1)
    tensor = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    assert estimate_sigma(tensor) == pytest.approx(estimate_sigma(frame), abs=1e-6)


def test_flat_synthetic_frame() -> None:
    # No corpus needed: a gradient (no texture) with noise at 20.
    ramp = np.linspace(60, 190, 128)[None, :, None]
    clean = np.broadcast_to(ramp, (96, 128, 3)).astype(np.uint8)
    assert estimate_sigma(_add_noise(clean, 20, seed=2)) == pytest.approx(20, rel=0.1)
    assert estimate_sigma(clean) < 1.0


def test_dark_frame_with_clipped_noise() -> None:
    # Half the frame sits at black, where clipping shrinks the noise; the rest is mid-grey.
    clean = np.zeros((128, 128, 3), np.uint8)
    clean[:, 64:] = 128
    assert estimate_sigma(_add_noise(clean, 40, seed=3)) == pytest.approx(40, rel=0.1)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        estimate_sigma(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError):
        estimate_sigma(np.zeros((16, 16, 4), np.uint8))


def test_sigma_tracker() -> None:
    tracker = SigmaTracker(smoothing=0.5)
    assert tracker.update(10.0) == 10.0          # first value taken as is
    assert tracker.update(20.0) == 15.0
    assert tracker.update(20.0) == 17.5
    tracker.reset()
    assert tracker.update(40.0) == 40.0
    follow = SigmaTracker(smoothing=0.0)
    assert [follow.update(s) for s in (5.0, 30.0, 12.0)] == [5.0, 30.0, 12.0]
    steady = SigmaTracker()                      # default 0.9: a jump moves it 10% of the way
    steady.update(10.0)
    assert steady.update(30.0) == pytest.approx(12.0)
    with pytest.raises(ValueError):
        SigmaTracker(smoothing=1.0)


def _clip(frames: int = 4, crop: int = 128) -> torch.Tensor:
    from streamden.evaluate import read_clean

    path = DATA / "val" / "videos" / "da_demo1"
    if not path.is_dir():
        pytest.skip(f"shared corpus not found: {path}")
    return read_clean(path, frames, crop)


@pytest.mark.parametrize("sigma,crf", [(10, 23), (15, 28), (25, 28)])
def test_estimate_holds_on_compressed_video(sigma, crf):
    from streamden.noise.degrade import Degradation, degrade, effective_level

    clean = _clip()
    noisy = degrade(clean, Degradation("compressed", sigma=sigma, codec="x264", quality=crf), seed=0)
    level = effective_level(noisy, clean)
    estimate = float(np.mean([estimate_sigma(frame) for frame in noisy]))
    assert estimate == pytest.approx(level, rel=0.2)
    finest_only = float(np.mean([_finest(frame) for frame in noisy]))
    assert finest_only < 0.8 * level            # what a single-scale estimate reads: compression emptied it


def _finest(frame: torch.Tensor) -> float:
    """The classic estimate: MAD of the finest diagonal band only."""
    from streamden.noise import estimate as E

    stats = E.block_stats(frame)
    return float(E._median_abs(stats.hh1[E._quiet(np.arange(stats.mean.size), stats.act1, 0.3)], stats.step)
                 * E.MAD_TO_SIGMA)


def test_camera_noise_per_intensity_band():
    from streamden.noise.degrade import CAMERA_LEVELS, camera_noise

    ramp = torch.linspace(0.25, 0.9, 192).repeat(3, 192, 1)                 # dark to bright (unclipped), no texture
    noisy, true_std = camera_noise(ramp, CAMERA_LEVELS["iso3200"], seed=1)
    estimate = estimate_noise(noisy)
    got = estimate.noise_map(noisy)
    assert estimate.ok and got.shape == (1, 192, 192)
    for lo in range(16, 176, 40):                                            # bands of columns = of intensity
        band = slice(lo, lo + 24)
        assert float(got[0, :, band].mean()) == pytest.approx(float(true_std[0, :, band].mean()), rel=0.2)
    assert float(got[0, :, :24].mean()) > 1.1 * float(got[0, :, -24:].mean())   # shadows noisier (gamma)


@pytest.mark.parametrize("frame", [np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 128, np.uint8),
                                   np.full((64, 64, 3), 255, np.uint8)], ids=["black", "flat", "white"])
def test_a_frame_that_tells_nothing_keeps_the_last_good_level(frame, caplog):
    assert estimate_level(frame) is None
    tracker = SigmaTracker(smoothing=0.0)
    noisy = _add_noise(np.full((64, 64, 3), 100, np.uint8), 12, seed=4)
    good = tracker.update(estimate_level(noisy))
    with caplog.at_level("WARNING"):
        assert tracker.update(estimate_level(frame)) == good
        assert tracker.update(estimate_level(frame)) == good
    assert len([r for r in caplog.records if "noise estimate failed" in r.getMessage()]) == 1   # said once
    assert "2 frame(s) without a usable estimate" in tracker.summary()
    assert SigmaTracker().update(None) == 0.0                                # nothing good yet


def test_strong_noise_that_clips_most_blocks_still_reads():
    clean = np.zeros((96, 96, 3), np.uint8)
    clean[..., 2] = 230                                      # a saturated blue scene: red and green at black
    noisy = _add_noise(clean, 35, seed=5)
    level = estimate_level(noisy)
    assert level is not None and level > 15


def _deep_colour(rgb: tuple[int, int, int], size: int = 128) -> torch.Tensor:
    """A softly textured frame of a deep colour (0-255 means), like an aquarium's."""
    g = torch.Generator().manual_seed(3)
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 1, size, size, generator=g), 9, 1, 4)[0]
    return (torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / 255 + (texture - 0.5) * 0.05).clamp(0, 1)


def test_a_dark_channel_under_camera_noise_gets_its_own_level():
    # A camera's dark red channel: clipped at 0 on about half its pixels, and noisier than the
    # overall level (white balance, colour matrix, gamma): the network needs more there
    # (benchmarks/clipped_channels.py). Gaussian noise clipped the same way reads below the overall
    # level and keeps it; so does the same camera noise on mid-grey.
    from streamden.noise.degrade import CAMERA_LEVELS, camera_noise
    from streamden.noise.estimate import NoiseLevel, censored_level

    noisy, _ = camera_noise(_deep_colour((13, 84, 226)), CAMERA_LEVELS["iso3200"], seed=1)
    level = estimate_level(noisy)
    assert isinstance(level, NoiseLevel) and level.channels is not None
    red, green, blue = level.channels
    assert red > 1.8 * float(level) and green == blue == float(level)
    estimate = estimate_noise(noisy)
    assert estimate.clipped[0] > 0.3 and red == pytest.approx(censored_level(estimate.channel_sigmas[0], estimate.clipped[0]))

    gaussian = (_deep_colour((13, 84, 226)) + torch.randn(3, 128, 128, generator=torch.Generator().manual_seed(1)) * 30 / 255)
    assert estimate_level(gaussian.clamp(0, 1)).channels is None
    grey, _ = camera_noise(_deep_colour((128, 128, 128)), CAMERA_LEVELS["iso3200"], seed=1)
    assert estimate_level(grey).channels is None


def test_noise_levels_keep_their_channels_through_pickle_and_scaling():
    import pickle

    from streamden.noise.estimate import NoiseLevel

    level = NoiseLevel(12.0, (30.0, 12.0, 12.0))
    back = pickle.loads(pickle.dumps(level))           # Ray moves estimates between processes
    assert back == 12.0 and back.channels == (30.0, 12.0, 12.0)
    assert level.scaled(2.0).channels == (60.0, 24.0, 24.0) and float(level * 2) == 24.0
