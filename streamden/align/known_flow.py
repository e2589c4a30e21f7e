"""A known-flow test set: real frames warped by motions whose flow is known exactly.

Each pair is a crop of a real frame (the reference) and the same frame resampled by a known
motion (the moving frame), with the exact flow from the reference to the moving frame (the
convention of :mod:`streamden.align`) and a mask of the pixels where that flow is valid.
Four kinds of motion: a global sub-pixel ``translation``, a ``rotation`` and a ``zoom``
about the crop centre, and a ``patch``: a block of texture pasted on top that moves
differently from the (translating) background. Invalid pixels are those whose match leaves
the moving frame, the background the patch covers in the moving frame (occluded), and a
1.5-pixel band along the moving patch's edges (where the moving frame mixes both layers).

The moving frame is built by inverse mapping: each of its pixels samples the source frame
at the exact (float64) position the inverse motion gives, with bicubic interpolation, and
the crop keeps a margin inside the source so no sample falls outside it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("translation", "rotation", "zoom", "patch")


@dataclass(frozen=True)
class KnownFlowPair:
    """A reference and a moving frame ``(3, H, W)`` float32 in [0, 1], their exact flow
    ``(2, H, W)`` (reference -> moving) and the mask ``(1, H, W)`` bool of valid pixels."""

    kind: str
    name: str
    ref: torch.Tensor
    moving: torch.Tensor
    flow: torch.Tensor
    valid: torch.Tensor


def default_data_root() -> Path:
    """``$STREAMDEN_DATA`` if set, else ``shared/data`` next to the repository checkout (may not exist)."""
    override = os.environ.get("STREAMDEN_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def source_frames(data_root: Path, split: str = "val", per_clip: int = 4) -> list[Path]:
    """``per_clip`` frames spread over each clip of ``data_root/<split>/videos``, in a fixed order.

    >>> source_frames(Path("no-such-folder"))
    []
    """
    frames = []
    for clip in sorted(p for p in (Path(data_root) / split / "videos").glob("*") if p.is_dir()):
        files = sorted(clip.glob("*.jpg"))
        if files:
            picks = np.linspace(0, len(files) - 1, min(per_clip, len(files))).round().astype(int)
            frames += [files[i] for i in picks]
    return frames


def load_rgb(path: Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` float64 RGB in [0, 1]."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot read the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0


def affine_pair(image: np.ndarray, matrix: np.ndarray, shift: tuple[float, float], size: int,
                origin: tuple[int, int], kind: str = "affine", name: str = "") -> KnownFlowPair:
    """The pair for the motion ``p -> c + matrix @ (p - c) + shift`` (``c`` the crop centre).

    ``image`` is ``(H, W, 3)`` in [0, 1]; the crop is ``size`` square at ``origin`` ``(x, y)``
    of the image. The crop must keep enough margin that the inverse motion stays inside.

    >>> img = np.random.default_rng(0).random((64, 64, 3))
    >>> pair = affine_pair(img, np.eye(2), (2.0, 0.0), 32, (16, 16))
    >>> torch.allclose(pair.moving[:, :, 2:], pair.ref[:, :, :30], atol=1e-6)  # integer shifts copy pixels
    True
    """
    ys, xs = _grid(size)
    c = (size - 1) / 2.0
    fx, fy = _apply(matrix, shift, xs, ys, c)
    inv = np.linalg.inv(matrix)
    inv_shift = -inv @ np.asarray(shift, dtype=np.float64)
    sx, sy = _apply(inv, inv_shift, xs, ys, c)
    ox, oy = origin
    ref = image[oy:oy + size, ox:ox + size]
    moving = _sample(image, sx + ox, sy + oy)
    flow = np.stack([fx - xs, fy - ys])
    valid = _inside(fx, fy, size)
    return _pair(kind, name, ref, moving, flow, valid)


def make_pair(image: np.ndarray, kind: str, size: int = 256, seed: int = 0, name: str = "") -> KnownFlowPair:
    """A random pair of ``kind`` (one of :data:`KINDS`) from ``image`` ``(H, W, 3)`` in [0, 1].

    Motions: translation up to 10 px; rotation 1-4 degrees; zoom 2-7 %; patch: background
    translation up to 3 px and a ``size // 4`` patch moving up to 10 px differently.

    >>> img = np.random.default_rng(0).random((160, 160, 3))
    >>> pair = make_pair(img, "patch", size=96, seed=1)
    >>> pair.flow.shape, bool(pair.valid.all()), bool(pair.valid.any())
    (torch.Size([2, 96, 96]), False, True)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0])
    matrix, shift = np.eye(2), rng.uniform(-2.0, 2.0, 2)
    if kind == "translation":
        shift = rng.uniform(-10.0, 10.0, 2)
    elif kind == "rotation":
        a = math.radians(sign * rng.uniform(1.0, 4.0))
        matrix = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    elif kind == "zoom":
        matrix = np.eye(2) * (1.0 + sign * rng.uniform(0.02, 0.07))
    else:
        shift = rng.uniform(-3.0, 3.0, 2)
    # Margin: the largest displacement over the crop corners, plus the bicubic support.
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], dtype=np.float64)
    c = (size - 1) / 2.0
    moved = (corners - c) @ np.linalg.inv(matrix).T + c
    margin = int(math.ceil(np.abs(moved - corners).max() + np.abs(shift).max())) + 3
    h, w = image.shape[:2]
    if h < size + 2 * margin or w < size + 2 * margin:
        raise ValueError(f"image {w}x{h} is too small for a {size} crop with a {margin} px margin")
    origin = (int(rng.integers(margin, w - size - margin + 1)), int(rng.integers(margin, h - size - margin + 1)))
    pair = affine_pair(image, matrix, tuple(shift), size, origin, kind, name)
    if kind == "patch":
        pair = _add_patch(image, pair, matrix, tuple(shift), rng)
    return pair


def known_flow_pairs(data_root: Path, split: str = "val", count: int = 8, size: int = 256,
                     seed: int = 0) -> list[KnownFlowPair]:
    """``count`` pairs cycling through :data:`KINDS`, from frames of ``data_root/<split>/videos``.

    >>> pairs = known_flow_pairs(default_data_root(), "val", count=4, size=128)  # doctest: +SKIP
    >>> [p.kind for p in pairs]  # doctest: +SKIP
    ['translation', 'rotation', 'zoom', 'patch']
    """
    frames = source_frames(data_root, split, per_clip=max(1, math.ceil(count / 2)))
    if not frames:
        raise FileNotFoundError(f"no frames under {Path(data_root) / split / 'videos'}")
    # Spread consecutive pairs over the clips: the frame list is grouped by clip.
    order = [frames[(i * 7919) % len(frames)] for i in range(count)] if len(frames) > 1 else frames * count
    pairs = []
    for i, path in enumerate(order):
        kind = KINDS[i % len(KINDS)]
        name = f"{path.parent.name}/{path.stem}:{kind}"
        pairs.append(make_pair(load_rgb(path), kind, size, seed=seed * 100003 + i, name=name))
    return pairs


def add_noise(pair: KnownFlowPair, sigma: float, seed: int = 0) -> KnownFlowPair:
    """The pair with Gaussian noise of ``sigma`` (0-255 scale) on both frames, clipped to [0, 1].

    >>> pair = make_pair(np.full((96, 96, 3), 0.5), "translation", size=48)
    >>> noisy = add_noise(pair, 30.0)
    >>> 0.08 < float((noisy.ref - pair.ref).std()) < 0.14
    True
    """
    gen = torch.Generator().manual_seed(seed)
    noisy = [(f + torch.randn(f.shape, generator=gen) * (sigma / 255.0)).clamp(0, 1)
             for f in (pair.ref, pair.moving)]
    return replace(pair, ref=noisy[0], moving=noisy[1])


def endpoint_error(flow: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Mean end-point error (pixels) of ``flow`` against ``gt`` (``(.., 2, H, W)``) over valid pixels.

    >>> gt = torch.zeros(2, 4, 4)
    >>> endpoint_error(gt + torch.tensor([3.0, 4.0]).view(2, 1, 1), gt)
    5.0
    """
    epe = (flow.float() - gt.float()).square().sum(-3, keepdim=True).sqrt()
    if valid is None:
        return float(epe.mean())
    return float(epe[valid.expand_as(epe)].mean())


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    return ys, xs


def _apply(matrix: np.ndarray, shift, xs: np.ndarray, ys: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = xs - c, ys - c
    return (c + matrix[0, 0] * dx + matrix[0, 1] * dy + shift[0],
            c + matrix[1, 0] * dx + matrix[1, 1] * dy + shift[1])


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bicubic samples of ``image`` ``(H, W, 3)`` at float64 positions ``x``, ``y``: ``(h, w, 3)``.

    torch's grid_sample in float64 rather than cv2.remap, which rounds positions to 1/32 px.
    """
    h, w = image.shape[:2]
    src = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    grid = torch.from_numpy(np.stack([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], -1))[None]
    out = F.grid_sample(src, grid, mode="bicubic", padding_mode="border", align_corners=True)
    return out[0].numpy().transpose(1, 2, 0)


def _inside(x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    return (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)


def _in_rect(x: np.ndarray, y: np.ndarray, left: float, top: float, side: float, pad: float) -> np.ndarray:
    return (x >= left - pad) & (x <= left + side - 1 + pad) & (y >= top - pad) & (y <= top + side - 1 + pad)


def _add_patch(image: np.ndarray, pair: KnownFlowPair, matrix: np.ndarray, shift, rng) -> KnownFlowPair:
    size = pair.ref.shape[-1]
    side = size // 4
    h, w = image.shape[:2]
    while True:
        d = rng.uniform(-10.0, 10.0, 2)
        if np.abs(d - np.asarray(shift)).max() >= 3.0:
            break
    # Integer position in the reference, with room for the motion inside the crop.
    room = 12
    px, py = (int(v) for v in rng.integers(room, size - side - room + 1, 2))
    # Texture from elsewhere in the source frame (2 px in, for the bicubic support).
    sx, sy = int(rng.integers(2, w - side - 2)), int(rng.integers(2, h - side - 2))
    ys, xs = _grid(size)
    ref = pair.ref.permute(1, 2, 0).double().numpy().copy()
    moving = pair.moving.permute(1, 2, 0).double().numpy().copy()
    ref[py:py + side, px:px + side] = image[sy:sy + side, sx:sx + side]
    left, top = px + d[0], py + d[1]
    covered = _in_rect(xs, ys, left, top, side, 0.0)
    texture = _sample(image, xs - left + sx, ys - top + sy)
    moving[covered] = texture[covered]
    in_ref_patch = _in_rect(xs, ys, px, py, side, 0.0)
    c = (size - 1) / 2.0
    bx, by = _apply(matrix, shift, xs, ys, c)
    fx = np.where(in_ref_patch, xs + d[0], bx)
    fy = np.where(in_ref_patch, ys + d[1], by)
    background_ok = ~_in_rect(bx, by, left, top, side, 1.5)
    patch_ok = _in_rect(fx, fy, left, top, side, -1.5)
    valid = _inside(fx, fy, size) & np.where(in_ref_patch, patch_ok, background_ok)
    return _pair(pair.kind, pair.name, ref, moving, np.stack([fx - xs, fy - ys]), valid)


def _pair(kind: str, name: str, ref: np.ndarray, moving: np.ndarray, flow: np.ndarray,
          valid: np.ndarray) -> KnownFlowPair:
    as_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().clamp(0, 1)  # noqa: E731
    return KnownFlowPair(kind, name, as_chw(ref), as_chw(moving), torch.from_numpy(flow).float(),
                         torch.from_numpy(valid)[None].bool())
