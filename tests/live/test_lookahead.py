"""Causal look-ahead of the streaming engine: 2 is unchanged, 1 and 0 reflect past frames."""
import pytest
import torch

from streamden.models.streaming import StreamingDenoiser, denoise_sequence, window_indices
from tests.nets import random_fastdvdnet


def reference(model, frames: torch.Tensor, t: int, idx: tuple[int, ...], sigma: float) -> torch.Tensor:
    """Frame t denoised on the window ``idx`` (source indices), the plain way."""
    from streamden.models.fastdvdnet import crop_to, pad_to_multiple

    padded, size = pad_to_multiple(frames)
    window = padded[list(idx)]
    triplets = torch.stack([window[i:i + 3] for i in range(3)])
    maps = torch.full((3, 1, *padded.shape[-2:]), sigma / 255.0)
    with torch.no_grad():
        middle = model.stage1(triplets, maps)
        out = model.stage2(middle.unsqueeze(0), maps[:1])
    return crop_to(out[0], size).clamp(0, 1)


@pytest.fixture(scope="module")
def model():
    return random_fastdvdnet(seed=3)


def run(model, frames, lookahead):
    engine = StreamingDenoiser(model, lookahead=lookahead)
    outputs, ready_at = [], []
    for n, frame in enumerate(frames):
        ready = engine.push(frame, 20.0)
        ready_at += [(i, n) for i, _ in ready]
        outputs += ready
    outputs += engine.finish()
    return outputs, ready_at


def test_default_lookahead_is_two_and_matches_the_reference(model):
    frames = torch.rand(6, 3, 14, 18)
    outputs, ready_at = run(model, frames, 2)
    assert StreamingDenoiser(model).lookahead == 2
    assert ready_at == [(t, t + 2) for t in range(4)]
    expected = denoise_sequence(model, frames, 20.0)
    torch.testing.assert_close(torch.stack([o for _, o in outputs]), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("lookahead", [0, 1])
def test_causal_lookahead_reflects_past_frames(model, lookahead):
    frames = torch.rand(6, 3, 14, 18)
    outputs, ready_at = run(model, frames, lookahead)
    count = len(frames)
    assert ready_at == [(t, t + lookahead) for t in range(count - lookahead)]   # latency = look-ahead
    assert [i for i, _ in outputs] == list(range(count))
    for t, out in outputs:
        length = t + lookahead + 1 if t + lookahead < count else count
        idx = window_indices(t, length)
        assert max(idx) <= t + lookahead                          # never a frame from the future
        torch.testing.assert_close(out, reference(model, frames, t, idx, 20.0), atol=1e-5, rtol=1e-4)
    if lookahead == 1:
        assert window_indices(3, 5) == (1, 2, 3, 4, 3)
    else:
        assert window_indices(3, 4) == (1, 2, 3, 2, 1)


def test_bad_lookahead_is_refused(model):
    with pytest.raises(ValueError, match="lookahead"):
        StreamingDenoiser(model, lookahead=3)
