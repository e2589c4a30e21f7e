"""Quality metrics on float frames in [0, data_range]: PSNR, SSIM, temporal consistency.

Images are ``(3, H, W)`` or batches ``(N, 3, H, W)``; batch results are the mean of the
per-image values (the usual way video papers report them).

>>> import torch
>>> x = torch.rand(2, 3, 16, 16)
>>> psnr(x, x).item()
inf
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x


def psnr_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image of a batch ``(N,)``; identical images give ``inf``.

    >>> psnr_per_image(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)).round().tolist()
    [20.0]
    """
    a, b = _batch(a).double(), _batch(b).double()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = (a - b).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range ** 2 / mse)).float()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean PSNR (dB) over the images of a batch (a 0-dim tensor).

    >>> round(float(psnr(torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.01))), 2)
    40.0
    """
    return psnr_per_image(a, b, data_range).mean()


def _gaussian_window(size: int, sigma: float, channels: int, dtype: torch.dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 11,
                   sigma: float = 1.5) -> torch.Tensor:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) per image.

    Computed per channel on the valid region (no padding) and averaged.

    >>> ssim_per_image(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)).shape
    torch.Size([2])
    """
    a, b = _batch(a).double(), _batch(b).double()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    c = a.shape[1]
    win = min(window, *a.shape[-2:])
    w = _gaussian_window(win, sigma, c, a.dtype, a.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return ssim_map.flatten(1).mean(1).float()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over the images of a batch (a 0-dim tensor); identical images give 1.

    >>> float(ssim(torch.rand(3, 32, 32).clamp(0.2), torch.rand(3, 32, 32))) < 0.5
    True
    """
    return ssim_per_image(a, b, data_range).mean()


def temporal_consistency(output: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR (dB) between the frame-to-frame differences of ``output`` and of ``reference`` (T, 3, H, W).

    High values mean the output flickers no more than the reference does.

    >>> x = torch.rand(4, 3, 8, 8)
    >>> float(temporal_consistency(x, x))
    inf
    """
    if output.shape[0] < 2:
        raise ValueError("temporal consistency needs at least two frames")
    d_out = output[1:] - output[:-1]
    d_ref = reference[1:] - reference[:-1]
    return psnr(d_out, d_ref, 2.0 * data_range)
