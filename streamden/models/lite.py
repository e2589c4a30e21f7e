"""LiteDVD: a light temporal denoiser for CPUs, one small block over three frames.

FastDVDnet costs about 320 000 multiply-adds per output pixel (two U-Net blocks per frame on the
streaming path, three at look-ahead 1): a 2-core CPU runs it at about one 640x360 frame a
second. LiteDVD keeps the interface (``stage1`` / ``stage2`` / ``forward`` with a noise map) but

* sees three frames ``t-1, t, t+1`` (one frame of look-ahead, which live feeds can afford);
* runs once per output frame: ``stage1`` on the triplet is the denoised frame and ``stage2``
  only picks the middle triplet's output, so the streaming engine computes one block per frame
  (:attr:`LiteDVD.single_stage`);
* works at half resolution (a stride-2 4x4 convolution over the 3 frames and the map) with
  a small two-level U-Net, and predicts the noise of the centre frame;
* has no BatchNorm (its running statistics mis-normalised large bright areas in FastDVDnet),
  so nothing changes between training and inference.

:func:`streamden.models.cost.multiply_adds_per_pixel` counts the cost of one output pixel
(tests/models/test_lite.py keeps it under the 15 000 budget of the live issue).

>>> net = LiteDVD().eval()
>>> net(torch.rand(1, 5, 3, 16, 16), torch.full((1, 1, 16, 16), 0.1)).shape
torch.Size([1, 3, 16, 16])
"""
from __future__ import annotations

import torch
from torch import nn

LITE_WINDOW = 3     # frames the network sees for one output frame


def _conv(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=True)


class LiteBlock(nn.Module):
    """Three frames ``(N, 3, 3, H, W)`` and a noise map ``(N, 1, H, W)`` in, the denoised
    centre frame ``(N, 3, H, W)`` out; H and W multiples of 4.

    ``head``: a 4x4 stride-2 convolution over the 10 input channels (a patchify step: the
    half-resolution features see every input pixel, with no pixel-unshuffle pass) and a 3x3
    convolution; ``down`` (stride 2 -> ``2 width``), ``body`` (``depth`` convolutions at
    quarter resolution), ``up`` (1x1 to ``4 width`` and pixel-shuffle back to half
    resolution), the skip added, ``fuse``; ``tail``: a 4x4 stride-2 transposed convolution to
    the full-resolution noise prediction, subtracted from the centre frame.
    """

    def __init__(self, width: int = 32, depth: int = 2) -> None:
        super().__init__()
        wide = 2 * width
        self.head = nn.Sequential(nn.Conv2d(10, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                                  _conv(width, width), nn.ReLU(inplace=True))
        self.down = nn.Sequential(_conv(width, wide, stride=2), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[m for _ in range(depth) for m in (_conv(wide, wide), nn.ReLU(inplace=True))])
        self.up = nn.Sequential(_conv(wide, 4 * width, kernel=1), nn.PixelShuffle(2))
        self.fuse = nn.Sequential(_conv(width, width), nn.ReLU(inplace=True))
        self.tail = nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1)

    def forward(self, triplet: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        x = torch.cat([triplet.flatten(1, 2), noise_map], dim=1)     # (N, 10, H, W)
        half = self.head(x)
        half = self.fuse(half + self.up(self.body(self.down(half))))
        return triplet[:, 1] - self.tail(half)


class LiteDVD(nn.Module):
    """The light temporal network: :class:`LiteBlock` over frames ``t-1, t, t+1``.

    ``forward`` takes a window ``(N, T, 3, H, W)`` of 3 or 5 frames (of 5, the centre three are
    used) in [0, 1] and a noise map ``(N, 1, H, W)`` of sigma/255, H and W multiples of 4, and
    returns the denoised centre frame. ``stage1`` / ``stage2`` follow FastDVDnet's interface
    (so the streaming engine, the runner and the tiles take it as it is); ``stage2`` returns
    the middle triplet's stage-1 output.

    >>> net = LiteDVD().eval()
    >>> window = torch.rand(1, 5, 3, 8, 8); noise = torch.full((1, 1, 8, 8), 0.1)
    >>> torch.equal(net(window, noise), net(window[:, 1:4], noise))
    True
    """

    #: One block per output frame: the streaming engine computes only the middle triplet.
    single_stage = True

    def __init__(self, width: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.width, self.depth = width, depth
        self.block = LiteBlock(width, depth)

    def stage1(self, triplet: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """The denoised centre frame ``(N, 3, H, W)`` of a triplet ``(N, 3, 3, H, W)``."""
        return self.block(triplet, noise_map)

    def stage2(self, stage1_outputs: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """The middle one of three stage-1 outputs ``(N, 3, 3, H, W)``: no second block."""
        return stage1_outputs[:, 1]

    def forward(self, window: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        t = window.shape[1]
        if t not in (LITE_WINDOW, 5):
            raise ValueError(f"LiteDVD needs a window of 3 (or 5) frames, got {t}")
        centre = t // 2
        return self.stage1(window[:, centre - 1:centre + 2], noise_map)
