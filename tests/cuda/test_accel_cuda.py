"""The fast inference options on a GPU (fp16/bf16 autocast, CUDA graphs, cuDNN autotune,
BatchNorm folding, channels_last, batching) against the plain fp32 reference.

Skipped without a CUDA GPU.
"""
from __future__ import annotations

import pytest
import torch

from streamden.models.accel import InferenceOptions, NetworkRunner
from streamden.models.streaming import StreamingDenoiser, denoise_sequence
from streamden.models.tiling import TiledModel
from tests.nets import random_fastdvdnet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
H, W = 70, 94


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_fastdvdnet(seed=4).cuda()


def _frames(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, H, W, generator=torch.Generator().manual_seed(seed)).cuda()


def _stream(engine: StreamingDenoiser, frames: torch.Tensor, sigma: float = 25.0) -> torch.Tensor:
    out = [f for frame in frames for _, f in engine.push(frame, sigma)] + [f for _, f in engine.finish()]
    return torch.stack(out)


def _reference(model: torch.nn.Module, frames: torch.Tensor) -> torch.Tensor:
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        return denoise_sequence(model, frames, 25.0)


@pytest.mark.parametrize("options, tolerance", [
    (InferenceOptions(precision="fp32"), 2e-3),          # graphs, autotune, folding, NHWC; TF32 convs
    (InferenceOptions(precision="fp16"), 6e-3),
    (InferenceOptions(precision="bf16"), 2.5e-2),
    (InferenceOptions(precision="fp16", batch=3), 6e-3),
], ids=["fp32-fast", "fp16", "bf16", "fp16-batch3"])
def test_fast_options_stay_close_to_the_fp32_reference(model, options, tolerance) -> None:
    frames = _frames(7, seed=1)
    expected = _reference(model, frames)
    got = _stream(StreamingDenoiser(model, "cuda", options), frames)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().mean() < tolerance / 4
    assert (got - expected).abs().max() < tolerance * 8


def test_cuda_graphs_replay_new_inputs_and_do_not_alias_outputs(model) -> None:
    runner = NetworkRunner(model, "cuda", InferenceOptions(precision="fp32"))
    assert runner.graphed
    a, b = torch.rand(2, 1, 3, 3, 32, 48, device="cuda")
    noise = torch.full((1, 1, 32, 48), 0.1, device="cuda")
    out_a = runner.stage1(a, noise)
    kept = out_a.clone()
    out_b = runner.stage1(b, noise)
    assert torch.equal(out_a, kept)                 # the second replay did not overwrite the first output
    eager = NetworkRunner(model, "cuda", InferenceOptions(precision="fp32", cuda_graphs=False))
    torch.testing.assert_close(out_b, eager.stage1(b, noise), atol=1e-4, rtol=0)
    torch.testing.assert_close(out_a, eager.stage1(a, noise), atol=1e-4, rtol=0)


def test_tiled_models_are_not_graphed(model) -> None:
    runner = NetworkRunner(TiledModel(model, tile=32), "cuda", InferenceOptions())
    assert not runner.graphed
    frames = _frames(3, seed=2)
    out = _stream(StreamingDenoiser(runner, "cuda"), frames)
    assert (out - _reference(model, frames)).abs().mean() < 2e-3


def test_streams_on_two_threads_share_one_runner(model) -> None:
    import threading

    runner = NetworkRunner(model, "cuda", InferenceOptions(precision="fp16"))
    lock = threading.Lock()
    results = {}

    def work(seed: int) -> None:
        engine = StreamingDenoiser(runner, "cuda")
        frames = _frames(5, seed)
        out = []
        for frame in frames:
            with lock:   # as live.SharedModel serialises calls
                out += [f for _, f in engine.push(frame, 25.0)]
        with lock:
            out += [f for _, f in engine.finish()]
        results[seed] = torch.stack(out)
    threads = [threading.Thread(target=work, args=(s,)) for s in (10, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (10, 11):
        assert (results[seed] - _reference(model, _frames(5, seed))).abs().mean() < 2e-3
