import numpy as np
import pytest
import torch

from streamden.errors import InputError
from streamden.train.config import DataConfig, MotionConfig
from streamden.train.data import FrameBank, PatchSampler, find_clips, load_val_clips, read_clip
from tests.media import make_image_sequence, make_video
from tests.train import tiny_bank


def test_sample_shape_dtype_range():
    sampler = PatchSampler(tiny_bank(), DataConfig(patch=32, still_fraction=0.5), MotionConfig(), seed=0)
    batch = sampler.sample(6)
    assert batch.shape == (6, 5, 3, 32, 32)
    assert batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0


def test_same_seed_same_batches_and_state_resumes():
    cfg = DataConfig(patch=32, still_fraction=0.5)
    a = PatchSampler(tiny_bank(), cfg, MotionConfig(), seed=7)
    b = PatchSampler(tiny_bank(), cfg, MotionConfig(), seed=7)
    c = PatchSampler(tiny_bank(), cfg, MotionConfig(), seed=8)
    first = a.sample(4)
    assert torch.equal(first, b.sample(4))
    assert not torch.equal(first, c.sample(4))
    state = a.state_dict()
    nxt = a.sample(4)
    a.load_state_dict(state)
    assert torch.equal(nxt, a.sample(4))


def test_augmentations_keep_clip_alignment():
    # Frame t holds a fixed pattern plus 10*t: after flips, rotations and reversal every frame
    # must still carry the same pattern, and the offsets must run in (possibly reversed) order.
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 100, (3, 40, 40))
    clip = torch.from_numpy(np.stack([pattern + 10 * t for t in range(7)]).astype(np.uint8))
    cfg = DataConfig(patch=24, still_fraction=0.0)
    sampler = PatchSampler(FrameBank(clips=[clip], stills=[]), cfg, MotionConfig(), seed=3)
    reversed_seen = forward_seen = False
    for sample in sampler.sample(32):
        diffs = torch.round((sample - sample[0]) * 255)
        steps = diffs.flatten(1)
        assert torch.all(steps == steps[:, :1]), "frames are spatially misaligned"
        offsets = steps[:, 0]
        delta = offsets[1:] - offsets[:-1]
        assert torch.all(delta == 10) or torch.all(delta == -10)
        forward_seen |= bool(delta[0] > 0)
        reversed_seen |= bool(delta[0] < 0)
    assert forward_seen and reversed_seen


def test_stills_only_sampler_gives_moving_clips():
    sampler = PatchSampler(tiny_bank(stills=2), DataConfig(patch=32, still_fraction=1.0), MotionConfig(), seed=0)
    batch = sampler.sample(4)
    assert batch.shape == (4, 5, 3, 32, 32)
    assert float((batch[:, 0] - batch[:, 2]).abs().mean()) > 1e-3


def test_folder_and_video_sources(tmp_path):
    make_image_sequence(tmp_path / "clips" / "a", frames=6, size=(48, 40))
    make_video(tmp_path / "clips" / "b.mp4", frames=6, size=(48, 40))
    clips = find_clips([tmp_path / "clips"])
    assert [c.name for c in clips] == ["a", "b.mp4"]
    for path in clips:
        frames = read_clip(path)
        assert frames.dtype == torch.uint8 and frames.shape == (6, 3, 40, 48)
    bank = FrameBank.load(DataConfig(videos=[str(tmp_path / "clips")], max_long_side=24))
    assert len(bank.clips) == 2 and max(bank.clips[0].shape[-2:]) == 24
    val = load_val_clips([tmp_path / "clips" / "a"], frames=5, crop=32)
    assert val[0][1].shape == (5, 3, 32, 32)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        find_clips([tmp_path / "nope"])
