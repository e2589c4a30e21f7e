"""Realistic degradations of clean frames: camera noise, video/JPEG compression, and both.

Used by ``streamden eval --degradation`` (whole clips) and by the trainer's noise synthesis
(``noise.model: camera | compressed | mix``). Frames are float tensors in [0, 1],
``(T, 3, H, W)``; every function is deterministic given its seed (x265 excepted, see :func:`compress`).

* **camera**: Poisson-Gaussian noise added in linear light, inside a simple camera
  pipeline run backwards and forwards: sRGB gamma undone, the colour matrix and white
  balance undone (a raw-like signal), noise of variance ``shot * x + read`` added, then
  white balance, colour matrix and gamma again, clipped and rounded to 8 bits. The
  white-balance gains and the colour matrix amplify the noise unequally per channel and the
  gamma makes it strongest in the shadows, as on a phone or a surveillance camera.
* **compressed**: the (noisy) clip encoded with x264 or x265 at a CRF through PyAV and
  decoded back (yuv420p, as cameras send it), or each frame JPEG-encoded at a quality.
* **effective level**: ``std(noisy - clean) * 255``, the single number that describes how
  much noise a degraded clip carries, whatever its shape.

>>> clean = torch.full((2, 3, 32, 32), 0.4)
>>> noisy, std = camera_noise(clean, CAMERA_LEVELS["iso3200"], seed=0)
>>> noisy.shape, std.shape
(torch.Size([2, 3, 32, 32]), torch.Size([2, 1, 32, 32]))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

__all__ = ["CAMERA_LEVELS", "CODECS", "DEGRADATIONS", "CameraLevel", "Degradation", "camera_noise", "degradation_grid",
           "compress", "degrade", "effective_level", "parse_degradation", "shot_to_read"]

DEGRADATIONS = ("gaussian", "camera", "compressed", "camera+compressed")
CODECS = ("x264", "x265", "jpeg")
X265_MIN_SIZE = 64              # libx265's largest coding tree unit (pixels): smaller frames are padded

# A camera's colour pipeline (our own round numbers, typical of phone sensors): white-balance
# gains for daylight and a camera-to-sRGB colour matrix whose rows sum to 1 (grey stays grey).
WB_GAINS = (2.0, 1.0, 1.6)
CCM = ((1.65, -0.50, -0.15),
       (-0.25, 1.55, -0.30),
       (0.05, -0.55, 1.50))


def shot_to_read(shot: float) -> float:
    """The read-noise variance that goes with a shot-noise gain, on the linear [0, 1] scale.

    Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019, section 3.2),
    fit the read and shot noise of the Darmstadt Noise Dataset's cameras at their ISO
    settings with ``log(read) = 2.18 log(shot) + 1.20`` (they sample the shot gain
    log-uniformly in [1e-4, 1.2e-2]); we take the fitted line without its scatter.

    >>> round(shot_to_read(0.01) * 1e4, 2)
    1.45
    """
    return math.exp(2.18 * math.log(shot) + 1.20)


@dataclass(frozen=True)
class CameraLevel:
    """Poisson-Gaussian noise of a sensor at one ISO-like setting: ``var = shot * x + read``
    on the linear raw scale (x in [0, 1]); ``read`` defaults to the published fit."""

    name: str
    shot: float
    read: float | None = None

    @property
    def read_variance(self) -> float:
        """The signal-independent variance (linear raw scale)."""
        return shot_to_read(self.shot) if self.read is None else float(self.read)


#: ISO-like levels spanning the published range of shot gains (1e-4 to 1.2e-2): a bright
#: indoor scene, dim light, and night (their effective levels on the validation clips are
#: in README "Real footage").
CAMERA_LEVELS = {
    "iso800": CameraLevel("iso800", 0.001),
    "iso3200": CameraLevel("iso3200", 0.003),
    "iso12800": CameraLevel("iso12800", 0.008),
}


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def _srgb_slope(linear: torch.Tensor) -> torch.Tensor:
    """d sRGB / d linear at ``linear`` (for the per-pixel std after the gamma)."""
    x = linear.clamp(1e-6, 1.0)
    return torch.where(x <= 0.0031308, torch.full_like(x, 12.92), 1.055 / 2.4 * x ** (1 / 2.4 - 1))


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ rgb`` for every pixel of ``(..., 3, H, W)``."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x.dtype), x)


def camera_noise(clean: torch.Tensor, level: CameraLevel, seed: int | None = None,
                 generator: torch.Generator | None = None, quantize: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera noise on clean sRGB frames ``(..., 3, H, W)`` in [0, 1]; returns the noisy frames
    and the per-pixel noise std ``(..., 1, H, W)`` in [0, 1] units (mean of the channels'
    variances, propagated through the pipeline to first order).

    ``seed`` (or a ``generator``) makes the noise reproducible; ``quantize`` rounds to 8 bits.

    >>> a, _ = camera_noise(torch.rand(1, 3, 8, 8), CAMERA_LEVELS["iso800"], seed=3)
    >>> b, _ = camera_noise(torch.rand(1, 3, 8, 8), CAMERA_LEVELS["iso800"], seed=3)
    >>> bool(((a * 255).round() == a * 255).all())
    True
    """
    if clean.shape[-3] != 3:
        raise ValueError(f"camera_noise: expected (..., 3, H, W) RGB frames, got {tuple(clean.shape)}")
    if generator is None:
        generator = torch.Generator(device=clean.device).manual_seed(0 if seed is None else int(seed))
    ccm = torch.tensor(CCM, dtype=torch.float32, device=clean.device)
    wb = torch.tensor(WB_GAINS, dtype=torch.float32, device=clean.device).reshape(3, 1, 1)
    linear = _srgb_to_linear(clean.float().clamp(0, 1))
    raw = (_apply(torch.linalg.inv(ccm), linear) / wb).clamp(0.0, 1.0)
    var = level.shot * raw + level.read_variance
    noise = torch.randn(raw.shape, generator=generator, device=raw.device, dtype=raw.dtype)
    noisy_linear = _apply(ccm, (raw + noise * var.sqrt()) * wb)
    noisy = _linear_to_srgb(noisy_linear)
    if quantize:
        noisy = (noisy * 255.0).round() / 255.0
    # Per-pixel std after the pipeline: the colour matrix mixes the channels' variances
    # (sum of (M_ck * wb_k)^2 var_k), the gamma scales them by its slope.
    mix = (ccm * wb.reshape(1, 3)) ** 2
    var_out = _apply(mix, var) * _srgb_slope(_apply(ccm, raw * wb)) ** 2
    return noisy.to(clean.dtype), var_out.mean(dim=-3, keepdim=True).sqrt().to(clean.dtype)


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` float in [0, 1] -> ``(T, H, W, 3)`` uint8."""
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _encode_video(frames: np.ndarray, codec: str, crf: int, preset: str) -> np.ndarray:
    """x264/x265 round trip of ``(T, H, W, 3)`` uint8 RGB in memory through PyAV (yuv420p, one
    thread, x264 without mbtree: the same frames on every run).

    RGB <-> YUV goes through :mod:`streamden.io.pixels`, as our file jobs decode and encode:
    PyAV's default conversion darkens every channel by about 1.2 levels per round trip and
    interpolates chroma coarsely, an error no camera adds and our own decoder does not make.
    """
    import io

    import av
    from av.video.reformatter import VideoReformatter

    from ..io.frame import ColorInfo
    from ..io.pixels import rgb_to_video_frame, video_frame_to_rgb

    t, h, w, _ = frames.shape
    # yuv420p needs even sizes: pad by edge replication, crop after decoding. libx265 also gets
    # at least one coding tree unit each way: smaller frames corrupted the heap (48x48 after the
    # network had run in the process aborted it; 64 and up never did).
    least = X265_MIN_SIZE if codec == "x265" else 0
    ph, pw = max(h + h % 2, least), max(w + w % 2, least)
    if (ph, pw) != (h, w):
        frames = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    reformatter = VideoReformatter()
    with av.open(buffer, "w", format="matroska") as container:
        name = "libx264" if codec == "x264" else "libx265"
        stream = container.add_stream(name, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.thread_count = 1
        if codec == "x264":
            # x264's macroblock tree gives different bytes from run to run in this build
            # (measured: the first encode of a process differs); without it the output is fixed.
            stream.options = {"crf": str(crf), "preset": preset,
                              "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"}
        else:
            stream.options = {"crf": str(crf), "preset": preset,
                              "x265-params": "log-level=none:pools=none:frame-threads=1"}
        for index, image in enumerate(frames):
            frame = rgb_to_video_frame(reformatter, image, "yuv420p", ColorInfo())
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, "r") as container:
        decoded = [video_frame_to_rgb(reformatter, f, deep=False) for f in container.decode(video=0)]
    if len(decoded) != t:
        raise RuntimeError(f"{codec} round trip gave {len(decoded)} frames for {t}")
    return np.stack(decoded)[:, :h, :w]


def _encode_jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    out = np.empty_like(frames)
    for i, image in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a frame")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out


def compress(frames: torch.Tensor, codec: str = "x264", quality: int = 23, preset: str = "medium") -> torch.Tensor:
    """Frames ``(T, 3, H, W)`` in [0, 1] through a lossy codec and back (8-bit levels).

    ``codec`` x264 or x265 encode the frames as one clip at CRF ``quality`` (18-28 is the
    usual range; lower is better) with the x264/x265 ``preset``; jpeg encodes each frame at
    JPEG quality ``quality`` (50-90 for stills; higher is better). x264 and JPEG give the same
    frames on every run; x265 (this libx265 build, even single-threaded without assembly)
    gives one of a few slightly different encodes from run to run, so x265 rows repeat to
    about 0.01 dB, not bit for bit.

    >>> compress(torch.rand(3, 3, 16, 16), "x264", 23).shape
    torch.Size([3, 3, 16, 16])
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"compress: expected (T, 3, H, W) frames, got {tuple(frames.shape)}")
    arr = _to_uint8(frames)
    out = _encode_jpeg(arr, quality) if codec == "jpeg" else _encode_video(arr, codec, int(quality), preset)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(frames.device, torch.float32) / 255.0


def effective_level(noisy: torch.Tensor, clean: torch.Tensor) -> float:
    """``std(noisy - clean)`` on the 0-255 scale: how much noise a degraded clip carries.

    >>> round(effective_level(torch.tensor([0.0, 2.0]) / 255, torch.zeros(2)), 3)
    1.0
    """
    return float((noisy.float() - clean.float()).std(unbiased=False)) * 255.0


@dataclass(frozen=True)
class Degradation:
    """One setting of a degradation: ``kind`` (gaussian, camera, compressed, camera+compressed),
    the Gaussian ``sigma`` (gaussian and compressed), the camera ``iso`` level (camera kinds)
    and the ``codec`` and its ``quality`` (CRF for x264/x265, JPEG quality) for the compressed kinds.

    >>> Degradation("compressed", sigma=15, codec="x264", quality=23).label
    'compressed s15 x264 crf23'
    """

    kind: str
    sigma: float = 0.0
    iso: str = ""
    codec: str = ""
    quality: int = 0
    preset: str = "medium"

    def __post_init__(self) -> None:
        if self.kind not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {self.kind!r} (known: {', '.join(DEGRADATIONS)})")
        if "camera" in self.kind and self.iso not in CAMERA_LEVELS:
            raise ValueError(f"unknown camera level {self.iso!r} (known: {', '.join(CAMERA_LEVELS)})")
        if "compressed" in self.kind and self.codec not in CODECS:
            raise ValueError(f"unknown codec {self.codec!r} (known: {', '.join(CODECS)})")

    @property
    def label(self) -> str:
        """A short name for tables: ``gaussian s15``, ``camera iso3200``, ``compressed s15 x264 crf23``."""
        parts = [self.kind]
        if "camera" in self.kind:
            parts.append(self.iso)
        else:
            parts.append(f"s{self.sigma:g}")
        if "compressed" in self.kind:
            parts += [self.codec, f"{'q' if self.codec == 'jpeg' else 'crf'}{self.quality}"]
        return " ".join(parts)


def parse_degradation(label: str) -> Degradation:
    """The :class:`Degradation` a table label names (the inverse of :attr:`Degradation.label`);
    a label that names none is a ValueError quoting it.

    >>> parse_degradation("compressed s15 x264 crf23") == Degradation("compressed", sigma=15, codec="x264", quality=23)
    True
    >>> parse_degradation("camera+compressed iso800 jpeg q70").label
    'camera+compressed iso800 jpeg q70'
    """
    words = label.split()
    try:
        kind, source, rest = words[0], words[1], words[2:]
        fields: dict = {"iso": source} if "camera" in kind else {"sigma": float(source.removeprefix("s"))}
        if "camera" not in kind and not source.startswith("s"):
            raise ValueError("the noise source must be s<sigma>")
        if "compressed" in kind:
            codec, quality = rest
            prefix = "q" if codec == "jpeg" else "crf"
            if not quality.startswith(prefix):
                raise ValueError(f"the quality must be {prefix}<value>")
            fields.update(codec=codec, quality=int(quality.removeprefix(prefix)))
        elif rest:
            raise ValueError("extra words")
        return Degradation(kind, **fields)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"degradation {label!r} is not one (say 'gaussian s15', 'camera iso3200', "
                         f"'compressed s15 x264 crf23', 'camera+compressed iso800 jpeg q70'): {exc}") from None


def degrade(clean: torch.Tensor, spec: Degradation, seed: int = 0) -> torch.Tensor:
    """The clip ``(T, 3, H, W)`` in [0, 1] degraded as ``spec`` says, in 8-bit levels; deterministic in ``seed``.

    >>> clean = torch.full((2, 3, 16, 16), 0.5)
    >>> a = degrade(clean, Degradation("gaussian", sigma=10), seed=1)
    >>> bool(torch.equal(a, degrade(clean, Degradation("gaussian", sigma=10), seed=1)))
    True
    """
    from .synth import noisy_8bit

    generator = torch.Generator().manual_seed(int(seed))
    if "camera" in spec.kind:
        noisy, _ = camera_noise(clean, CAMERA_LEVELS[spec.iso], generator=generator)
    else:
        noisy = noisy_8bit(clean, spec.sigma, generator)
    if "compressed" in spec.kind:
        noisy = compress(noisy, spec.codec, spec.quality, spec.preset)
    return noisy


def degradation_grid(kinds: Sequence[str], sigmas: Sequence[float] = (10, 15, 25),
                     isos: Sequence[str] = tuple(CAMERA_LEVELS), codecs: Sequence[str] = ("x264",),
                     crfs: Sequence[int] = (23, 28), jpeg_qualities: Sequence[int] = (50, 70, 90)) -> list[Degradation]:
    """Every setting of the degradation ``kinds``: gaussian per sigma; camera per ISO level;
    compressed per sigma, codec and CRF (JPEG: per quality); camera+compressed per ISO, codec
    and CRF/quality. A value out of range is a ValueError naming it.

    >>> [d.label for d in degradation_grid(["camera", "compressed"], sigmas=[15], isos=["iso800"], crfs=[23])]
    ['camera iso800', 'compressed s15 x264 crf23']
    """
    for kind in kinds:
        if kind not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {kind!r} (known: {', '.join(DEGRADATIONS)})")
    for codec in codecs:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    for crf in crfs:
        if not 0 <= crf <= 51:
            raise ValueError(f"CRF {crf} is out of range (0-51)")
    for q in jpeg_qualities:
        if not 1 <= q <= 100:
            raise ValueError(f"JPEG quality {q} is out of range (1-100)")
    for s in sigmas:
        if not 0 <= s <= 255:
            raise ValueError(f"sigma {s:g} is out of range (0-255)")
    qualities = {c: (jpeg_qualities if c == "jpeg" else crfs) for c in codecs}
    out: list[Degradation] = []
    for kind in kinds:
        sources = [dict(iso=i) for i in isos] if "camera" in kind else [dict(sigma=float(s)) for s in sigmas]
        for source in sources:
            if "compressed" not in kind:
                out.append(Degradation(kind, **source))
                continue
            out += [Degradation(kind, codec=c, quality=int(q), **source) for c in codecs for q in qualities[c]]
    return out
