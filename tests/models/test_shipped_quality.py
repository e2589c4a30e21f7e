"""Shipped weights on content that once broke them: large bright areas at low noise.

The cause (issue 16, ``python benchmarks/bright_defect.py``): BatchNorm running statistics.
Training at batch 8 left statistics that do not fit large saturated areas; the first
unaligned model turned a white dress and sky pink (25.4 dB out of a 28.4 dB input at
sigma 10) and flat white came out 48 levels too low in green, while the same network
normalising by each window's own statistics gave +3.5 dB. The retrained models keep their
BatchNorm frozen and see inverted (bright) samples; every registered model must now pass.
"""
from pathlib import Path

import cv2
import pytest
import torch

from streamden.metrics import psnr
from streamden.models.registry import list_models, load_model
from streamden.noise.synth import noisy_8bit
from streamden.train import colour_check

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHOTO = DATA / "train" / "images" / "Urban100_HR" / "img_007_SRF_4_HR.jpg"
MODELS = [card.name for card in list_models()]


@pytest.fixture(scope="module")
def bright_window() -> tuple[torch.Tensor, torch.Tensor]:
    if not PHOTO.is_file():
        pytest.skip(f"shared data not found: {PHOTO} (the corpus lives in ../shared/data)")
    image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    crop = image[h // 2 - 240:h // 2 + 240, w // 2 - 240:w // 2 + 240]
    clean = torch.from_numpy(crop).permute(2, 0, 1).float().div(255).unsqueeze(0).expand(5, -1, -1, -1)
    return clean, noisy_8bit(clean, 10.0, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", MODELS)
def test_bright_content_at_low_noise_is_denoised(bright_window, name):
    clean, noisy = bright_window
    with torch.no_grad():   # one window (480 is a multiple of 4: no padding), the centre frame's output
        out = load_model(name)(noisy.unsqueeze(0), torch.full((1, 1, 480, 480), 10.0 / 255)).clamp(0, 1)[0]
    gain = float(psnr(out, clean[2]) - psnr(noisy[2], clean[2]))
    assert gain > 3.0, f"{name}: {gain:+.2f} dB over the noisy input"


def flat_window_bias(name: str, rgb: tuple[float, ...]) -> torch.Tensor:
    """Mean error per channel (0-255) of model ``name`` on a static flat window of colour ``rgb``
    (0-255) at sigma 10 (the trainer's flat-colour check, :mod:`streamden.train.colour_check`)."""
    return colour_check.flat_window_bias(load_model(name), rgb)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("level", [0.9, 0.95, 1.0])
def test_flat_bright_areas_keep_their_colour(name, level):
    bias = flat_window_bias(name, (level * 255,) * 3).abs().max()
    assert float(bias) < 4.0, f"{name}: flat grey {level} comes out {float(bias):.1f} levels off in one channel"


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("rgb", colour_check.STRONG_COLOURS)
def test_strong_colours_keep_their_colour(name, rgb):
    # Issue 19: an aquarium, a stage light, a neon sign. Before the strong-colour training
    # (data.colour; configs/train/fastdvdnet_real4.yaml, fastdvdnet_aligned_colour.yaml) the
    # realistic model turned flat (13, 84, 226) at sigma 10 into red -4.2, green +3.2
    # (ta_sample4 lost 2-3 dB to it), the aligned one blue -3.7 on (250, 240, 20), the
    # unaligned one green +5.0 on (13, 226, 84); measured now: at most 2.8 (stage 14) / 1.8 / 2.0 levels in
    # any channel of these windows; lite (v1: 2.2) within 1.6.
    bias = flat_window_bias(name, rgb)
    assert float(bias.abs().max()) < 3.0, f"{name}: flat {rgb} comes out {bias.tolist()} levels off"


VAL_CLIPS = DATA / "val" / "videos"


@pytest.mark.parametrize("clip", ["da_demo1", "ta_sample4"])
def test_the_realistic_model_beats_the_gaussian_one_on_compressed_noise(clip):
    # Why --sigma auto runs fastdvdnet-real (issue 19): camera noise reaches users through a
    # codec. A held-out clip, sigma 15 through x264 CRF 28, each model as --sigma auto runs it;
    # measured +0.83 / +0.70 dB (fastdvdnet_real2 weights), +0.77 / +1.79 (fastdvdnet_real4),
    # +0.48 / +1.78 (fastdvdnet_real12; x264 round trip converted as our decoder does, with which
    # real8 made only +0.32 on da_demo1), mean PSNR of the 5 frames, with the Wiener pass.
    from streamden.config import make_config
    from streamden.engine import Engine
    from streamden.evaluate import auto_denoise, read_clean
    from streamden.metrics import psnr_per_image
    from streamden.noise.degrade import Degradation, degrade

    if not (VAL_CLIPS / clip).is_dir():
        pytest.skip(f"shared data not found: {VAL_CLIPS / clip} (the corpus lives in ../shared/data)")
    clean = read_clean(VAL_CLIPS / clip, 5, 96)
    noisy = degrade(clean, Degradation("compressed", sigma=15, codec="x264", quality=28), seed=0)
    scores = {}
    for name in ("fastdvdnet-aligned", "fastdvdnet-real"):
        with torch.no_grad():
            out, _ = auto_denoise(Engine(make_config(None, model=name, device="cpu")), noisy)
        scores[name] = float(psnr_per_image(out, clean).mean())
    assert scores["fastdvdnet-real"] > scores["fastdvdnet-aligned"] + 0.4, scores


def test_auto_on_a_dark_clipped_channel_holds_against_the_best_fixed_level():
    # Issue 19's gate: --sigma auto within 0.3 dB of the network at its best fixed level. The
    # aquarium clip's red channel (mean 13 of 255) under camera noise is clipped at 0 and much
    # noisier than the overall level; with one level for all channels auto lost 2.9 dB to twice
    # that level at iso3200. Its own level (censored_level) runs red again: measured 33.97 dB
    # against 32.35 at the best of 1, 1.5, 2, 3 times the effective level (fastdvdnet_real8).
    from streamden.config import make_config
    from streamden.engine import Engine
    from streamden.evaluate import auto_denoise, degrade_clip, read_clean
    from streamden.metrics import psnr_per_image
    from streamden.noise.degrade import effective_level, parse_degradation
    from streamden.noise.estimate import channel_levels

    if not (VAL_CLIPS / "ta_sample4").is_dir():
        pytest.skip(f"shared data not found: {VAL_CLIPS / 'ta_sample4'} (the corpus lives in ../shared/data)")
    clean = read_clean(VAL_CLIPS / "ta_sample4", 5, 96)
    spec = parse_degradation("camera iso3200")
    noisy = degrade_clip(clean, "ta_sample4", spec)
    engine = Engine(make_config(None, device="cpu"))
    with torch.no_grad():
        auto, levels = auto_denoise(engine, noisy)
        level = effective_level(noisy, clean)
        fixed = max(float(psnr_per_image(engine.denoise_clip(noisy, k * level), clean).mean()) for k in (1, 1.5, 2, 3))
    assert all(channel_levels(v) is not None for v in levels)
    assert float(psnr_per_image(auto, clean).mean()) > fixed - 0.3
