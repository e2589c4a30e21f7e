"""Every kernels/*.cu builds with nvcc for sm_80 and sm_90, and with NVRTC as RawModule sees it."""
import shutil
import subprocess

import pytest

from streamden.cuda.module import compile_options, kernel_source, source_files
from streamden.resources import kernels_dir

ARCHS = ("sm_80", "sm_90")


def test_kernels_folder_has_every_concern():
    assert {p.stem for p in source_files()} == {"color", "flow", "occlusion", "warp"}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH (CUDA toolkit not installed)")
def test_every_kernel_compiles_with_nvcc(tmp_path):
    sources = [str(p) for p in source_files()]
    # One nvcc per architecture, all sources at once, both running in parallel.
    procs = {}
    for arch in ARCHS:
        out = tmp_path / arch
        out.mkdir()
        cmd = ["nvcc", "-cubin", f"-arch={arch}", "-std=c++17", f"-I{kernels_dir()}", "--output-directory", str(out),
               *sources]
        procs[arch] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for arch, proc in procs.items():
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"nvcc -arch={arch} failed:\n{log}"
        built = sorted(p.stem for p in (tmp_path / arch).glob("*.cubin"))
        assert built == sorted(p.stem for p in source_files()), log


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # cupy or libnvrtc missing: the `cuda` extra is not installed
        pytest.skip(f'NVRTC unavailable (pip install "streamden[cuda]"): {exc}')
    return nvrtc


def test_every_kernel_compiles_with_nvrtc():
    nvrtc = _nvrtc()
    for path in source_files():
        prog = nvrtc.createProgram(kernel_source(path.stem), path.name, (), ())
        try:
            nvrtc.compileProgram(prog, compile_options() + ("-arch=compute_90",))
        except Exception as exc:
            pytest.fail(f"{path.name}: NVRTC failed: {exc}\n{nvrtc.getProgramLog(prog)}")
