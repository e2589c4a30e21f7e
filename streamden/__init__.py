"""streamden: real-time video and burst denoising on a streaming graph.

>>> import streamden
>>> callable(streamden.denoise_video)
True
"""
from __future__ import annotations

__version__ = "0.1.0"

from .api import Denoiser, denoise_burst, denoise_frames, denoise_video  # noqa: E402

__all__ = ["Denoiser", "denoise_burst", "denoise_frames", "denoise_video", "__version__"]
