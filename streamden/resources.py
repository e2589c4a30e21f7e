"""Where the packaged data folders are: kernels/ and configs/ ship as streamden.kernels and
streamden.configs in a wheel, and are the top-level folders in a source checkout."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _package_dir(package: str, fallback: str) -> Path:
    try:
        path = Path(str(resources.files(package)))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return _REPO_ROOT / fallback


def kernels_dir() -> Path:
    """The folder holding the CUDA sources (``*.cu``)."""
    return _package_dir("streamden.kernels", "kernels")


def configs_dir() -> Path:
    """The folder holding the YAML presets."""
    return _package_dir("streamden.configs", "configs")
