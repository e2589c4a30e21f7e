"""No half-written output: write to a hidden temporary name beside the target, then rename.

The temporary file lives in the target's own directory (so ``os.replace`` is an atomic
rename on the same file system) and keeps the real extension last, so that FFmpeg and
OpenCV pick the format from it: ``out.mp4`` is written as ``.out.partial.mp4``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import OutputError

__all__ = ["partial_path", "check_output_path", "commit", "discard", "same_file"]


def partial_path(target: str | os.PathLike) -> Path:
    """The temporary path a result is written to before it is renamed onto ``target``.

    >>> partial_path("videos/out.mp4").as_posix()
    'videos/.out.partial.mp4'
    """
    target = Path(target)
    return target.with_name(f".{target.stem}.partial{target.suffix}")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file once symlinks and ``..`` are resolved.

    >>> same_file("a/../clip.mp4", "clip.mp4")
    True
    """
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(target: str | os.PathLike, *, overwrite: bool = False,
                      inputs: tuple[str | os.PathLike | None, ...] = ()) -> Path:
    """Refuse an output path before any work starts; return it as a Path.

    Raises :class:`OutputError` when ``target`` is one of ``inputs`` (symlinks resolved),
    exists and ``overwrite`` is false, is a directory, or lies in a directory that is
    missing or not writable (checked by creating and removing a scratch file there).

    >>> check_output_path("out.mp4", overwrite=True)  # doctest: +SKIP
    PosixPath('out.mp4')
    """
    target = Path(target)
    for src in inputs:
        if src is not None and same_file(src, target):
            raise OutputError(f"{target}: output is the same file as the input {src}; "
                              "choose another output path")
    if target.is_dir():
        raise OutputError(f"{target}: is a directory, not an output file")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OutputError(f"{target}: exists; pass --overwrite to replace it")
    check_writable_dir(target.parent if str(target.parent) else Path("."), for_path=target)
    return target


def check_writable_dir(folder: Path, *, for_path: Path | None = None) -> None:
    """Raise :class:`OutputError` unless ``folder`` exists and a file can be created in it.

    >>> check_writable_dir(Path("."))  # doctest: +SKIP
    """
    label = for_path if for_path is not None else folder
    folder = Path(folder) if str(folder) else Path(".")
    if not folder.exists():
        raise OutputError(f"{label}: directory {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{label}: {folder} is not a directory")
    # os.access answers "yes" for root and lies on some network file systems: try for real.
    try:
        fd, scratch = tempfile.mkstemp(prefix=".streamden-", suffix=".probe", dir=folder)
    except OSError as exc:
        raise OutputError(f"{label}: directory {folder} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(scratch)


def commit(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Atomically move the finished temporary file ``tmp`` onto ``target``.

    >>> commit(".out.partial.mp4", "out.mp4")  # doctest: +SKIP
    """
    try:
        os.replace(tmp, target)
    except OSError as exc:
        discard(tmp)
        raise OutputError(f"{target}: could not move the finished file into place "
                          f"({exc.strerror})") from None


def discard(tmp: str | os.PathLike) -> None:
    """Delete a temporary file if it exists; never raises.

    >>> discard("does-not-exist.partial.mp4")
    """
    try:
        os.unlink(tmp)
    except OSError:
        pass
