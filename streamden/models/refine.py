"""A flow-aligned Wiener pass over the network's output (``model.refine``).

The network's output for a frame (the *pilot*) and the pilots of the two frames before it
are warped onto that frame, and the three noisy frames with the same flows. The flows are
estimated on the noisy frames (prefiltered as ``align`` says): the decoded input is the same
bits in every run, so a resumed or Ray job gives the same frames (flows on the pilots scored
the same and are not). Every 8x8 block (every
``stride`` pixels) of the aligned stacks goes through a 3-D DCT (8x8 in space, over the frames
in time) in an opponent colour space, and each coefficient of the noisy stack is shrunk by the
empirical Wiener gain ``P^2 / (P^2 + V)`` of the pilot's coefficient ``P``: BM3D's second
stage, with the flow in place of block matching. ``V``, the noise variance of each 3-D
frequency and colour channel, is measured on the window itself as the mean square of the
residual noisy - pilot on non-overlapping blocks: blind, so it follows what a codec left of
the noise (less at fine detail, correlated from frame to frame) and what ``--strength`` asks
(times ``strength^2``). The block's mean over the window (the 3-D DC) is the pilot's: the
network corrects the bias of noise clipped at black, the noisy mean keeps it. Blocks are
averaged back with BM3D's weights ``1 / sum(gain^2 V)``.

The window looks back only (frames ``t-2, t-1, t``, fewer at the start of a sequence), so the
pass adds no latency: it runs on each pilot as it comes out. Frame ``t``'s output then depends
on the frames ``t-4 .. t+2`` (see :data:`streamden.segments.CONTEXT_BEFORE`).

Measured on the validation clips (benchmarks/refine_quality.py, README "Real footage"): +0.36
to +0.78 dB over the network alone on every row of the realistic gate, +0.86 to +1.35 dB on
white Gaussian noise at a known sigma.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..align import WindowAligner
from ..align.flow import FlowEstimator

BLOCK = 8          # block side (pixels)
FRAMES = 3         # the output frame and the two before it
STRIDE = 3         # pixels between blocks: 2 is 0.04 dB better on average at 2.25x the cost, 4 is 0.13 dB worse
#: Noise variance multiplier: the residual under-reads what the gain should remove. Chosen on
#: training clips (benchmarks/refine_quality.py): 2 suits white and camera noise best, 3 codec
#: noise; 2.5 is within 0.1 dB of the better of the two on every kind.
SCALE = 2.5
BAND = 32          # block rows per band (memory: about 100 MB of coefficients a band at 1920 pixels wide)

#: Orthonormal opponent colour transform (rows: mean, red - blue, red + blue - 2 green):
#: white noise stays white with the same variance in every channel.
OPPONENT = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [0.5, -1.0, 0.5]])
OPPONENT = OPPONENT / OPPONENT.norm(dim=1, keepdim=True)


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``(n, n)``: row ``k`` is frequency ``k``.

    >>> m = dct_matrix(8)
    >>> bool(torch.allclose(m @ m.T, torch.eye(8), atol=1e-6))
    True
    """
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


def block_dct(images: torch.Tensor, stride: int) -> torch.Tensor:
    """The 2-D DCT of every ``BLOCK`` x ``BLOCK`` block of ``images`` ``(N, 1, H, W)`` whose
    top-left corner lies on a multiple of ``stride``: ``(N, BLOCK * BLOCK, h, w)``, frequency
    ``(u, v)`` (vertical, horizontal) at channel ``u * BLOCK + v``. Separable: two 1-D passes.

    >>> block_dct(torch.ones(1, 1, 8, 8), 8)[0, :2, 0, 0].round().abs().tolist()
    [8.0, 0.0]
    """
    m = dct_matrix(BLOCK).to(images.device, images.dtype)
    rows = images[:, 0].unfold(1, BLOCK, stride) @ m.T            # (N, h, W, u)
    both = rows.unfold(2, BLOCK, stride) @ m.T                     # (N, h, w, u, v)
    n, h, w = both.shape[:3]
    return both.permute(0, 3, 4, 1, 2).reshape(n, BLOCK * BLOCK, h, w)


def block_idct(coeffs: torch.Tensor, stride: int) -> torch.Tensor:
    """The sum of the inverse DCTs of the blocks of ``coeffs`` ``(N, BLOCK * BLOCK, h, w)``, each
    put back where :func:`block_dct` took it: ``(N, 1, (h - 1) * stride + BLOCK, (w - 1) * stride + BLOCK)``.

    >>> x = torch.rand(1, 1, 16, 16)
    >>> bool(torch.allclose(block_idct(block_dct(x, 8), 8), x, atol=1e-5))
    True
    """
    m = dct_matrix(BLOCK).to(coeffs.device, coeffs.dtype)
    n, _, h, w = coeffs.shape
    rows = _overlap_add(coeffs.reshape(n * BLOCK, BLOCK, h, w), m, stride, dim=3)     # (8N, 1, h, W)
    return _overlap_add(rows.reshape(n, BLOCK, h, -1), m, stride, dim=2)


def _overlap_add(values: torch.Tensor, taps: torch.Tensor, stride: int, dim: int) -> torch.Tensor:
    """Along ``dim`` (2 or 3) of ``values`` ``(N, C, h, w)``: ``out[j * stride + k] += sum_c
    values[c, j] * taps[c, k]``, ``taps`` ``(C, K)``; returns ``(N, 1, ...)``. Slice by slice, in
    a fixed order: the result does not depend on the number of threads (a transposed
    convolution's does, which made a Ray worker's frames differ from a single process's)."""
    spread = torch.einsum("nchw,ck->nkhw", values, taps)
    size = list(values.shape)
    size[1] = 1
    length = size[dim]
    size[dim] = (length - 1) * stride + taps.shape[1]
    out = values.new_zeros(size)
    for k in range(taps.shape[1]):
        target = out.narrow(dim, k, (length - 1) * stride + 1)
        index = [slice(None)] * 4
        index[dim] = slice(None, None, stride)
        target[tuple(index)] += spread[:, k:k + 1]
    return out


def _spread(weights: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-block weights ``(N, 1, h, w)`` summed over every pixel each block covers."""
    box = torch.ones(1, BLOCK, device=weights.device, dtype=weights.dtype)
    return _overlap_add(_overlap_add(weights, box, stride, dim=3), box, stride, dim=2)


def _pad(frames: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad by ``BLOCK - 1`` on every side (every pixel then lies in the same number of
    blocks), and at the bottom and right up to the block grid."""
    height, width = frames.shape[-2:]
    extra = [(-(size + BLOCK - 2)) % stride for size in (height, width)]
    pad = BLOCK - 1
    mode = "reflect" if min(height, width) > pad + max(extra) else "replicate"
    return F.pad(frames, (pad, pad + extra[1], pad, pad + extra[0]), mode=mode), (height, width)


def wiener_refine(noisy: torch.Tensor, pilot: torch.Tensor, strength: float = 1.0,
                  scale: float = SCALE, stride: int = STRIDE) -> torch.Tensor:
    """Refine the last frame of an aligned stack: ``noisy`` and ``pilot`` ``(T, 3, H, W)`` in
    [0, 1], frame ``T - 1`` the output frame and the others warped onto it. Returns ``(3, H, W)``.

    >>> clean = torch.rand(3, 3, 16, 16)
    >>> wiener_refine(clean, clean).sub(clean[-1]).abs().max().item() < 1e-5
    True
    """
    if noisy.shape != pilot.shape or noisy.ndim != 4 or noisy.shape[1] != 3:
        raise ValueError(f"wiener_refine: expected two (T, 3, H, W) stacks, got {tuple(noisy.shape)} "
                         f"and {tuple(pilot.shape)}")
    count = noisy.shape[0]
    opponent = OPPONENT.to(noisy.device)
    time_dct = dct_matrix(count).to(noisy.device)
    stacked, size = _pad(torch.cat([noisy, pilot]).float(), stride)
    stacked = torch.einsum("ij,tjhw->tihw", opponent, stacked)
    blocks = (stacked.shape[-2] - BLOCK) // stride + 1
    out = []
    for c in range(3):
        images = stacked[:, c:c + 1]
        # Noise variance per 3-D frequency, from non-overlapping blocks of the residual.
        residual = torch.einsum("st,tkhw->skhw", time_dct, block_dct(images[:count] - images[count:], BLOCK))
        variance = residual.pow(2).mean(dim=(2, 3), keepdim=True) * (scale * strength * strength)
        numerator = torch.zeros_like(images[:1])
        denominator = torch.zeros_like(images[:1])
        for first in range(0, blocks, BAND):     # bands of block rows bound the memory
            last = min(first + BAND, blocks)
            top, bottom = first * stride, (last - 1) * stride + BLOCK
            band_num, band_den = _shrink(block_dct(images[:, :, top:bottom], stride), variance, time_dct, stride)
            numerator[:, :, top:bottom] += band_num
            denominator[:, :, top:bottom] += band_den
        out.append(numerator / denominator)
    merged = torch.einsum("ji,tjhw->tihw", opponent, torch.cat(out, 1))[0]
    pad = BLOCK - 1
    return merged[:, pad:pad + size[0], pad:pad + size[1]].clamp(0.0, 1.0)


def _shrink(coeffs: torch.Tensor, variance: torch.Tensor, time_dct: torch.Tensor,
            stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One band's blocks ``(2T, 64, h, w)`` (noisy frames, then pilots) -> the weighted sum of
    the output frame's shrunk blocks and the sum of the weights, both ``(1, 1, H, W)``."""
    count = time_dct.shape[0]
    spectra = torch.einsum("st,tkhw->skhw", time_dct, coeffs[:count])     # noisy, 3-D
    guide = torch.einsum("st,tkhw->skhw", time_dct, coeffs[count:])       # pilot, 3-D
    power = guide.pow(2)
    gain = power / (power + variance).clamp_min(1e-20)
    gain[0, 0] = 0.0
    shrunk = spectra * gain
    shrunk[0, 0] = guide[0, 0]                                            # the pilot's mean
    weights = 1.0 / (gain.pow(2) * variance).sum(dim=(0, 1)).clamp_min(1e-10)     # (h, w)
    frame = torch.einsum("s,skhw->khw", time_dct[:, -1], shrunk)          # the output frame's blocks
    return block_idct((frame * weights).unsqueeze(0), stride), _spread(weights[None, None], stride)


class WienerRefiner:
    """The pass over a stream of pilots: :meth:`push` each frame's noisy input and network
    output, in order, and get its refined output at once (the window looks back only).

    >>> from streamden.align.flow import DISFlow
    >>> refiner = WienerRefiner(DISFlow("fast"))
    >>> outs = [refiner.push(i, torch.rand(3, 16, 16), torch.rand(3, 16, 16)) for i in range(4)]
    >>> tuple(outs[-1].shape), sorted(refiner.pilots)
    ((3, 16, 16), [2, 3])
    """

    def __init__(self, estimator: FlowEstimator, strength: float = 1.0, frames: int = FRAMES,
                 scale: float = SCALE, stride: int = STRIDE):
        self.aligner = WindowAligner(estimator)
        self.strength = float(strength)
        self.frames = int(frames)
        self.scale = float(scale)
        self.stride = int(stride)
        self.reset()

    def reset(self) -> None:
        """Forget the held frames (a new sequence starts)."""
        self.aligner.reset()
        self.noisy: dict[int, torch.Tensor] = {}
        self.pilots: dict[int, torch.Tensor] = {}

    def push(self, index: int, noisy: torch.Tensor, pilot: torch.Tensor) -> torch.Tensor:
        """Frame ``index`` (``(3, H, W)`` noisy input and network output, in [0, 1]); returns its
        refined output ``(3, H, W)``. Indices increase by one within a sequence."""
        self.noisy[index], self.pilots[index] = noisy, pilot
        self.aligner.align([noisy], [index])          # keeps its luma for the flows
        indices = [i for i in range(index - self.frames + 1, index + 1) if i in self.pilots]
        pilots = self.aligner.onto(index, [self.pilots[i] for i in indices], indices)
        noisy_stack = self.aligner.onto(index, [self.noisy[i] for i in indices], indices)
        out = wiener_refine(noisy_stack, pilots, self.strength, self.scale, self.stride)
        oldest = index - self.frames + 2
        for i in [i for i in self.pilots if i < oldest]:
            del self.noisy[i], self.pilots[i]
        self.aligner.evict(oldest)
        return out
