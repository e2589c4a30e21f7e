"""Noise synthesis for training and evaluation: Gaussian, Poisson-Gaussian, JPEG, and the realistic
kinds of :mod:`streamden.noise.degrade` (camera, compressed, both, a mix).

Clean frames are float tensors in [0, 1] of shape ``(..., 3, H, W)``; sigmas are on the
0-255 scale. Every function returns the noisy frames and the matching noise map of
sigma/255 (``(N, 1, H, W)``) that FastDVDnet takes.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> noisy, nmap = add_gaussian(torch.full((2, 5, 3, 8, 8), 0.5), torch.tensor([10.0, 30.0]), g)
>>> noisy.shape, nmap.shape
(torch.Size([2, 5, 3, 8, 8]), torch.Size([2, 1, 8, 8]))
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

NOISE_MODELS = ("gaussian", "poisson_gaussian", "jpeg", "camera", "compressed", "camera+compressed", "mix")


def sample_uniform(n: int, low: float, high: float, generator: torch.Generator | None = None,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` values uniform in ``[low, high]`` (float32).

    >>> sample_uniform(3, 5, 55, torch.Generator().manual_seed(0)).shape
    torch.Size([3])
    """
    u = torch.rand(n, generator=generator, device=device)
    return low + (high - low) * u


def sample_sigma(n: int, noise_cfg, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` noise levels in ``[sigma_min, sigma_max]``, uniform or log-uniform (``sigma_sampling``).

    >>> from streamden.train.config import NoiseConfig
    >>> s = sample_sigma(1000, NoiseConfig(sigma_sampling="log"), torch.Generator().manual_seed(0))
    >>> bool((s >= 5).all() and (s <= 55).all()), round(float((s < 15).float().mean()), 1)
    (True, 0.5)
    """
    if noise_cfg.sigma_sampling == "uniform":
        return sample_uniform(n, noise_cfg.sigma_min, noise_cfg.sigma_max, generator, device)
    if noise_cfg.sigma_sampling == "log":
        low, high = math.log(noise_cfg.sigma_min), math.log(noise_cfg.sigma_max)
        return sample_uniform(n, low, high, generator, device).exp()
    raise ValueError(f"config key 'noise.sigma_sampling': unknown {noise_cfg.sigma_sampling!r} (uniform | log)")


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``(N,)`` to broadcast over ``like`` (N, ...)."""
    return values.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _map_like(values: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """A constant ``(N, 1, H, W)`` map holding ``values / 255`` per sample."""
    n, (h, w) = clean.shape[0], clean.shape[-2:]
    return (values.to(clean.device, clean.dtype) / 255.0).reshape(n, 1, 1, 1).expand(n, 1, h, w).contiguous()


def add_gaussian(clean: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator | None = None,
                 clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive white Gaussian noise of ``sigma`` (0-255, per sample) and its noise map.

    >>> noisy, nmap = add_gaussian(torch.zeros(1, 5, 3, 4, 4), 25.0, torch.Generator().manual_seed(1))
    >>> round(float(nmap[0, 0, 0, 0]) * 255, 3)
    25.0
    """
    n = clean.shape[0]
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(n)
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    noisy = clean + noise * _per_sample(sigma / 255.0, clean)
    if clip:
        noisy = noisy.clamp(0.0, 1.0)
    return noisy, _map_like(sigma, clean)


def add_poisson_gaussian(clean: torch.Tensor, gain: torch.Tensor | float, sigma: torch.Tensor | float,
                         generator: torch.Generator | None = None, clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal-dependent noise: variance ``gain * x + (sigma/255)^2`` with x the clean value in [0, 1].

    The noise map is the per-pixel standard deviation of the centre frame, averaged over the
    colour channels (so the network sees where the noise is strong).

    >>> x = torch.full((1, 5, 3, 4, 4), 0.5)
    >>> noisy, nmap = add_poisson_gaussian(x, 0.01, 5.0, torch.Generator().manual_seed(0))
    >>> nmap.shape
    torch.Size([1, 1, 4, 4])
    """
    n = clean.shape[0]
    gain = torch.as_tensor(gain, dtype=torch.float32).reshape(-1).expand(n)
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(n)
    var = _per_sample(gain, clean) * clean.clamp(min=0.0) + _per_sample((sigma / 255.0) ** 2, clean)
    std = var.sqrt()
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    noisy = clean + noise * std
    if clip:
        noisy = noisy.clamp(0.0, 1.0)
    centre = std[:, std.shape[1] // 2] if std.dim() == 5 else std
    return noisy, centre.mean(dim=1, keepdim=True)


def jpeg_roundtrip(frames: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode ``(..., 3, H, W)`` frames in [0, 1] as JPEG at ``quality`` with OpenCV.

    >>> jpeg_roundtrip(torch.rand(2, 3, 16, 16), 50).shape
    torch.Size([2, 3, 16, 16])
    """
    lead, (c, h, w) = frames.shape[:-3], frames.shape[-3:]
    arr = (frames.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).reshape(-1, c, h, w)
    arr = arr.permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    for i in range(arr.shape[0]):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr[i]), params)
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a patch")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    res = torch.from_numpy(out).permute(0, 3, 1, 2).to(frames.device, frames.dtype) / 255.0
    return res.reshape(*lead, c, h, w)


def add_jpeg(clean: torch.Tensor, quality: torch.Tensor, sigma: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Compression artefacts: optional Gaussian noise of ``sigma``, then a JPEG round trip per sample.

    The noise map holds the RMS error of each sample's centre frame (its equivalent sigma).

    >>> noisy, nmap = add_jpeg(torch.rand(2, 5, 3, 16, 16), torch.tensor([30, 80]))
    >>> noisy.shape, nmap.shape
    (torch.Size([2, 5, 3, 16, 16]), torch.Size([2, 1, 16, 16]))
    """
    noisy = clean
    if sigma is not None:
        noisy, _ = add_gaussian(clean, sigma, generator, clip=True)
    out = torch.stack([jpeg_roundtrip(noisy[i], int(q)) for i, q in enumerate(quality.tolist())])
    centre = (lambda t: t[:, t.shape[1] // 2]) if clean.dim() == 5 else (lambda t: t)
    rms = (centre(out) - centre(clean)).pow(2).flatten(1).mean(1).sqrt() * 255.0
    return out, _map_like(rms, clean)


def _draw(low: float, high: float, generator: torch.Generator | None, device) -> float:
    return float(sample_uniform(1, low, high, generator, device))


def add_realistic(clean: torch.Tensor, noise_cfg, sigma: torch.Tensor, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``(N, T, 3, H, W)`` with camera noise, compressed Gaussian noise, or both
    (:mod:`streamden.noise.degrade`), one kind per window (``mix``: drawn from ``noise_cfg.mix``).

    Camera: shot gain log-uniform in ``[shot_min, shot_max]``. Compressed: Gaussian noise of
    the window's ``sigma`` (camera+compressed: camera noise) through a codec drawn from
    ``noise_cfg.codecs`` (x264/x265 encode the window as a clip at a CRF in
    ``[crf_min, crf_max]``; jpeg each frame at a quality in ``[jpeg_quality_min, jpeg_quality_max]``).
    The noise map is the effective level of the centre frame (``std(noisy - clean)``).

    >>> from streamden.train.config import NoiseConfig
    >>> noisy, nmap = add_realistic(torch.rand(2, 5, 3, 16, 16), NoiseConfig(model="mix"), torch.tensor([10.0, 20.0]),
    ...                             torch.Generator().manual_seed(0))
    >>> noisy.shape, nmap.shape
    (torch.Size([2, 5, 3, 16, 16]), torch.Size([2, 1, 16, 16]))
    """
    from .degrade import CameraLevel, compress, camera_noise

    dev = clean.device
    kinds = list(noise_cfg.mix) if noise_cfg.model == "mix" else [noise_cfg.model]
    for kind in kinds:
        if kind not in ("gaussian", "camera", "compressed", "camera+compressed"):
            raise ValueError(f"config key 'noise.mix': unknown kind {kind!r} "
                             f"(gaussian | camera | compressed | camera+compressed)")
    outs, levels = [], []
    centre = clean.shape[1] // 2
    for i in range(clean.shape[0]):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator, device=dev))]
        window = clean[i]
        if "camera" in kind:
            shot = math.exp(_draw(math.log(noise_cfg.shot_min), math.log(noise_cfg.shot_max), generator, dev))
            noisy, _ = camera_noise(window, CameraLevel("train", shot), generator=generator)
        else:
            noisy, _ = add_gaussian(window.unsqueeze(0), sigma[i:i + 1], generator, clip=True)
            noisy = (noisy[0] * 255.0).round() / 255.0
        if "compressed" in kind:
            codec = noise_cfg.codecs[int(torch.randint(len(noise_cfg.codecs), (1,), generator=generator, device=dev))]
            low, high = ((noise_cfg.jpeg_quality_min, noise_cfg.jpeg_quality_max) if codec == "jpeg"
                         else (noise_cfg.crf_min, noise_cfg.crf_max))
            quality = int(math.floor(_draw(low, high + 0.999, generator, dev)))
            noisy = compress(noisy, codec, quality).to(dev, clean.dtype)
        outs.append(noisy)
        levels.append(float((noisy[centre] - window[centre]).float().std()) * 255.0)
    return torch.stack(outs), _map_like(torch.tensor(levels), clean)


def synthesize(clean: torch.Tensor, noise_cfg, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy frames and noise map for a training batch ``(N, T, 3, H, W)`` following a NoiseConfig.

    >>> from streamden.train.config import NoiseConfig
    >>> noisy, nmap = synthesize(torch.rand(2, 5, 3, 8, 8), NoiseConfig(), torch.Generator().manual_seed(0))
    >>> nmap.shape
    torch.Size([2, 1, 8, 8])
    """
    n, dev = clean.shape[0], clean.device
    sigma = sample_sigma(n, noise_cfg, generator, dev)
    if noise_cfg.model == "gaussian":
        return add_gaussian(clean, sigma, generator, clip=noise_cfg.clip)
    if noise_cfg.model == "poisson_gaussian":
        gain = sample_uniform(n, noise_cfg.gain_min, noise_cfg.gain_max, generator, dev)
        return add_poisson_gaussian(clean, gain, sigma, generator, clip=noise_cfg.clip)
    if noise_cfg.model == "jpeg":
        q = sample_uniform(n, noise_cfg.jpeg_quality_min, noise_cfg.jpeg_quality_max + 0.999, generator, dev).floor().long()
        return add_jpeg(clean, q, sigma, generator)
    if noise_cfg.model in ("camera", "compressed", "camera+compressed", "mix"):
        return add_realistic(clean, noise_cfg, sigma, generator)
    raise ValueError(f"unknown noise model {noise_cfg.model!r} (known: {', '.join(NOISE_MODELS)})")


def noisy_8bit(clean: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise clipped to [0, 1] and rounded to 8-bit levels, as real video carries it (eval).

    >>> y = noisy_8bit(torch.full((1, 3, 4, 4), 0.5), 20.0, torch.Generator().manual_seed(0))
    >>> bool(((y * 255).round() == y * 255).all())
    True
    """
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32).to(clean.device)
    noisy = (clean.float() + noise * (sigma / 255.0)).clamp(0.0, 1.0)
    return (noisy * 255.0).round() / 255.0
