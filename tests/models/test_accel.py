"""Inference options: each one alone gives the reference's frames (within its precision)."""
from __future__ import annotations

import pytest
import torch

from streamden.align import WindowAligner
from streamden.align.flow import DISFlow
from streamden.config import apply_overrides, DenoiseConfig
from streamden.errors import ConfigError
from streamden.models.accel import (InferenceOptions, NetworkRunner, cpu_has_bf16, fold_batchnorm,
                                    prepare_model, resolve_precision)
from streamden.models.streaming import StreamingDenoiser, denoise_sequence
from tests.nets import random_fastdvdnet

H, W = 26, 34


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_fastdvdnet(seed=3)


def _frames(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _stream(engine: StreamingDenoiser, frames: torch.Tensor, sigmas: list[float]) -> list[tuple[int, torch.Tensor]]:
    out = []
    for frame, sigma in zip(frames, sigmas):
        out += engine.push(frame, sigma)
    return out + engine.finish()


def test_folded_batchnorm_computes_the_same_block(model: torch.nn.Module) -> None:
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # the original is untouched
    x, noise = torch.rand(2, 3, 3, 16, 20), torch.full((2, 1, 16, 20), 0.1)
    with torch.no_grad():
        torch.testing.assert_close(folded.stage1(x, noise), model.stage1(x, noise), rtol=0, atol=1e-5)


def test_prepare_model_leaves_the_callers_model_alone(model: torch.nn.Module) -> None:
    before = model.temp1.inc.convblock[0].weight
    layout = before.is_contiguous(memory_format=torch.channels_last)
    prepared = prepare_model(model, torch.device("cpu"), InferenceOptions(precision="fp32"))
    assert prepared.temp1.inc.convblock[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model.temp1.inc.convblock[0].weight is before
    assert before.is_contiguous(memory_format=torch.channels_last) == layout


@pytest.mark.parametrize("options", [
    InferenceOptions.naive().with_(channels_last=True),
    InferenceOptions.naive().with_(fold_batchnorm=True),
    InferenceOptions.naive().with_(cudnn_benchmark=True, cuda_graphs=True),   # no effect on the CPU
    InferenceOptions.naive().with_(batch=3),
    InferenceOptions(precision="fp32", batch=4),
], ids=["channels_last", "fold_batchnorm", "cuda_only", "batch3", "all_fp32"])
@pytest.mark.parametrize("length", [1, 4, 9])
def test_each_fp32_option_equals_the_reference(model: torch.nn.Module, options: InferenceOptions, length: int) -> None:
    frames = _frames(length, seed=length)
    sigmas = [10.0 + 4.0 * i for i in range(length)]
    expected = denoise_sequence(model, frames, torch.tensor(sigmas))
    ready = _stream(StreamingDenoiser(model, options=options), frames, sigmas)
    assert [i for i, _ in ready] == list(range(length))
    torch.testing.assert_close(torch.stack([f for _, f in ready]), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("lookahead", [0, 1])
def test_batching_keeps_the_causal_windows(model: torch.nn.Module, lookahead: int) -> None:
    frames = _frames(7, seed=11)
    plain = _stream(StreamingDenoiser(model, lookahead=lookahead), frames, [25.0] * 7)
    batched_engine = StreamingDenoiser(model, options=InferenceOptions.naive().with_(batch=3), lookahead=lookahead)
    batched = _stream(batched_engine, frames, [25.0] * 7)
    assert [i for i, _ in batched] == [i for i, _ in plain]
    torch.testing.assert_close(torch.stack([f for _, f in batched]), torch.stack([f for _, f in plain]),
                               rtol=0, atol=2e-5)


def test_batched_outputs_come_batch_at_a_time_and_cut_the_calls(model: torch.nn.Module) -> None:
    calls = {"stage1": 0, "stage2": 0}
    runner = NetworkRunner(model, "cpu", InferenceOptions.naive().with_(batch=4))
    for name in calls:
        stage = getattr(runner, name)

        def counted(x, noise, stage=stage, name=name):
            calls[name] += 1
            return stage(x, noise)
        setattr(runner, name, counted)
    engine = StreamingDenoiser(runner)
    per_push = [len(engine.push(frame, 20.0)) for frame in _frames(10)]
    assert per_push == [0, 0, 0, 0, 0, 4, 0, 0, 0, 4]
    assert len(engine.finish()) == 2
    assert calls == {"stage1": 3, "stage2": 3}   # 12 triplets and 10 frames in three calls each


def test_batched_alignment_equals_unbatched(model: torch.nn.Module) -> None:
    frames = _frames(6, seed=5)
    plain = _stream(StreamingDenoiser(model, aligner=WindowAligner(DISFlow("fast"))), frames, [30.0] * 6)
    batched = _stream(StreamingDenoiser(model, options=InferenceOptions.naive().with_(batch=2),
                                        aligner=WindowAligner(DISFlow("fast"))), frames, [30.0] * 6)
    torch.testing.assert_close(torch.stack([f for _, f in batched]), torch.stack([f for _, f in plain]),
                               rtol=0, atol=2e-5)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_on_the_cpu_stays_close_and_returns_float32(model: torch.nn.Module) -> None:
    frames = _frames(5, seed=8)
    expected = denoise_sequence(model, frames, 25.0)
    ready = _stream(StreamingDenoiser(model, options=InferenceOptions(precision="bf16")), frames, [25.0] * 5)
    got = torch.stack([f for _, f in ready])
    assert got.dtype == torch.float32
    assert (got - expected).abs().mean() < 0.01
    assert not torch.equal(got, expected)   # it did run in bf16


def test_precision_names_are_checked() -> None:
    assert resolve_precision("fp32", "cpu") == torch.float32
    assert resolve_precision("bf16", "cpu") == torch.bfloat16
    assert resolve_precision("auto", "cuda") == torch.float16
    assert resolve_precision("auto", "cpu") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    with pytest.raises(ConfigError, match="fp16 runs on CUDA only"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="model.precision"):
        apply_overrides(DenoiseConfig(), ["model.precision=fp8"]).model.inference_options()
    with pytest.raises(ConfigError, match="model.batch"):
        apply_overrides(DenoiseConfig(), ["model.batch=0"]).model.inference_options()
