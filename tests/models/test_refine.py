"""The Wiener pass over the network's output (streamden.models.refine, ``model.refine``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from streamden.align import DISFlow
from streamden.config import make_config
from streamden.engine import Engine
from streamden.metrics import psnr
from streamden.models import refine
from streamden.models.fastdvdnet import FastDVDnet
from streamden.models.refine import SCALE, WienerRefiner, wiener_refine
from streamden.models.streaming import StreamingDenoiser, denoise_sequence


def _texture(frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth random texture panning right by one pixel a frame, ``(T, 3, H, W)`` in [0.1, 0.9]."""
    gen = torch.Generator().manual_seed(seed)
    big = F.avg_pool2d(torch.rand(1, 3, height + 8, width + frames + 8, generator=gen), 5, 1, 2)
    big = (big - big.min()) / (big.max() - big.min()) * 0.8 + 0.1
    return torch.stack([big[0, :, 4:4 + height, 4 + t:4 + t + width] for t in range(frames)])


def _noisy(clean: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (clean + sigma / 255 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)


def test_the_pass_improves_a_weak_pilot_on_moving_texture():
    clean = _texture(6, 48, 64)
    noisy = _noisy(clean, 20.0)
    pilot = torch.stack([F.avg_pool2d(f.unsqueeze(0), 3, 1, 1, count_include_pad=False)[0] for f in noisy])
    refiner = WienerRefiner(DISFlow("medium"))
    refined = torch.stack([refiner.push(i, n, p) for i, (n, p) in enumerate(zip(noisy, pilot))])
    for t in range(2, 6):     # a full window of three frames
        gain = float(psnr(refined[t], clean[t]) - psnr(pilot[t], clean[t]))
        assert gain > 0.5, f"frame {t}: the pass gained {gain:.2f} dB over its pilot"


def test_a_pilot_without_residual_comes_back_unchanged_and_strength_scales_the_variance():
    clean = _texture(3, 20, 24)
    assert torch.allclose(wiener_refine(clean, clean), clean[-1], atol=1e-5)
    noisy = _noisy(clean, 15.0)
    pilot = torch.stack([F.avg_pool2d(f.unsqueeze(0), 3, 1, 1, count_include_pad=False)[0] for f in noisy])
    # strength K multiplies the measured variance by K^2: the same as a K^2 larger scale
    assert torch.equal(wiener_refine(noisy, pilot, strength=2.0), wiener_refine(noisy, pilot, scale=SCALE * 4))
    gentle, strong = wiener_refine(noisy, pilot, strength=0.25), wiener_refine(noisy, pilot, strength=4.0)
    assert float((gentle - noisy[-1]).abs().mean()) < float((strong - noisy[-1]).abs().mean())


def test_the_mean_of_each_block_is_the_pilots():
    # Dark noise clipped at black has a raised mean; the network corrects it, the pass keeps that
    noisy = _noisy(torch.full((3, 3, 32, 32), 0.02), 25.0)
    assert float(noisy.mean()) > 0.035
    pilot = torch.full_like(noisy, 0.02)
    assert abs(float(wiener_refine(noisy, pilot).mean()) - 0.02) < 2e-3


def test_the_result_does_not_depend_on_the_number_of_threads():
    # Ray workers run one thread: a Ray job must give a single process's frames bit for bit
    noisy = _noisy(_texture(3, 40, 52), 20.0)
    pilot = noisy.roll(1, -1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = wiener_refine(noisy, pilot)
        torch.set_num_threads(2)
        two = wiener_refine(noisy, pilot)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_bands_and_odd_sizes_give_the_whole_frame_result(monkeypatch):
    noisy = _noisy(_texture(3, 131, 37), 20.0)       # 42 block rows at stride 3: two bands
    pilot = noisy.roll(2, -2)
    banded = wiener_refine(noisy, pilot)
    monkeypatch.setattr(refine, "BAND", 10_000)
    assert torch.allclose(banded, wiener_refine(noisy, pilot), atol=1e-6)
    for size in ((5, 7), (9, 8), (16, 3)):          # smaller than a block: replicated borders
        tiny = torch.rand(2, 3, *size)
        assert wiener_refine(tiny, tiny.flip(-1)).shape == (3, *size)


def test_the_stream_refines_each_output_like_the_reference_and_keeps_its_latency():
    model = FastDVDnet().eval()
    frames = _texture(7, 24, 32)
    plain = StreamingDenoiser(model)
    stream = StreamingDenoiser(model, refiner=WienerRefiner(DISFlow("fast")))
    ready, counts = [], []
    for frame in frames:
        got = stream.push(frame, 20.0)
        counts.append((len(plain.push(frame, 20.0)), len(got)))
        ready += got
    assert all(a == b for a, b in counts)                  # no added latency: the window looks back
    ready += stream.finish()
    expected = denoise_sequence(model, frames, 20.0, refiner=WienerRefiner(DISFlow("fast")))
    assert [i for i, _ in ready] == list(range(7))
    torch.testing.assert_close(torch.stack([f for _, f in ready]), expected, rtol=0, atol=1e-5)
    unrefined = denoise_sequence(model, frames, 20.0)
    assert float((expected - unrefined).abs().max()) > 1e-3   # the pass did something


def test_model_refine_turns_the_pass_on_and_off():
    assert Engine(make_config(None, device="cpu")).stream().refiner is not None
    assert Engine(make_config(None, device="cpu", refine=False)).stream().refiner is None


def test_bursts_end_with_the_pass_on_the_merged_frame():
    from streamden.burst.core import fuse_burst
    from streamden.noise.estimate import NoiseModel

    clean = _texture(1, 32, 32)[0]
    burst = torch.stack([_noisy(clean.unsqueeze(0), 20.0, seed=s)[0] for s in range(3)])
    model = FastDVDnet().eval()
    results = {}
    for refine_on in (False, True):
        engine = Engine(make_config("night_burst", device="cpu", refine=refine_on), model=model)
        results[refine_on] = fuse_burst(burst, reference=0, engine=engine, noise=NoiseModel.gaussian(20)).image
    assert results[True].shape == (3, 32, 32)
    assert float((results[True] - results[False]).abs().max()) > 1e-3
