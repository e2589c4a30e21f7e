"""FastDVDnet: two stages of the same U-Net denoising block over a 5-frame window.

Written from the architecture description in DESIGN.md. Module names (``temp1``, ``temp2``,
``inc``, ``downc0``, ``downc1``, ``upc2``, ``upc1``, ``outc``, ``convblock``) follow the
original checkpoints so that they can be imported key for key.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WINDOW = 5          # frames the network sees for one output frame
PAD_MULTIPLE = 4    # two stride-2 levels
BASE = 32           # channels of the U-Net's first level (then 2x and 4x): the published width


def _conv_bn_relu(c_in: int, c_out: int, bias: bool, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class _ConvBlock(nn.Module):
    """Two conv + BN + ReLU at one width."""

    def __init__(self, channels: int, bias: bool):
        super().__init__()
        self.convblock = nn.Sequential(*_conv_bn_relu(channels, channels, bias), *_conv_bn_relu(channels, channels, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class _InputBlock(nn.Module):
    """Grouped conv over (frame, noise map) triplets, then a conv to the base width."""

    def __init__(self, frames: int, out_ch: int, bias: bool, interm_per_frame: int = 30):
        super().__init__()
        interm = frames * interm_per_frame
        self.convblock = nn.Sequential(
            *_conv_bn_relu(frames * 4, interm, bias, groups=frames),
            *_conv_bn_relu(interm, out_ch, bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class _DownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias: bool):
        super().__init__()
        self.convblock = nn.Sequential(*_conv_bn_relu(c_in, c_out, bias, stride=2), _ConvBlock(c_out, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias: bool):
        super().__init__()
        self.convblock = nn.Sequential(
            _ConvBlock(c_in, bias),
            nn.Conv2d(c_in, c_out * 4, 3, padding=1, bias=bias),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class _OutputBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias: bool):
        super().__init__()
        self.convblock = nn.Sequential(*_conv_bn_relu(c_in, c_in, bias), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class DenBlock(nn.Module):
    """The U-Net denoising block: three frames and their noise maps in, one frame out.

    Input ``(N, 12, H, W)``: frame0, map, frame1, map, frame2, map (H, W multiples of 4).
    The block predicts the noise and returns ``centre - prediction``. ``base``: the channels
    of the first level (``2 * base`` and ``4 * base`` below it).
    """

    def __init__(self, bias: bool = False, base: int = BASE):
        super().__init__()
        self.inc = _InputBlock(3, base, bias)
        self.downc0 = _DownBlock(base, 2 * base, bias)
        self.downc1 = _DownBlock(2 * base, 4 * base, bias)
        self.upc2 = _UpBlock(4 * base, 2 * base, bias)
        self.upc1 = _UpBlock(2 * base, base, bias)
        self.outc = _OutputBlock(base, 3, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.inc(x)
        x1 = self.downc0(x0)
        x2 = self.downc1(x1)
        x2 = self.upc2(x2)
        x1 = self.upc1(x1 + x2)
        prediction = self.outc(x0 + x1)
        centre = x[:, 4:7]
        return centre - prediction


def interleave_noise_map(frames: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
    """Stack three frames ``(N, 3, 3, H, W)`` with a noise map ``(N, 1, H, W)`` into ``(N, 12, H, W)``.

    >>> interleave_noise_map(torch.zeros(2, 3, 3, 8, 8), torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 12, 8, 8])
    """
    n, t, c, h, w = frames.shape
    maps = noise_map.unsqueeze(1).expand(n, t, 1, h, w)
    return torch.cat([frames, maps], dim=2).reshape(n, t * (c + 1), h, w)


class FastDVDnet(nn.Module):
    """FastDVDnet: ``temp1`` (shared, on three overlapping triplets) then ``temp2``.

    ``forward`` takes a window ``(N, 5, 3, H, W)`` in [0, 1] and a noise map ``(N, 1, H, W)``
    of sigma/255, with H and W multiples of 4 (see :func:`pad_to_multiple`), and returns the
    denoised centre frame ``(N, 3, H, W)``. ``base`` widens both U-Nets (32: the published
    network; :func:`widen_state` carries trained weights into a wider one unchanged).

    >>> net = FastDVDnet().eval()
    >>> net(torch.rand(1, 5, 3, 16, 16), torch.full((1, 1, 16, 16), 0.1)).shape
    torch.Size([1, 3, 16, 16])
    """

    def __init__(self, bias: bool = False, base: int = BASE):
        super().__init__()
        self.bias, self.base = bias, base
        self.temp1 = DenBlock(bias, base)
        self.temp2 = DenBlock(bias, base)

    def stage1(self, triplet: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """Stage-1 output for one triplet ``(N, 3, 3, H, W)``: the frame the window caches."""
        return self.temp1(interleave_noise_map(triplet, noise_map))

    def stage2(self, stage1_outputs: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """Final output from three stage-1 outputs ``(N, 3, 3, H, W)``."""
        return self.temp2(interleave_noise_map(stage1_outputs, noise_map))

    def forward(self, window: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        return two_stage_forward(self, window, noise_map)


def two_stage_forward(network: nn.Module, window: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
    """The whole two-stage ``network`` (its ``stage1`` and ``stage2``) on ``(N, 5, 3, H, W)``
    windows with ``(N, 1, H, W)`` noise maps: the centre frames' outputs ``(N, 3, H, W)``."""
    n, t, c, h, w = window.shape
    if t != WINDOW:
        raise ValueError(f"FastDVDnet needs a window of {WINDOW} frames, got {t}")
    # The three triplets run as one batch: same result, one pass through stage 1.
    triplets = torch.stack([window[:, i:i + 3] for i in range(3)], dim=1).reshape(n * 3, 3, c, h, w)
    middle = network.stage1(triplets, noise_map.repeat_interleave(3, dim=0)).reshape(n, 3, c, h, w)
    return network.stage2(middle, noise_map)


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims up to a multiple; returns the padded tensor and (H, W).

    >>> y, size = pad_to_multiple(torch.zeros(1, 3, 5, 7))
    >>> tuple(y.shape), size
    ((1, 3, 8, 8), (5, 7))
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    # reflect needs pad < size; replicate covers tiny frames
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    flat = F.pad(flat, (0, pw, 0, ph), mode=mode)
    return flat.reshape(*lead, *flat.shape[-3:]), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the last two dims back to ``size`` after :func:`pad_to_multiple`."""
    return x[..., : size[0], : size[1]]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (2.48 M for FastDVDnet)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def base_width(state: dict[str, torch.Tensor]) -> int:
    """The ``base`` of the FastDVDnet a state dict belongs to (the input block's output channels).

    >>> base_width(FastDVDnet().state_dict()), base_width(FastDVDnet(base=48).state_dict())
    (32, 48)
    """
    return int(state["temp1.inc.convblock.3.weight"].shape[0])


def widen_state(narrow: dict[str, torch.Tensor], wide: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for the wider FastDVDnet ``wide`` that computes what ``narrow`` computes.

    Each tensor of ``narrow`` fills the leading slice of the wider one. A convolution's new
    output channels keep ``wide``'s random initialisation (they learn), and the weights from
    its new input channels to its old output channels are zero, so the new channels reach
    nothing the narrow network computed: the output is the same until training moves them.
    New BatchNorm channels keep their identity initialisation. Only the U-Net widths grow (the
    input block's per-frame group, which ``base`` does not change, keeps its shape), and the
    new channels of a pixel shuffle's input are whole trailing output channels, so one rule
    holds everywhere.

    >>> net, wide = FastDVDnet().eval(), FastDVDnet(base=40).eval()
    >>> _ = wide.load_state_dict(widen_state(net.state_dict(), wide))
    >>> x, m = torch.rand(1, 5, 3, 8, 8), torch.full((1, 1, 8, 8), 0.1)
    >>> bool(torch.allclose(net(x, m), wide(x, m), atol=1e-5))
    True
    """
    state = {key: value.clone() for key, value in wide.state_dict().items()}
    if narrow.keys() != state.keys():
        raise ValueError("widen_state: the two networks do not have the same layers (bias or architecture differ)")
    for key, old in narrow.items():
        new = state[key]
        if old.dim() == 0 or old.shape == new.shape:
            state[key] = old.clone()
            continue
        if any(o > n for o, n in zip(old.shape, new.shape)):
            raise ValueError(f"widen_state: {key} is wider in the source ({tuple(old.shape)} > {tuple(new.shape)})")
        out_old = old.shape[0]
        if old.dim() == 4:   # conv weight (out, in, kh, kw)
            new[:out_old] = 0.0
        new[tuple(slice(0, size) for size in old.shape)] = old
    return state
