"""Streaming FastDVDnet with the stage-1 cache against the plain reference."""
from __future__ import annotations

import pytest
import torch

from streamden.models.fastdvdnet import pad_to_multiple
from streamden.models.streaming import StreamingDenoiser, denoise_sequence, reflect_index, window_indices
from tests.nets import random_fastdvdnet

H, W = 30, 22   # odd sizes: padded to 32x24 and cropped back


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return random_fastdvdnet(seed=0)


def _frames(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, 3, H, W, generator=torch.Generator().manual_seed(seed))


class _BlockCounter:
    """Counts the triplets (stage 1) and windows (stage 2) the two denoising blocks ran on."""

    def __init__(self, model: torch.nn.Module):
        self.calls = {"temp1": 0, "temp2": 0}
        self.handles = [getattr(model, name).register_forward_hook(self._hook(name)) for name in self.calls]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.calls[name] += inputs[0].shape[0]
        return hook

    def total(self) -> int:
        return sum(self.calls.values())

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _stream(engine: StreamingDenoiser, frames: torch.Tensor, sigmas: list[float]):
    out = []
    for frame, sigma in zip(frames, sigmas):
        out += engine.push(frame, sigma)
    return out + engine.finish()


def test_reflect_index() -> None:
    assert [reflect_index(i, 5) for i in range(-4, 10)] == [4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1]
    assert [reflect_index(i, 2) for i in range(-2, 4)] == [0, 1, 0, 1, 0, 1]
    assert [reflect_index(i, 1) for i in range(-2, 3)] == [0] * 5
    assert window_indices(0, 9) == (2, 1, 0, 1, 2)
    assert window_indices(8, 9) == (6, 7, 8, 7, 6)
    assert window_indices(0, 2) == (0, 1, 0, 1, 0)


def test_reference_equals_model_forward_at_constant_sigma(model: torch.nn.Module) -> None:
    frames = _frames(3, seed=2)
    out = denoise_sequence(model, frames, 25.0)
    padded, size = pad_to_multiple(frames)
    with torch.no_grad():
        for t in range(3):
            window = padded[list(window_indices(t, 3))].unsqueeze(0)
            noise_map = torch.full((1, 1, *padded.shape[-2:]), 25.0 / 255)
            expected = model(window, noise_map)[0, :, :H, :W].clamp(0, 1)
            torch.testing.assert_close(out[t], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 9])
def test_streaming_equals_reference(model: torch.nn.Module, length: int) -> None:
    frames = _frames(length, seed=length)
    # Sigma changes from frame to frame, so a stage-1 output cached with the wrong frame's
    # sigma would show.
    sigmas = [10.0 + 5.0 * i for i in range(length)]
    expected = denoise_sequence(model, frames, torch.tensor(sigmas))
    ready = _stream(StreamingDenoiser(model), frames, sigmas)
    assert [i for i, _ in ready] == list(range(length))
    got = torch.stack([frame for _, frame in ready])
    assert got.shape == (length, 3, H, W)
    # Outputs are not all clamped away: the comparison sees real values.
    assert ((got > 0) & (got < 1)).float().mean() > 0.5
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def _distinct_triplets(length: int) -> int:
    keys = set()
    for t in range(length):
        idx = window_indices(t, length)
        keys.update(idx[i:i + 3] for i in range(3))
    return len(keys)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 9])
def test_each_triplet_runs_once(model: torch.nn.Module, length: int) -> None:
    engine = StreamingDenoiser(model)
    counter = _BlockCounter(engine.runner.model)
    try:
        _stream(engine, _frames(length, seed=0), [20.0] * length)
    finally:
        counter.remove()
    assert counter.calls == {"temp1": _distinct_triplets(length), "temp2": length}


def test_two_block_calls_per_frame_in_steady_state(model: torch.nn.Module) -> None:
    frames = _frames(9, seed=3)
    engine = StreamingDenoiser(model)
    counter = _BlockCounter(engine.runner.model)   # the engine runs its own copy of the network
    per_push = []
    try:
        for n, frame in enumerate(frames):
            before = dict(counter.calls)
            ready = engine.push(frame, 20.0)
            per_push.append({k: counter.calls[k] - before[k] for k in counter.calls})
            assert len(ready) == (1 if n >= 2 else 0)
            # Memory stays bounded: the window's frames and the stage-1 outputs still needed.
            assert len(engine._frames) <= 5 and len(engine._stage1) <= 4
        before = dict(counter.calls)
        assert len(engine.finish()) == 2
        at_finish = {k: counter.calls[k] - before[k] for k in counter.calls}
    finally:
        counter.remove()
    # Pushes 0 and 1 compute nothing; push 2 completes window 0 (three new triplets).
    assert per_push[:3] == [{"temp1": 0, "temp2": 0}] * 2 + [{"temp1": 3, "temp2": 1}]
    # Steady state: one new triplet through temp1 and one temp2 per output frame.
    assert per_push[3:] == [{"temp1": 1, "temp2": 1}] * 6
    # finish() emits windows 7 (new triplet (7, 8, 7)) and 8 (new triplet (8, 7, 6)).
    assert at_finish == {"temp1": 2, "temp2": 2}
    # 9 frames: 11 temp1 + 9 temp2 = 20 block calls, against 9 * 4 = 36 uncached.
    assert counter.total() == 20


def test_finish_starts_a_new_sequence_and_reset_drops_held_frames(model: torch.nn.Module) -> None:
    first, second = _frames(4, seed=4), _frames(3, seed=5)
    engine = StreamingDenoiser(model)
    out1 = _stream(engine, first, [15.0] * 4)
    out2 = _stream(engine, second, [30.0] * 3)
    assert [i for i, _ in out1 + out2] == list(range(7))   # indices run on across sequences
    torch.testing.assert_close(torch.stack([f for _, f in out2]), denoise_sequence(model, second, 30.0),
                               rtol=0, atol=1e-5)
    engine.push(first[0], 15.0)
    engine.push(first[1], 15.0)
    engine.reset()                                          # frames 7 and 8 are dropped
    out3 = _stream(engine, second[:1], [30.0])
    assert [i for i, _ in out3] == [9]
    torch.testing.assert_close(out3[0][1], denoise_sequence(model, second[:1], 30.0)[0], rtol=0, atol=1e-5)


def test_size_changes_are_refused(model: torch.nn.Module) -> None:
    frames = _frames(3, seed=6)
    engine = StreamingDenoiser(model)
    engine.push(frames[0], 20.0)
    with pytest.raises(ValueError, match="differs"):
        engine.push(torch.rand(3, H + 2, W), 20.0)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        engine.push(torch.rand(1, 3, H, W), 20.0)


def test_held_frames_are_copies_of_the_callers_buffer(model: torch.nn.Module) -> None:
    frames = torch.rand(3, 3, 32, 24, generator=torch.Generator().manual_seed(7))  # no padding needed
    engine = StreamingDenoiser(model)
    buffer = torch.empty(3, 32, 24)
    ready = []
    for frame in frames:
        buffer.copy_(frame)                     # a decoder refilling the same buffer
        ready += engine.push(buffer, 20.0)
    ready += engine.finish()
    torch.testing.assert_close(torch.stack([f for _, f in ready]), denoise_sequence(model, frames, 20.0),
                               rtol=0, atol=1e-5)


def test_a_clipped_channels_own_level_runs_that_channel_again(model: torch.nn.Module) -> None:
    from streamden.noise.estimate import NoiseLevel

    frames = _frames(5, seed=7)
    plain = [10.0 + i for i in range(5)]
    own = [NoiseLevel(s, (3 * s, s, s)) for s in plain]
    expected = denoise_sequence(model, frames, own)            # the reference takes them too
    got = torch.stack([frame for _, frame in _stream(StreamingDenoiser(model), frames, own)])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    base = denoise_sequence(model, frames, plain)
    assert float((got[:, 0] - base[:, 0]).abs().max()) > 1e-3     # red ran at its own level
    # levels whose channels are all the overall one run exactly as plain floats, in one call each
    same = [NoiseLevel(s, (s, s, s)) for s in plain]
    torch.testing.assert_close(denoise_sequence(model, frames, same), base, rtol=0, atol=0)
    # strength scales the channels too
    half = torch.stack([f for _, f in _stream(StreamingDenoiser(model, strength=0.5), frames, own)])
    torch.testing.assert_close(half, denoise_sequence(model, frames, [s.scaled(0.5) for s in own]), rtol=0, atol=1e-5)
