"""Load the CUDA sources of ``kernels/`` with ``cupy.RawModule`` and launch them on torch tensors.

Modules are compiled at first use and cached per process and device (cupy also caches the
binaries on disk). Kernels run on torch's current stream, and tensors cross over through
DLPack without copies: outputs are allocated by torch and handed to the kernel as cupy views.
A source that fails to compile or load raises :class:`KernelError`; there is no fallback.

Tests run the same launches on CPU tensors through the host emulation of
:mod:`streamden.cuda.emulate` (inside ``emulate.emulated()``): :func:`launch` then hands the
grid and block of :func:`launch_config` to it instead of to the GPU.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import KernelError
from ..resources import kernels_dir

BLOCK = 256
COMPILE_OPTIONS = ("-std=c++17",)

# Set by streamden.cuda.emulate.emulated() (tests only): runs launches on CPU tensors on the host.
_host_launcher: Callable[..., None] | None = None


class CupyMissing(KernelError, ImportError):
    """CuPy is not installed (or does not import): CUDA kernels cannot run; names the extra to install."""


def cupy():
    """The ``cupy`` module, or :class:`CupyMissing` (an ImportError) that names the extra providing it.

    >>> cupy().__name__  # doctest: +SKIP
    'cupy'
    """
    try:
        import cupy as cp
    except ImportError as exc:  # a missing or broken install: say how to get it
        raise CupyMissing('CUDA tensors need CuPy: pip install "streamden[cuda]" '
                          f"(cupy-cuda13x); importing cupy failed: {_one_line(str(exc))}") from exc
    return cp


def kernel_source(name: str) -> str:
    """The source of ``kernels/<name>.cu``, exactly as :func:`load_module` compiles it.

    >>> "warp_f32" in kernel_source("warp")
    True
    """
    path = kernels_dir() / f"{name}.cu"
    if not path.is_file():
        raise KernelError(f"{path}: kernel source not found")
    return path.read_text()


def compile_options() -> tuple[str, ...]:
    """Compiler options of every module: C++17 and the kernels folder for shared ``*.cuh``.

    >>> compile_options()[0]
    '-std=c++17'
    """
    return COMPILE_OPTIONS + (f"-I{kernels_dir()}",)


@functools.lru_cache(maxsize=None)
def load_module(name: str, device: int = 0) -> Any:
    """``kernels/<name>.cu`` compiled and loaded as a ``cupy.RawModule`` on CUDA ``device``."""
    cp = cupy()
    source = kernel_source(name)
    try:
        with cp.cuda.Device(device):
            module = cp.RawModule(code=source, options=compile_options())
            module.compile()
    except Exception as exc:  # CompileException, driver errors: all mean the kernel is unusable
        raise compile_error(kernels_dir() / f"{name}.cu", exc, device) from exc
    return module


def compile_error(path: Path, exc: BaseException, device: int = 0) -> KernelError:
    r"""The one-line :class:`KernelError` for kernel ``path`` failing to compile or load with ``exc``.

    A compiler log (NVRTC's or nvcc's, many lines) is boiled down to its first error and where
    it is (a line of ``path``, or of a shared ``*.cuh``); the whole log stays on ``.log``.

    >>> log = '/tmp/x/k.cu(7): error: identifier "y" is undefined\n\n1 error detected in the compilation of "k.cu".'
    >>> str(compile_error(Path("kernels/warp.cu"), RuntimeError(log)))
    'kernels/warp.cu: failed to compile: line 7: identifier "y" is undefined'
    """
    text = str(exc)
    if type(exc).__name__ == "CompileException" or _ERROR_LINE.search(text):
        errors = _ERROR_LINE.findall(text)
        if errors:
            file, line, message = errors[0]
            where = f"{Path(file.strip()).name} line {line}" if file.strip().endswith(".cuh") else f"line {line}"
            more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
            return KernelError(f"{path}: failed to compile: {where}: {message.strip()}{more}", log=text)
        return KernelError(f"{path}: failed to compile: {_one_line(text)}", log=text)
    return KernelError(f"{path}: failed to load on CUDA device {device}: {type(exc).__name__}: {_one_line(text)}",
                       log=text)


# "file.cu(12): error: message", as NVRTC and nvcc print a compile error (warnings are skipped).
_ERROR_LINE = re.compile(r"^([^\n]*?)\((\d+)\): (?:catastrophic )?error[^:]*: ([^\n]*)$", re.MULTILINE)


def _one_line(text: str) -> str:
    """The first non-empty line of ``text`` (error messages are printed as one line)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


@functools.lru_cache(maxsize=None)
def get_kernel(name: str, function: str, device: int = 0) -> Any:
    """The ``extern "C"`` function ``function`` of ``kernels/<name>.cu`` on ``device``."""
    module = load_module(name, device)
    try:
        return module.get_function(function)
    except Exception as exc:
        raise KernelError(f"{kernels_dir() / (name + '.cu')}: no kernel {function!r}: {_one_line(str(exc))}",
                          log=str(exc)) from exc


def as_cupy(tensor: torch.Tensor) -> Any:
    """A zero-copy cupy view of a contiguous CUDA ``tensor`` (DLPack)."""
    if not tensor.is_contiguous():
        raise ValueError("kernels take contiguous tensors")
    return cupy().from_dlpack(tensor.detach())


def _arg(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return as_cupy(value)
    if isinstance(value, bool):
        raise TypeError("pass flags to kernels as int")
    if isinstance(value, int):
        return np.int32(value)
    if isinstance(value, float):
        return np.float32(value)
    return value


def grid_for(total: int, block: int = BLOCK) -> tuple[int, int, int]:
    """A 1-D grid of ``block``-thread blocks covering ``total`` threads.

    >>> grid_for(1000)
    (4, 1, 1)
    """
    return (max(1, (total + block - 1) // block), 1, 1)


def launch_config(total: int, block: int = BLOCK) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The ``(grid, block)`` of a launch of ``total`` threads: on a GPU and in the host emulation alike.

    >>> launch_config(1000)
    ((4, 1, 1), (256, 1, 1))
    """
    return grid_for(total, block), (block, 1, 1)


def use_kernels(tensor: torch.Tensor) -> bool:
    """Whether the public ops run the kernels on ``tensor``: CUDA tensors, and CPU tensors in the emulation.

    >>> use_kernels(torch.zeros(1))
    False
    """
    return tensor.is_cuda or (_host_launcher is not None and tensor.device.type == "cpu")


def launch(name: str, function: str, total: int, *args: Any, device: torch.device | None = None) -> None:
    """Run ``function`` of ``kernels/<name>.cu`` with ``total`` threads on torch's current stream.

    Tensor arguments become cupy views, Python ints ``int32`` and floats ``float32`` (the
    kernels' parameter types). CPU tensors run on the host emulation where one is active.
    """
    if total <= 0:
        return
    grid, block = launch_config(total)
    device = device or next(a.device for a in args if isinstance(a, torch.Tensor))
    if _host_launcher is not None and device.type == "cpu":
        _host_launcher(name, function, grid, block, args)
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    cp = cupy()
    kernel = get_kernel(name, function, index)
    with cp.cuda.Device(index), torch_stream(index):
        try:
            kernel(grid, block, tuple(_arg(a) for a in args))
        except Exception as exc:
            raise KernelError(f"{kernels_dir() / (name + '.cu')}: launching {function} failed: "
                              f"{type(exc).__name__}: {_one_line(str(exc))}", log=str(exc)) from exc


def torch_stream(device: int) -> Any:
    """Torch's current stream on ``device`` as a cupy stream (a context manager), cached per stream."""
    stream = torch.cuda.current_stream(device)
    return _cupy_stream(stream.cuda_stream, device, stream)


@functools.lru_cache(maxsize=64)
def _cupy_stream(ptr: int, device: int, stream: Any) -> Any:
    cp = cupy()
    # CuPy 14 deprecates ExternalStream for the CUDA stream protocol (torch streams speak it);
    # older CuPy only has ExternalStream. Either way the kernels run on torch's stream.
    if hasattr(cp.cuda.Stream, "from_external") and hasattr(stream, "__cuda_stream__"):
        return cp.cuda.Stream.from_external(stream)
    return cp.cuda.ExternalStream(ptr, device)


def source_files() -> list[Path]:
    """Every ``kernels/*.cu`` source, sorted.

    >>> [p.name for p in source_files()]
    ['color.cu', 'flow.cu', 'occlusion.cu', 'warp.cu']
    """
    return sorted(kernels_dir().glob("*.cu"))
