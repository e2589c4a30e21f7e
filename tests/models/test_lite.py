"""The light temporal network (`lite`): its cost, its streaming path, and every front door."""
import pytest
import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.models.fastdvdnet import FastDVDnet, crop_to, pad_to_multiple
from streamden.models.cost import multiply_adds_per_pixel
from streamden.models.lite import LiteDVD
from streamden.models.registry import get_card, load_model
from streamden.models.streaming import StreamingDenoiser, denoise_sequence, window_indices

#: The live issue's budget: what two CPU cores can afford per pixel at 25 fps, 640x360.
BUDGET = 15_000


def test_lite_costs_under_the_budget_and_a_twentieth_of_fastdvdnet():
    lite = multiply_adds_per_pixel(load_model("lite"))
    assert lite <= BUDGET
    assert multiply_adds_per_pixel(FastDVDnet()) > 20 * lite
    assert get_card("lite").is_trained and get_card("lite").align == "none"


@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_streaming_runs_one_block_per_frame_and_matches_the_reference(lookahead):
    torch.manual_seed(0)
    model = LiteDVD().eval()
    calls = []
    model.block.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    frames = torch.rand(6, 3, 14, 18)
    stream = StreamingDenoiser(model, lookahead=lookahead)
    outputs = [r for frame in frames for r in stream.push(frame, 20.0)] + stream.finish()
    assert [i for i, _ in outputs] == list(range(6))
    assert sum(calls) == 6                                      # one triplet through the block per frame
    for t, out in outputs:
        length = t + lookahead + 1 if t + lookahead < 6 else 6
        padded, size = pad_to_multiple(frames[list(window_indices(t, length))].unsqueeze(0))
        with torch.no_grad():   # the network on the window the stream saw, the plain way
            expected = crop_to(model(padded, torch.full((1, 1, *padded.shape[-2:]), 20 / 255)), size)[0]
        torch.testing.assert_close(out, expected.clamp(0, 1), atol=1e-5, rtol=1e-4)
    if lookahead == 2:
        reference = denoise_sequence(model, frames, 20.0)
        torch.testing.assert_close(torch.stack([o for _, o in outputs]), reference, atol=1e-5, rtol=1e-4)


def test_engine_runs_lite_everywhere_and_counts_its_blocks():
    engine = Engine(make_config(None, model="lite", device="cpu"))
    assert engine.single_stage and not engine.aligns
    assert [engine.blocks_per_frame(k) for k in (0, 1, 2)] == [1, 1, 1]
    full = Engine(make_config(None, model="fastdvdnet-gaussian", device="cpu"))
    assert [full.blocks_per_frame(k) for k in (0, 1, 2)] == [4, 3, 2]
    frames = torch.rand(4, 3, 20, 24)
    stream = engine.stream()
    out = [r for f in frames for r in stream.push(f, 25.0)] + stream.finish()
    assert len(out) == 4 and all(o.shape == (3, 20, 24) for _, o in out)
    assert engine.single_frame(frames[0], 25.0).shape == (3, 20, 24)
    assert engine.window(torch.rand(5, 3, 20, 24), 25.0).shape == (3, 20, 24)


def test_model_lite_works_through_the_api_and_the_burst():
    import numpy as np

    from streamden.api import denoise_frames
    from streamden.burst.core import fuse_burst
    from streamden.noise.estimate import NoiseModel

    rng = np.random.default_rng(0)
    clean = np.full((4, 24, 32, 3), 128, np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    out = denoise_frames(noisy, sigma=20, model="lite", device="cpu")
    assert out.shape == noisy.shape and np.abs(out.astype(float) - 128).mean() < np.abs(noisy.astype(float) - 128).mean() / 2
    burst = torch.from_numpy(noisy).permute(0, 3, 1, 2).float() / 255
    engine = Engine(make_config("night_burst", model="lite", device="cpu"))
    result = fuse_burst(burst, engine=engine, noise=NoiseModel.gaussian(20))
    assert result.image.shape == (3, 24, 32)
