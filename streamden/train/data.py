"""Training data: clips and stills decoded once into memory, random 5-frame patches from them.

Sources are folders of consecutive frames (DAVIS-like), folders of such folders, video files
(decoded with PyAV) and still photos (which become clips through :mod:`.motion`). Everything
is held as uint8 tensors ``(T, 3, H, W)`` so sampling a batch is a few slices, never a decode.

>>> import torch
>>> from streamden.train.config import DataConfig, MotionConfig
>>> bank = FrameBank(clips=[torch.zeros(8, 3, 40, 40, dtype=torch.uint8)], stills=[])
>>> sampler = PatchSampler(bank, DataConfig(patch=32), MotionConfig(), seed=0)
>>> sampler.sample(4).shape
torch.Size([4, 5, 3, 32, 32])
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch

from ..align.color import rgb_to_luma_torch
from ..errors import InputError
from .motion import margin_for, still_to_clip

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".y4m", ".mpg", ".mpeg", ".ts"}

# The ``colour`` augmentation: chroma scaled around luma by a factor in this range, then each
# channel by a gain log-uniform in [1 / data.colour_gain, data.colour_gain]. Our footage has almost no
# strongly coloured areas (under 1 % of pixels with one channel below 30 and another 150 above
# it), while an aquarium, a stage or a neon sign is mostly that. A channel pushed out of
# [0, 1] is rescaled into it, not clipped: clipping would add flat areas at 0 and 1, and a
# network trained on many of those learns to pull every dark or bright value to the bound.
COLOUR_SATURATION = (1.0, 3.0)
COLOUR_TARGET = (0.03, 0.95)    # data.colour_target: each channel's mean drawn uniform in this range


def colour_cast(clip: torch.Tensor, saturation: float, gains: torch.Tensor | None = None,
                target: torch.Tensor | None = None) -> torch.Tensor:
    """``(T, 3, H, W)`` frames in [0, 1] with their chroma scaled by ``saturation`` around the
    luma, then each channel multiplied by its gain (``gains``, 3 values); a channel that leaves
    [0, 1] is mapped back linearly (its values over the whole clip), so nothing is clipped.
    With ``target`` (3 means in [0, 1]) instead of gains, each channel is moved to its target
    mean over the clip, its deviations from the mean scaled down where they would leave [0, 1]:
    a deep colour such as an aquarium's (13, 84, 226), with its dark channel nearly flat, which
    gains drawn around 1 rarely reach.

    >>> grey = torch.full((1, 3, 2, 2), 0.5)
    >>> colour_cast(grey, 3.0, torch.tensor([1.0, 1.0, 1.0])).equal(grey)
    True
    >>> ramp = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    >>> colour_cast(ramp, 1.0, torch.tensor([0.5, 1.0, 2.0]))[0, :, 0, 1].tolist()
    [0.125, 0.25, 0.25]
    >>> [round(v, 3) for v in colour_cast(ramp, 1.0, target=torch.tensor([0.05, 0.33, 0.6])).mean((0, 2, 3)).tolist()]
    [0.05, 0.33, 0.6]
    """
    if (gains is None) == (target is None):
        raise ValueError("colour_cast: give either gains or target")
    luma = rgb_to_luma_torch(clip)
    out = luma + saturation * (clip - luma)
    if target is not None:
        mean = out.mean(dim=(0, 2, 3), keepdim=True)
        target = target.to(out.dtype).view(1, 3, 1, 1)
        below = (mean - out.amin(dim=(0, 2, 3), keepdim=True)).clamp_min(1e-6)
        above = (out.amax(dim=(0, 2, 3), keepdim=True) - mean).clamp_min(1e-6)
        scale = torch.minimum(torch.ones_like(mean), torch.minimum(target / below, (1 - target) / above))
        return (target + (out - mean) * scale).clamp(0.0, 1.0)   # the clamp only removes rounding
    out = out * gains.view(1, 3, 1, 1)
    low = out.amin(dim=(0, 2, 3), keepdim=True).clamp(max=0.0)
    high = out.amax(dim=(0, 2, 3), keepdim=True).clamp(min=1.0)
    return (out - low) / (high - low)


def _resize_long_side(img: np.ndarray, max_long_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max_long_side <= 0 or max(h, w) <= max_long_side:
        return img
    s = max_long_side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def read_image(path: str | os.PathLike, max_long_side: int = 0) -> torch.Tensor:
    """One RGB image as a uint8 tensor ``(3, H, W)``.

    >>> read_image("frame.png").shape  # doctest: +SKIP
    torch.Size([3, 480, 854])
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot read image")
    img = _resize_long_side(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), max_long_side)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (frame order)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def read_frame_folder(folder: str | os.PathLike, max_long_side: int = 0, max_frames: int = 0) -> torch.Tensor:
    """A folder of consecutive frames as uint8 ``(T, 3, H, W)``.

    >>> read_frame_folder("../shared/data/val/videos/da_demo1").shape  # doctest: +SKIP
    torch.Size([16, 3, 448, 832])
    """
    files = image_files(folder)
    if max_frames > 0:
        files = files[:max_frames]
    if not files:
        raise InputError(f"{folder}: no image frames found")
    return torch.stack([read_image(f, max_long_side) for f in files])


def read_video_file(path: str | os.PathLike, max_long_side: int = 0, max_frames: int = 0) -> torch.Tensor:
    """Decode a video file with PyAV into uint8 ``(T, 3, H, W)`` RGB frames.

    >>> read_video_file("clip.mp4").dtype  # doctest: +SKIP
    torch.uint8
    """
    import av  # lazily: the GPU machines have no PyAV
    from av.video.reformatter import VideoReformatter

    from ..io.pixels import video_frame_to_rgb

    frames = []
    reformatter = VideoReformatter()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                img = _resize_long_side(video_frame_to_rgb(reformatter, frame, deep=False), max_long_side)
                frames.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))
                if max_frames > 0 and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: cannot decode video ({exc})") from exc
    if not frames:
        raise InputError(f"{path}: no frames decoded")
    return torch.stack(frames)


def find_clips(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand sources into clips: a video file, a folder of frames, or a folder of clip folders.

    >>> find_clips(["../shared/data/train/videos"])[:1]  # doctest: +SKIP
    [PosixPath('../shared/data/train/videos/da_demo2')]
    """
    clips: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            clips.append(p)
        elif p.is_dir():
            if image_files(p):
                clips.append(p)
            else:
                subs = sorted(q for q in p.iterdir() if q.is_dir() or q.suffix.lower() in VIDEO_EXTS)
                found = find_clips(subs)
                if not found:
                    raise InputError(f"{p}: no clips (frame folders or video files) found")
                clips.extend(found)
        else:
            raise InputError(f"{p}: no such file or folder")
    return clips


def read_clip(path: str | os.PathLike, max_long_side: int = 0, max_frames: int = 0) -> torch.Tensor:
    """A clip (folder of frames or video file) as uint8 ``(T, 3, H, W)``."""
    p = Path(path)
    if p.is_dir():
        return read_frame_folder(p, max_long_side, max_frames)
    return read_video_file(p, max_long_side, max_frames)


def find_stills(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files among ``paths``, folders searched recursively, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTS))
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


@dataclass
class FrameBank:
    """Decoded training material in memory: clips ``(T, 3, H, W)`` and stills ``(3, H, W)``, uint8.

    >>> bank = FrameBank(clips=[torch.zeros(5, 3, 8, 8, dtype=torch.uint8)], stills=[])
    >>> bank.describe()
    '1 clips (5 frames), 0 stills, 0.0 MiB'
    """

    clips: list[torch.Tensor] = field(default_factory=list)
    stills: list[torch.Tensor] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, data_cfg, min_size: int = 0, min_frames: int = 5) -> "FrameBank":
        """Decode every source of a DataConfig; clips shorter than ``min_frames`` or smaller than
        ``min_size`` and stills smaller than ``min_size`` are dropped, and so is every clip of
        ``val_videos`` (a clip held out from a training folder for validation).

        >>> FrameBank.load(DataConfig(videos=["../shared/data/train/videos"]))  # doctest: +SKIP
        """
        clips, names, stills = [], [], []
        held_out = {p.resolve() for p in find_clips(data_cfg.val_videos)}
        for path in find_clips(data_cfg.videos):
            if path.resolve() in held_out:
                continue
            clip = read_clip(path, data_cfg.max_long_side, data_cfg.max_frames_per_clip)
            if clip.shape[0] >= min_frames and min(clip.shape[-2:]) >= min_size:
                clips.append(clip)
                names.append(str(path))
        for path in find_stills(data_cfg.stills):
            img = read_image(path, data_cfg.max_long_side)
            if min(img.shape[-2:]) >= min_size:
                stills.append(img)
        if not clips and not stills:
            raise InputError("training data: no usable clips or stills in the configured sources")
        return cls(clips, stills, names)

    def describe(self) -> str:
        """One line: counts and memory."""
        nbytes = sum(c.numel() for c in self.clips) + sum(s.numel() for s in self.stills)
        frames = sum(c.shape[0] for c in self.clips)
        return f"{len(self.clips)} clips ({frames} frames), {len(self.stills)} stills, {nbytes / 2**20:.1f} MiB"


class PatchSampler:
    """Random ``frames``-long patch clips from a :class:`FrameBank`, float32 in [0, 1].

    Each sample is a random clip window or a still with synthetic motion (``still_fraction``),
    then the same flips, 90-degree rotation, temporal reversal, photometric inversion
    (``invert``), RGB permutation (``channel_shuffle``) and strong colours (``colour``, see
    :func:`colour_cast`) are applied to all of its frames. All randomness comes from one
    seeded generator: two samplers with the same seed
    give identical batches, and :meth:`state_dict` lets training resume the stream.

    >>> from streamden.train.config import DataConfig, MotionConfig
    >>> bank = FrameBank(clips=[], stills=[torch.zeros(3, 64, 64, dtype=torch.uint8)])
    >>> PatchSampler(bank, DataConfig(patch=32), MotionConfig(), seed=1).sample(2).shape
    torch.Size([2, 5, 3, 32, 32])
    """

    def __init__(self, bank: FrameBank, data_cfg, motion_cfg, seed: int = 0):
        self.bank, self.cfg, self.motion = bank, data_cfg, motion_cfg
        self.patch, self.frames = data_cfg.patch, data_cfg.frames
        self.generator = torch.Generator().manual_seed(seed)
        self.margin = margin_for(self.patch, self.frames, motion_cfg)
        still_size = self.patch + 2 * self.margin
        self.clips = [c for c in bank.clips if c.shape[0] >= self.frames and min(c.shape[-2:]) >= self.patch]
        self.stills = [s for s in bank.stills if min(s.shape[-2:]) >= still_size]
        if not self.clips and not self.stills:
            raise InputError(f"training data: no clip of {self.frames} frames or still big enough for patch {self.patch}")

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def _clip_sample(self) -> torch.Tensor:
        clip = self.clips[self._randint(len(self.clips))]
        t = self._randint(clip.shape[0] - self.frames + 1)
        y = self._randint(clip.shape[-2] - self.patch + 1)
        x = self._randint(clip.shape[-1] - self.patch + 1)
        return clip[t:t + self.frames, :, y:y + self.patch, x:x + self.patch].float() / 255.0

    def _still_crop(self) -> torch.Tensor:
        size = self.patch + 2 * self.margin
        img = self.stills[self._randint(len(self.stills))]
        y = self._randint(img.shape[-2] - size + 1)
        x = self._randint(img.shape[-1] - size + 1)
        return img[:, y:y + size, x:x + size].float() / 255.0

    def _augment(self, clip: torch.Tensor) -> torch.Tensor:
        flags = torch.rand(4, generator=self.generator)
        k = self._randint(4)
        if self.cfg.flips and flags[0] < 0.5:
            clip = clip.flip(-1)
        if self.cfg.flips and flags[1] < 0.5:
            clip = clip.flip(-2)
        if self.cfg.rot90 and k:
            clip = torch.rot90(clip, k, dims=(-2, -1))
        if self.cfg.reverse and flags[2] < 0.5:
            clip = clip.flip(0)
        if flags[3] < self.cfg.invert:
            clip = 1.0 - clip
        if self.cfg.channel_shuffle:
            clip = clip[:, torch.randperm(3, generator=self.generator)]
        if self.cfg.colour > 0 and float(torch.rand(1, generator=self.generator)) < self.cfg.colour:
            low, high = COLOUR_SATURATION
            saturation = low + (high - low) * float(torch.rand(1, generator=self.generator))
            # gains are drawn in both modes: the ablation of colour_target ran with this draw order
            gains = self.cfg.colour_gain ** (2 * torch.rand(3, generator=self.generator) - 1)
            if self.cfg.colour_target > 0 and float(torch.rand(1, generator=self.generator)) < self.cfg.colour_target:
                low, high = COLOUR_TARGET
                clip = colour_cast(clip, saturation, target=low + (high - low) * torch.rand(3, generator=self.generator))
            else:
                clip = colour_cast(clip, saturation, gains)
        return clip

    def sample(self, batch: int) -> torch.Tensor:
        """A batch ``(batch, frames, 3, patch, patch)`` float32 in [0, 1]."""
        use_still = torch.rand(batch, generator=self.generator) < self.cfg.still_fraction
        if not self.stills:
            use_still[:] = False
        if not self.clips:
            use_still[:] = True
        out = torch.empty(batch, self.frames, 3, self.patch, self.patch)
        still_idx = [i for i in range(batch) if use_still[i]]
        for i in range(batch):
            if not use_still[i]:
                out[i] = self._clip_sample()
        if still_idx:
            crops = torch.stack([self._still_crop() for _ in still_idx])
            moved = still_to_clip(crops, self.frames, self.patch, self.motion, self.generator)
            out[still_idx] = moved
        for i in range(batch):
            out[i] = self._augment(out[i])
        return out

    def state_dict(self) -> dict:
        """The generator state, for checkpoints."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the generator state saved by :meth:`state_dict`."""
        self.generator.set_state(state["generator"])


def load_val_clips(paths: Iterable[str | os.PathLike], frames: int, crop: int,
                   max_long_side: int = 0) -> list[tuple[str, torch.Tensor]]:
    """Held-out clips for validation: the first ``frames`` frames, centre ``crop`` square (uint8).

    >>> load_val_clips(["../shared/data/val/videos"], 7, 128)[0][1].shape  # doctest: +SKIP
    torch.Size([7, 3, 128, 128])
    """
    out = []
    for path in find_clips(paths):
        clip = read_clip(path, max_long_side, frames)
        h, w = clip.shape[-2:]
        ch, cw = min(crop, h) // 4 * 4, min(crop, w) // 4 * 4
        top, left = (h - ch) // 2, (w - cw) // 2
        out.append((Path(path).name, clip[:, :, top:top + ch, left:left + cw].contiguous()))
    return out
