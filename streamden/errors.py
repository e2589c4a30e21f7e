"""The errors streamden raises on purpose: each one names the file or key and the problem."""
from __future__ import annotations


class StreamdenError(Exception):
    """Base class: an error the CLI prints as one line and exits non-zero on."""

    exit_code = 1


class InputError(StreamdenError):
    """The input is missing, unreadable, not a video, has no video stream, or is corrupt."""

    exit_code = 2


class OutputError(StreamdenError):
    """The output cannot be written (exists, same as input, unwritable, unsupported format)."""

    exit_code = 3


class ConfigError(StreamdenError):
    """A preset, config file or --set override is wrong; the message names the key."""

    exit_code = 4


class ModelError(StreamdenError):
    """Weights are missing, untrained or do not match the architecture."""

    exit_code = 5


class KernelError(StreamdenError, RuntimeError):
    """A CUDA kernel (kernels/*.cu) is missing, does not compile, or cannot be loaded or launched.

    Never a silent fallback: the message names the kernel file and what failed; ``log`` keeps
    the compiler's full output when there is one.
    """

    exit_code = 6

    def __init__(self, message: str, log: str | None = None) -> None:
        super().__init__(message)
        self.log = log


class Cancelled(StreamdenError):
    """The run was stopped by Ctrl-C or SIGTERM; what was written so far was finalised."""

    exit_code = 130
