"""``kernels/*.cu`` run on the host: test support, so the parity suite runs where there is no GPU.

Each kernel source is compiled as C++ by the system compiler (``$CXX``, else ``g++`` or
``c++``) with ``host_shim.h``, which supplies what the kernels use of CUDA (``threadIdx``,
``blockIdx``, ``blockDim``, ``gridDim``, the qualifiers, ``min``/``max``, and half conversions
in software that round like PTX ``cvt.rn.f16.f32``; ``sample.cuh`` picks them under
``STREAMDEN_EMULATE`` instead of its inline PTX). Every ``extern "C"`` kernel gets a launcher
that runs each thread of the grid, one after another; the grid and block are the ones
:func:`streamden.cuda.module.launch_config` gives the GPU launch, so a grid that misses
pixels misses them here too.

Limits are loud: a kernel that uses shared memory, a barrier, an atomic, a warp intrinsic,
cooperative groups or inline assembly (after preprocessing, so the ``#ifdef``-ed PTX of
``sample.cuh`` does not count) fails :func:`build` with :class:`EmulationError` naming the line;
threads that run one at a time cannot emulate them, and nothing is skipped.

Arithmetic is IEEE float32 with every operation rounded (``-ffp-contract=off``); nvcc fuses
multiply-adds, so a GPU and the emulation may differ by an ulp, well inside the parity
tolerances. Tensors are copied into buffers with 4 KiB of ``0xFF`` bytes (NaN for floats)
on each side: an out-of-bounds read brings NaN (or 255) into the result, and an
out-of-bounds write is an :class:`EmulationError`. Arguments are checked against the kernel's parameter types (a Python
int where the kernel takes a ``float`` is an error here, garbage on a GPU).

Compiled libraries are cached in ``$STREAMDEN_EMULATE_CACHE`` (default: a folder under the
temp dir), keyed by a hash of the preprocessed source, the flags and the compiler, and in the
process per source. This is not a runtime fallback: only :func:`emulated` (tests) routes
CPU tensors here.

>>> with emulated():  # doctest: +SKIP
...     ops.warp_cuda(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 8))
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from . import module
from ..errors import KernelError
from ..resources import kernels_dir

SHIM = Path(__file__).with_name("host_shim.h")
CXX_FLAGS = ("-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math")
PAD = 4096          # bytes of 0xFF around every tensor argument
_RUN, _SIG = "streamden_run_", "streamden_sig_"

# What a host that runs one thread at a time cannot emulate, as it appears after preprocessing.
UNSUPPORTED = (
    (re.compile(r"\b__shared__\b"), "shared memory"),
    (re.compile(r"\b(?:__syncthreads\w*|__syncwarp|__threadfence\w*|__barrier_sync)\b"), "a barrier"),
    (re.compile(r"\b(?:atomic[A-Z]\w*|__atomic\w*)\b"), "an atomic"),
    (re.compile(r"\b__(?:shfl\w*|ballot\w*|any_sync|all_sync|uni_sync|activemask|match_\w+|reduce_\w+)\b"),
     "a warp intrinsic"),
    (re.compile(r"\bcooperative_groups\b"), "cooperative groups"),
    (re.compile(r"\b(?:asm|__asm__|__asm)\b"), "inline assembly"),
)
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')
_MARKER = re.compile(r'^# (\d+) "((?:[^"\\]|\\.)*)"')
_GXX_ERROR = re.compile(r"^([^\n:]+):(\d+):(?:\d+:)? (?:fatal )?error: ([^\n]*)$", re.MULTILINE)
_TENSOR_TYPES = {
    "f32": (torch.float32,), "f64": (torch.float64,), "i32": (torch.int32,), "i64": (torch.int64,),
    "u8": (torch.uint8,), "u16": (torch.uint16, torch.float16), "u32": (torch.uint32,),
}
_SCALARS = {"i32": (ctypes.c_int32, int), "u32": (ctypes.c_uint32, int), "i64": (ctypes.c_int64, int),
            "f32": (ctypes.c_float, float), "f64": (ctypes.c_double, float)}

_lock = threading.RLock()   # the shim's thread indices are globals of the library: one launch at a time


class EmulationError(KernelError):
    """A kernel cannot be built, or was launched wrongly, in the host emulation; names the file."""


def compiler() -> str:
    """The C++ compiler of the emulation: ``$CXX``, else ``g++`` or ``c++`` on PATH.

    >>> Path(compiler()).name in ("g++", "c++") or "CXX" in os.environ
    True
    """
    found = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not found:
        raise EmulationError("no C++ compiler for the host emulation of kernels/*.cu: install g++ or set $CXX")
    return found


@functools.lru_cache(maxsize=None)
def _compiler_id(cxx: str) -> str:
    proc = subprocess.run([cxx, "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else cxx


def _c_locale() -> dict[str, str]:
    """The environment with the compiler's messages in plain ASCII (no locale quotes)."""
    return {**os.environ, "LC_ALL": "C"}


def cache_dir() -> Path:
    """Where compiled libraries are kept: ``$STREAMDEN_EMULATE_CACHE``, else a per-user temp folder."""
    path = os.environ.get("STREAMDEN_EMULATE_CACHE")
    user = getattr(os, "getuid", lambda: "user")()
    return Path(path) if path else Path(tempfile.gettempdir()) / f"streamden-emulate-{user}"


def kernel_names(source: str) -> list[str]:
    """The ``extern "C" __global__`` functions of a kernel source, in order.

    >>> kernel_names('extern "C" __global__ void a(int n) {}\\nextern "C" __global__ void b() {}')
    ['a', 'b']
    """
    code = re.sub(r"//[^\n]*|/\*.*?\*/", " ", source, flags=re.DOTALL)
    return _KERNEL.findall(code)


def translation_unit(path: Path, source: str, names: Sequence[str]) -> str:
    """The C++ compiled for one kernel source: the shim, the source as ``path``, one launcher per kernel."""
    launchers = "".join(
        f'extern "C" void {_RUN}{n}(const unsigned int* config, void** args) {{\n'
        f'    streamden_emu::run({n}, config, args);\n}}\n'
        f'extern "C" const char* {_SIG}{n}() {{ return streamden_emu::signature({n}); }}\n' for n in names)
    return (f'#include "{_c_string(SHIM)}"\n#line 1 "{_c_string(path)}"\n{source}\n'
            f'#line 1 "streamden-emulate-launchers"\n{launchers}')


def _c_string(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace('"', '\\"')


def unsupported(preprocessed: str, path: Path) -> list[str]:
    """Each use of something the emulation cannot run, as ``'<file> line N: <token> (<what>)'``.

    Only lines from ``path`` and the kernels folder count (not the shim or system headers).
    """
    kernels = kernels_dir().resolve()
    found, name, ours, line = [], "", False, 0
    for text in preprocessed.splitlines():
        marker = _MARKER.match(text)
        if marker:
            line, current = int(marker.group(1)), Path(marker.group(2))
            name = current.name
            ours = str(current) == str(path) or (current.suffix in (".cu", ".cuh") and
                                                 current.resolve().parent == kernels)
            continue
        if ours:
            for pattern, what in UNSUPPORTED:
                found.extend(f"{name} line {line}: {hit.group(0)} ({what})" for hit in pattern.finditer(text))
        line += 1
    return found


class HostKernel:
    """One emulated kernel: call it with ``grid``, ``block`` and the kernel's arguments."""

    def __init__(self, module_path: Path, name: str, run: Any, signature: str) -> None:
        self.path, self.name, self._run = module_path, name, run
        self.params = signature.rstrip(",").split(",") if signature else []

    def __call__(self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any]) -> None:
        """Run every thread of ``grid`` x ``block``; tensors (or numpy arrays) on the CPU, ints, floats."""
        where = f"{self.path}: {self.name}"
        if len(args) != len(self.params):
            raise EmulationError(f"{where} takes {len(self.params)} arguments ({', '.join(self.params)}), "
                                 f"got {len(args)}")
        buffers: dict[tuple[int, int], torch.Tensor] = {}
        keep, pointers, outputs = [], [], []
        for k, (arg, param) in enumerate(zip(args, self.params)):
            if param.endswith("*"):
                tensor = self._tensor(where, k, arg, param)
                key = (tensor.data_ptr(), tensor.numel() * tensor.element_size())
                if key not in buffers:
                    buffers[key] = _padded(tensor)
                value = ctypes.c_void_p(buffers[key].data_ptr() + PAD)
                if not param.startswith("const "):
                    outputs.append((tensor, buffers[key], k))
            else:
                value = self._scalar(where, k, arg, param)
            keep.append(value)
            pointers.append(ctypes.addressof(value))
        _check_overlaps(where, list(buffers))
        config = (ctypes.c_uint * 6)(*grid, *block)
        argv = (ctypes.c_void_p * max(1, len(pointers)))(*pointers)
        with _lock:
            self._run(config, argv)
        for key, buffer in buffers.items():
            if not (bool((buffer[:PAD] == 0xFF).all()) and bool((buffer[PAD + key[1]:] == 0xFF).all())):
                k = next(k for k, a in enumerate(args) if isinstance(a, (torch.Tensor, np.ndarray))
                         and _as_tensor(a).data_ptr() == key[0])
                raise EmulationError(f"{where} wrote outside argument {k} ({self.params[k]}, {key[1]} bytes)")
        for tensor, buffer, _ in outputs:
            tensor.view(-1).view(torch.uint8).copy_(buffer[PAD:PAD + tensor.numel() * tensor.element_size()])

    def _tensor(self, where: str, k: int, arg: Any, param: str) -> torch.Tensor:
        if not isinstance(arg, (torch.Tensor, np.ndarray)):
            raise EmulationError(f"{where}: argument {k} ({param}) must be a tensor, got {type(arg).__name__}")
        tensor = _as_tensor(arg)
        element = param.removeprefix("const ").rstrip("*")
        if tensor.device.type != "cpu" or not tensor.is_contiguous():
            raise EmulationError(f"{where}: argument {k} ({param}) must be a contiguous CPU tensor")
        if tensor.dtype not in _TENSOR_TYPES.get(element, ()):
            raise EmulationError(f"{where}: argument {k} ({param}) got a {tensor.dtype} tensor")
        return tensor

    def _scalar(self, where: str, k: int, arg: Any, param: str) -> Any:
        ctype, kind = _SCALARS.get(param, (None, None))
        # What module._arg passes to a GPU: int -> int32, float -> float32; a mismatch is garbage there.
        if ctype is None or isinstance(arg, bool) or type(arg) is not kind:
            raise EmulationError(f"{where}: argument {k} ({param}) got {type(arg).__name__} {arg!r}")
        if kind is int and int(ctype(arg).value) != arg:
            raise EmulationError(f"{where}: argument {k} ({param}) out of range: {arg}")
        return ctype(arg)


def _as_tensor(arg: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arg) if isinstance(arg, np.ndarray) else arg.detach()


def _padded(tensor: torch.Tensor) -> torch.Tensor:
    """The bytes of ``tensor`` with :data:`PAD` bytes of ``0xFF`` on each side."""
    nbytes = tensor.numel() * tensor.element_size()
    buffer = torch.full((nbytes + 2 * PAD,), 0xFF, dtype=torch.uint8)
    buffer[PAD:PAD + nbytes] = tensor.reshape(-1).view(torch.uint8)
    return buffer


def _check_overlaps(where: str, spans: list[tuple[int, int]]) -> None:
    spans = sorted(spans)
    for (a, size), (b, _) in zip(spans, spans[1:]):
        if a + size > b:
            raise EmulationError(f"{where}: two tensor arguments overlap in part (the emulation copies each)")


class HostModule:
    """One kernel source built for the host: :meth:`get_function` gives its kernels."""

    def __init__(self, path: Path, library: Path, names: Sequence[str]) -> None:
        self.path, self.library, self.names = path, library, tuple(names)
        self._lib = ctypes.CDLL(str(library))
        self._kernels: dict[str, HostKernel] = {}

    def get_function(self, name: str) -> HostKernel:
        """The kernel ``name`` (an ``extern "C" __global__`` function of the source)."""
        if name not in self.names:
            raise EmulationError(f"{self.path}: no kernel {name!r} (has {', '.join(self.names)})")
        if name not in self._kernels:
            run = getattr(self._lib, _RUN + name)
            run.restype, run.argtypes = None, [ctypes.c_void_p, ctypes.c_void_p]
            sig = getattr(self._lib, _SIG + name)
            sig.restype, sig.argtypes = ctypes.c_char_p, []
            self._kernels[name] = HostKernel(self.path, name, run, sig().decode())
        return self._kernels[name]


_modules: dict[tuple[str, str], HostModule] = {}


def build(name: str, source: str | None = None) -> HostModule:
    """``kernels/<name>.cu`` (or ``source`` under that name) compiled for the host; once per process.

    Raises :class:`EmulationError` naming the file and line for a kernel outside the emulated
    subset or a source that does not compile.
    """
    path = kernels_dir() / f"{name}.cu"
    source = module.kernel_source(name) if source is None else source
    with _lock:
        key = (str(path), source)
        if key not in _modules:
            _modules[key] = _build(path, source)
        return _modules[key]


def _build(path: Path, source: str) -> HostModule:
    cxx = compiler()
    names = kernel_names(source)
    include = ("-I", str(kernels_dir()))
    unit = translation_unit(path, source, names)
    pre = subprocess.run([cxx, *CXX_FLAGS, *include, "-E", "-x", "c++", "-"], input=unit,
                         capture_output=True, text=True, env=_c_locale())
    if pre.returncode:
        raise _compile_error(path, pre.stderr)
    uses = unsupported(pre.stdout, path)
    if uses:
        more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
        raise EmulationError(
            f"{path}: cannot be emulated on the host: {uses[0]}{more}; the emulation runs a grid's threads one "
            "at a time, so kernels stay free of shared memory, barriers, atomics and warp intrinsics",
            log="\n".join(uses))
    digest = hashlib.sha256("\0".join((pre.stdout, *CXX_FLAGS, _compiler_id(cxx))).encode()).hexdigest()[:20]
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / f"{path.stem}-{digest}.so"
    if not library.is_file():
        partial = folder / f".{library.name}.{os.getpid()}.{threading.get_ident()}"
        proc = subprocess.run([cxx, *CXX_FLAGS, "-shared", "-fPIC", "-x", "c++-cpp-output", "-", "-o",
                               str(partial)], input=pre.stdout, capture_output=True, text=True, env=_c_locale())
        if proc.returncode:
            partial.unlink(missing_ok=True)
            raise _compile_error(path, proc.stderr)
        os.replace(partial, library)        # atomic: a concurrent build never loads half a file
    return HostModule(path, library, names)


def _compile_error(path: Path, log: str) -> EmulationError:
    """The one-line error for a source the host compiler rejects: its first error and where."""
    errors = _GXX_ERROR.findall(log)
    if not errors:
        first = next((line.strip() for line in log.splitlines() if line.strip()), "no message")
        return EmulationError(f"{path}: failed to build for the host emulation: {first}", log=log)
    file, line, message = errors[0]
    where = f"line {line}" if Path(file).name == path.name else f"{Path(file).name} line {line}"
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return EmulationError(f"{path}: failed to build for the host emulation: {where}: {message}{more}", log=log)


def launch(name: str, function: str, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
           source: str | None = None) -> None:
    """Run ``function`` of ``kernels/<name>.cu`` (or of ``source``) on the host over ``grid`` x ``block``."""
    build(name, source).get_function(function)(grid, block, args)


@contextlib.contextmanager
def emulated(sources: Mapping[str, str] | None = None) -> Iterator[None]:
    """Inside the block, kernel launches on CPU tensors (``streamden.cuda.ops``, and the public
    ops of :mod:`streamden.align`) run on the host emulation; CUDA tensors still run on the GPU.

    ``sources`` maps a kernel file's name (``"flow"``) to a source used in its place (a test's
    deliberately broken copy).
    """
    sources = dict(sources or {})

    def host_launch(name: str, function: str, grid: Sequence[int], block: Sequence[int], args: Sequence[Any]):
        launch(name, function, grid, block, args, sources.get(name))

    previous, module._host_launcher = module._host_launcher, host_launch
    try:
        yield
    finally:
        module._host_launcher = previous
