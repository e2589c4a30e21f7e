"""Kernel loading errors are loud and name what to do; they need no GPU to check."""
import shutil
import sys
from pathlib import Path

import pytest

from streamden.cuda import module
from streamden.errors import StreamdenError


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


# --- compile and load failures: one line naming the kernel file and what failed (no GPU needed) ---

class _CompileException(Exception):
    """Stands in for cupy.cuda.compiler.CompileException (the message is the compiler's log)."""


_CompileException.__name__ = "CompileException"


def _nvcc_cupy(tmp_path):
    """A stand-in for cupy whose RawModule compiles with the real nvcc (cupy's compile needs a GPU)."""
    import contextlib
    import subprocess
    import types

    class RawModule:
        def __init__(self, code, options):
            self.code, self.options = code, options

        def compile(self):
            src = tmp_path / "4f2e9a.cu"   # cupy compiles a copy under a hashed name too
            src.write_text(self.code)
            proc = subprocess.run(["nvcc", "-cubin", "-arch=sm_90", *self.options, "-o", str(tmp_path / "k.cubin"),
                                   str(src)], capture_output=True, text=True, timeout=120)
            if proc.returncode:
                raise _CompileException(proc.stdout + proc.stderr)

    cuda = types.SimpleNamespace(Device=lambda index: contextlib.nullcontext())
    return types.SimpleNamespace(RawModule=RawModule, cuda=cuda)


@pytest.fixture
def broken_kernels(tmp_path, monkeypatch):
    """A kernels folder holding warp.cu with two errors (lines 3 and 4) and a good ok.cu."""
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "warp.cu").write_text('extern "C" __global__ void warp_f32(float* out) {\n'
                                     "    int i = threadIdx.x;\n"
                                     "    out[i] = undefined_thing;\n"
                                     "    int y = ;\n"
                                     "}\n")
    (kernels / "ok.cu").write_text('extern "C" __global__ void ok(float* out) { out[threadIdx.x] = 1.0f; }\n')
    monkeypatch.setattr(module, "kernels_dir", lambda: kernels)
    module.load_module.cache_clear()
    yield kernels
    module.load_module.cache_clear()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH (CUDA toolkit not installed)")
def test_a_kernel_that_does_not_compile_fails_loudly_in_one_line(broken_kernels, tmp_path, monkeypatch):
    monkeypatch.setattr(module, "cupy", lambda: _nvcc_cupy(tmp_path))
    assert module.load_module("ok") is not None            # the stand-in compiles good sources
    with pytest.raises(module.KernelError) as info:
        module.load_module("warp")
    err = info.value
    assert isinstance(err, StreamdenError) and err.exit_code == 6
    assert str(err) == (f'{broken_kernels / "warp.cu"}: failed to compile: line 3: identifier "undefined_thing" '
                        "is undefined (and 1 more error)")
    assert "expected an expression" in err.log            # the whole compiler log stays on the error
    assert isinstance(err.__cause__, _CompileException)


def test_a_kernel_that_does_not_load_names_the_file_and_device(broken_kernels, monkeypatch):
    import contextlib
    import types

    class CUDADriverError(RuntimeError):
        pass

    class RawModule:
        def __init__(self, code, options):
            pass

        def compile(self):
            raise CUDADriverError("CUDA_ERROR_NO_BINARY_FOR_GPU: no kernel image is available\nfor execution")

    cuda = types.SimpleNamespace(Device=lambda index: contextlib.nullcontext())
    fake = types.SimpleNamespace(RawModule=RawModule, cuda=cuda)
    monkeypatch.setattr(module, "cupy", lambda: fake)
    with pytest.raises(StreamdenError) as info:
        module.load_module("ok", 1)
    assert str(info.value) == (f'{broken_kernels / "ok.cu"}: failed to load on CUDA device 1: CUDADriverError: '
                               "CUDA_ERROR_NO_BINARY_FOR_GPU: no kernel image is available")


def test_missing_cupy_is_a_streamden_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(StreamdenError, match=r'pip install "streamden\[cuda\]"') as info:
        module.cupy()
    assert "\n" not in str(info.value)


def test_compile_errors_in_a_shared_header_name_the_header():
    log = ("/repo/kernels/common.cuh(9): error: expected a \";\"\n\n"
           "1 error detected in the compilation of \"/tmp/x/1a2b.cu\".\n")
    err = module.compile_error(Path("kernels/flow.cu"), _CompileException(log))
    assert str(err) == 'kernels/flow.cu: failed to compile: common.cuh line 9: expected a ";"'
