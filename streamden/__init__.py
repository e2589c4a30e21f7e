"""streamden: real-time video and burst denoising on a streaming graph."""
from __future__ import annotations

__version__ = "0.1.0"
