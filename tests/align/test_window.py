"""WindowAligner: flows estimated once per frame pair, and the aligned streaming engine."""
import numpy as np
import pytest
import torch

from streamden.align import DISFlow, WindowAligner, align_windows, make_aligner
from streamden.config import AlignConfig
from streamden.errors import ConfigError
from streamden.models.streaming import StreamingDenoiser, denoise_sequence
from tests.nets import random_fastdvdnet


def _moving_frames(count: int, size: int = 64, step: int = 2) -> torch.Tensor:
    """A textured scene panning right by ``step`` pixels a frame: frame t shows x + t * step."""
    rng = np.random.default_rng(0)
    scene = torch.from_numpy(rng.random((3, size, size + count * step), dtype=np.float32))
    scene = torch.nn.functional.avg_pool2d(scene[None], 3, 1, 1)[0]      # smooth: trackable texture
    return torch.stack([scene[:, :, t * step: t * step + size] for t in range(count)])


def test_aligned_neighbours_match_the_centre_frame():
    frames = _moving_frames(5)
    aligner = WindowAligner(DISFlow("medium", prefilter=0.0))
    aligned, masks = aligner.align(list(frames), (0, 1, 2, 3, 4))
    inner = (..., slice(8, -8), slice(8, -8))
    before = (frames[0] - frames[2]).abs()[inner].mean()
    after = (aligned[0] - frames[2]).abs()[inner].mean()
    assert after < before / 5
    torch.testing.assert_close(aligned[2], frames[2])
    assert masks[2].min() == 1.0
    assert masks[0][..., :, 8:-8].mean() > 0.7       # most of the overlap is trusted


def test_each_frame_pair_is_estimated_once_while_the_window_slides():
    frames = _moving_frames(9, size=32)
    aligner = WindowAligner(DISFlow("fast"))
    engine = StreamingDenoiser(random_fastdvdnet(), aligner=aligner)
    for frame in frames:
        engine.push(frame, 20.0)
    engine.finish()
    # Ordered pairs at distance 1 and 2 in 9 frames: 2 * (8 + 7).
    assert aligner.pairs_estimated == 30


def test_streaming_with_alignment_equals_the_reference():
    frames = _moving_frames(7, size=36)
    model = random_fastdvdnet()
    expected = denoise_sequence(model, frames, 25.0, WindowAligner(DISFlow("fast")))
    engine = StreamingDenoiser(model, aligner=WindowAligner(DISFlow("fast")))
    outs = [o for f in frames for _, o in engine.push(f, 25.0)] + [o for _, o in engine.finish()]
    torch.testing.assert_close(torch.stack(outs), expected, atol=1e-6, rtol=0)


def test_occlusion_centre_replaces_rejected_pixels_with_the_centre():
    frames = _moving_frames(5, size=32, step=3)
    aligned, masks = WindowAligner(DISFlow("fast"), occlusion="centre").align(list(frames), tuple(range(5)))
    rejected = masks[0, 0] == 0
    assert rejected.any()                            # the left strip has no match in frame 0
    torch.testing.assert_close(aligned[0][:, rejected], frames[2][:, rejected])


def test_align_windows_batches_independent_windows():
    windows = torch.stack([_moving_frames(5, size=32), _moving_frames(5, size=32).flip(-1)])
    out = align_windows(windows, WindowAligner(DISFlow("fast")))
    assert out.shape == windows.shape
    torch.testing.assert_close(out[:, 2], windows[:, 2])


def test_make_aligner_follows_the_model_in_auto_mode():
    cpu = torch.device("cpu")
    assert make_aligner(AlignConfig(mode="auto"), cpu, "none") is None
    assert isinstance(make_aligner(AlignConfig(mode="auto"), cpu, "flow"), WindowAligner)
    assert make_aligner(AlignConfig(mode="none"), cpu, "flow") is None
    with pytest.raises(ConfigError, match="align.mode"):
        make_aligner(AlignConfig(mode="sideways"), cpu)
    with pytest.raises(ConfigError, match="align.preset"):
        make_aligner(AlignConfig(mode="flow", flow="dis", preset="slowest"), cpu)


@pytest.mark.parametrize("batch", [1, 2])
def test_triplet_alignment_streams_exactly_like_its_reference_with_two_blocks_per_frame(batch: int) -> None:
    from streamden.models.accel import InferenceOptions

    model = random_fastdvdnet(seed=2)
    frames = torch.rand(7, 3, 24, 32, generator=torch.Generator().manual_seed(7))
    expected = denoise_sequence(model, frames, 25.0, WindowAligner(DISFlow("fast"), window="triplet"))
    aligner = WindowAligner(DISFlow("fast"), window="triplet")
    engine = StreamingDenoiser(model, options=InferenceOptions.naive().with_(batch=batch), aligner=aligner)
    seen = []
    engine.runner.model.temp1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    out = [f for frame in frames for _, f in engine.push(frame, 25.0)] + [f for _, f in engine.finish()]
    torch.testing.assert_close(torch.stack(out), expected, rtol=0, atol=2e-5)
    assert sum(seen) == 9   # the distinct triplets of 7 frames, as without alignment
    # Only neighbouring frames are paired: 6 pairs each way.
    assert aligner.pairs_estimated == 12


def test_triplet_alignment_differs_from_no_alignment_and_window_alignment() -> None:
    model = random_fastdvdnet(seed=2)
    frames = torch.rand(5, 3, 24, 32, generator=torch.Generator().manual_seed(8))
    plain = denoise_sequence(model, frames, 25.0)
    window = denoise_sequence(model, frames, 25.0, WindowAligner(DISFlow("fast")))
    triplet = denoise_sequence(model, frames, 25.0, WindowAligner(DISFlow("fast"), window="triplet"))
    assert not torch.allclose(triplet, plain, atol=1e-4) and not torch.allclose(triplet, window, atol=1e-4)


def test_unknown_window_mode_is_a_config_error() -> None:
    from streamden.errors import ConfigError

    with pytest.raises(ConfigError, match="align.window"):
        WindowAligner(DISFlow("fast"), window="pairs")
