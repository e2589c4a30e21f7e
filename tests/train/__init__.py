"""Tiny in-memory training material for the train tests."""
import numpy as np
import torch

from streamden.train.config import DataConfig, MotionConfig, TrainConfig
from streamden.train.data import FrameBank


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (float, [0, 1], (3, H, W)): blurred noise, so warps are measurable."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min())
    return img.transpose(2, 0, 1)


def tiny_bank(frames: int = 8, size: int = 48, stills: int = 1) -> FrameBank:
    """One moving clip (a texture scrolling 1 px per frame) and a few textured stills, uint8."""
    base = textured(size, size + frames, seed=1)
    clip = np.stack([base[:, :, t:t + size] for t in range(frames)])
    to_u8 = lambda a: torch.from_numpy((a * 255).round().astype(np.uint8))  # noqa: E731
    return FrameBank(clips=[to_u8(clip)], stills=[to_u8(textured(80, 80, seed=2 + i)) for i in range(stills)])


def tiny_config(tmp_path, clip_dir, **kw) -> TrainConfig:
    """A TrainConfig for a few fast CPU steps on ``clip_dir`` (patch 32, batch 4), validated on a
    second clip written under ``tmp_path`` (a validation clip is never trained on)."""
    from tests.media import make_image_sequence

    val_dir = make_image_sequence(tmp_path / "val" / "v", frames=7, size=(40, 40), pattern="moving")
    cfg = TrainConfig(
        work_dir=str(tmp_path / "run"), device="cpu", threads=1, batch=4, steps=30, cpu_bf16=False,
        log_every=5, val_every=10, val_frames=1, val_crop=32, checkpoint_every=10,
        data=DataConfig(videos=[str(clip_dir)], stills=[], val_videos=[str(val_dir)], patch=32, still_fraction=0.0),
        motion=MotionConfig(),
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg
