import numpy as np
import pytest
import torch

from streamden.errors import InputError
from streamden.train.config import DataConfig, MotionConfig
from streamden.train.data import FrameBank, PatchSampler, colour_cast, find_clips, load_val_clips, read_clip
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


def test_colour_cast_saturates_without_clipping():
    # Issue 19: strong colours must not come with flat areas at 0 or 1 (clipped training
    # content taught the network to pull dark and bright values to the bound).
    rng = np.random.default_rng(1)   # a greyish scene: luma 0.3-0.7, chroma within +-0.05
    clip = torch.from_numpy(rng.uniform(0.3, 0.7, (5, 1, 16, 16)) + rng.uniform(-0.05, 0.05, (5, 3, 16, 16))).float()
    out = colour_cast(clip, 3.0, torch.tensor([0.5, 1.0, 2.0]))
    assert out.shape == clip.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    luma = 0.299 * clip[:, 0] + 0.587 * clip[:, 1] + 0.114 * clip[:, 2]
    for c in range(3):   # each channel an affine map of its saturated values: nothing clamped
        saturated = (luma + 3.0 * (clip[:, c] - luma)).flatten()
        assert float(torch.corrcoef(torch.stack([saturated, out[:, c].flatten()]))[0, 1]) > 0.99999
        assert int((out[:, c] == 0).sum()) <= 1 and int((out[:, c] == 1).sum()) <= 1
    means = out.mean(dim=(0, 2, 3))   # a colour cast: red darkened, blue brightened
    assert float(means[2] - means[0]) > 0.3 > float((clip.mean(dim=(0, 2, 3))).std())


def test_colour_target_reaches_deep_colours_without_clipping():
    # data.colour_target: an aquarium's (13, 84, 226) is out of reach of gains drawn around 1
    # on a greyish scene; the target mode moves each channel's mean there, its texture scaled
    # down (never clipped) where it would leave [0, 1].
    rng = np.random.default_rng(2)
    clip = torch.from_numpy(rng.uniform(0.1, 0.9, (5, 1, 16, 16)) + rng.uniform(-0.05, 0.05, (5, 3, 16, 16))).float()
    target = torch.tensor([13.0, 84.0, 226.0]) / 255
    out = colour_cast(clip, 1.5, target=target)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), target, atol=1e-4)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    luma = 0.299 * clip[:, 0] + 0.587 * clip[:, 1] + 0.114 * clip[:, 2]
    for c in range(3):
        saturated = (luma + 1.5 * (clip[:, c] - luma)).flatten()
        assert float(torch.corrcoef(torch.stack([saturated, out[:, c].flatten()]))[0, 1]) > 0.99999
    assert float(out[:, 0].std()) < 0.5 * float(out[:, 1].std())   # the dark channel squeezed, not cut


def test_colour_share_is_seeded_and_off_by_default():
    bank = tiny_bank()
    plain = PatchSampler(bank, DataConfig(patch=32), MotionConfig(), seed=5).sample(8)
    again = PatchSampler(bank, DataConfig(patch=32, colour=0.0), MotionConfig(), seed=5).sample(8)
    assert torch.equal(plain, again)   # colour 0 draws nothing: older runs resume unchanged
    cfg = DataConfig(patch=32, colour=1.0)
    a, b = (PatchSampler(bank, cfg, MotionConfig(), seed=5).sample(8) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, plain)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    deep = PatchSampler(bank, DataConfig(patch=32, colour=1.0, colour_target=1.0), MotionConfig(), seed=5).sample(8)
    assert not torch.equal(deep, a) and 0.0 <= float(deep.min()) and float(deep.max()) <= 1.0


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
