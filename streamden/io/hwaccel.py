"""Hardware video decoding (NVDEC) through PyAV's ``hwaccel`` API.

``input.hwaccel`` takes ``none`` (software decoding), ``cuda`` (NVDEC or one error) or
``auto`` (NVDEC when it works, else software). PyAV decodes on the device and copies each
frame back to system memory (``nv12``/``p010le`` instead of ``yuv420p``/``yuv420p10le``:
the same samples in another layout), so the RGB frames a source yields are the same
whichever decoder made them.

Whether NVDEC works is only known once a frame has been decoded: FFmpeg creates the CUDA
device when the file is opened (no driver or no GPU fails there) and picks the hardware
pixel format at the first frame (a profile NVDEC lacks, e.g. H.264 4:2:2, fails there).
:func:`nvdec_problem` tries both on the first frame, before any output exists; decoding then
runs with ``allow_software_fallback=False``, so a source that reports NVDEC uses it.
PyAV is imported lazily: importing this module needs no PyAV.

>>> check_hwaccel_mode("auto")
'auto'
>>> check_nvdec("clip.mp4")  # doctest: +SKIP
"""
from __future__ import annotations

from ..errors import ConfigError, InputError, StreamdenError

__all__ = ["HWACCEL_MODES", "check_hwaccel_mode", "cuda_hwaccel", "nvdec_problem", "check_nvdec"]

#: The values of ``input.hwaccel`` / ``--hwaccel``.
HWACCEL_MODES = ("none", "cuda", "auto")


def check_hwaccel_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`HWACCEL_MODES`, else a ConfigError naming the key.

    >>> check_hwaccel_mode("gpu")
    Traceback (most recent call last):
    ...
    streamden.errors.ConfigError: input.hwaccel must be one of none, cuda, auto; got 'gpu'
    """
    if mode not in HWACCEL_MODES:
        raise ConfigError(f"input.hwaccel must be one of {', '.join(HWACCEL_MODES)}; got {mode!r}")
    return mode


def cuda_hwaccel():
    """PyAV's settings for NVDEC decoding into system memory, without a software fallback.

    >>> cuda_hwaccel().allow_software_fallback
    False
    """
    from av.codec.hwaccel import HWAccel

    return HWAccel(device_type="cuda", allow_software_fallback=False)


def nvdec_problem(path: str, stream: int = 0) -> tuple[type[StreamdenError], str] | None:
    """Why NVDEC cannot decode video stream ``stream`` of ``path`` (None: it decoded a frame).

    The answer is the error class to raise and the reason: no usable CUDA device or driver
    (or an FFmpeg without CUDA) is a :class:`~streamden.errors.StreamdenError` (exit 1, as
    ``--device cuda`` on a machine without a GPU); a codec or profile NVDEC cannot decode
    is an :class:`~streamden.errors.InputError` (exit 2).

    >>> nvdec_problem("clip.mp4")  # doctest: +SKIP
    (<class 'streamden.errors.StreamdenError'>, 'no usable CUDA device or driver (FFmpeg: Operation not permitted)')
    """
    import av

    if "cuda" not in av.codec.hwaccel.hwdevices_available():
        return StreamdenError, "this PyAV/FFmpeg build has no CUDA support"
    try:
        container = av.open(path, "r", hwaccel=cuda_hwaccel(), metadata_errors="replace")
    except av.FFmpegError as exc:
        # The file opened in software before (the source probes it first): this is the device.
        return StreamdenError, f"no usable CUDA device or driver (FFmpeg: {exc.strerror or exc})"
    except RuntimeError:  # PyAV: no stream of the file has a CUDA decoder
        container = None
    try:
        video = container.streams.video[stream] if container is not None else None
        context = video.codec_context if video is not None else None
        if context is None or not context.is_hwaccel:
            name = f"the {context.codec.name} decoder" if context is not None else "its decoder"
            return InputError, f"{name} of video stream #{stream} has no CUDA hardware path"
        try:
            for _ in container.decode(video):
                return None
        except av.FFmpegError as exc:
            return InputError, (f"the GPU's decoder does not take this {context.codec.name} stream "
                                f"(profile {context.profile or 'unknown'}; FFmpeg: {exc.strerror or exc})")
        return InputError, f"no frame came out of video stream #{stream}"
    finally:
        if container is not None:
            container.close()


def check_nvdec(path: str, stream: int = 0) -> None:
    """Raise the error :func:`nvdec_problem` finds, naming the file and why; else nothing.

    >>> check_nvdec("clip.mp4")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    streamden.errors.StreamdenError: clip.mp4: cannot decode with NVDEC: no usable CUDA device or driver (FFmpeg: Operation not permitted) (input.hwaccel=cuda; --hwaccel auto falls back to software decoding)
    """
    problem = nvdec_problem(path, stream)
    if problem is not None:
        error, reason = problem
        raise error(f"{path}: cannot decode with NVDEC: {reason} "
                    f"(input.hwaccel=cuda; --hwaccel auto falls back to software decoding)")
