"""Kernel loading errors are loud and name what to do; they need no GPU to check."""
import sys

import pytest

from streamden.cuda import module


def test_missing_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # what an environment without cupy looks like
    with pytest.raises(ImportError, match=r'pip install "streamden\[cuda\]"'):
        module.cupy()


def test_missing_source_names_the_file():
    with pytest.raises(module.KernelError, match="no_such_kernel.cu"):
        module.kernel_source("no_such_kernel")


def test_sources_are_read_from_the_kernels_folder():
    assert all(p.parent == module.kernels_dir() for p in module.source_files())
    assert module.grid_for(256) == (1, 1, 1) and module.grid_for(257) == (2, 1, 1)
