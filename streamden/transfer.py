"""Frame copies between the host and the device: decoded numpy RGB up to float tensors, and back.

On the CPU these are exactly :func:`~streamden.tensors.image_to_tensor` and
:func:`~streamden.tensors.tensor_to_image`. On a GPU the copies go through a small ring of
page-locked (pinned) host buffers, reused from frame to frame, on a stream of their own, and the
packing between interleaved integers and planar float runs as the ``color.cu`` kernels
(:func:`~streamden.align.color.interleaved_to_planar`, :func:`~streamden.align.color.planar_to_interleaved`).

Hand-over between threads: each graph node runs in its own thread, and torch's current stream is
per thread. The rule is that a tensor crossing threads is ready on the calling thread's current
stream, which in graph threads is the device's default stream (shared by every thread that sets
no stream of its own): :class:`HostToDevice` makes that stream wait for its copy's event and
records the tensor on it, and :class:`DeviceToHost` makes its download stream wait for that stream
first. A node that computes on a stream of its own must wait for the default stream before it
uses an input and make the default stream wait for it before it emits a result.

One instance serves one thread (one node); instances are cheap and create their CUDA streams,
events and buffers at first use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .align.color import interleaved_to_planar, planar_to_interleaved
from .tensors import image_to_tensor, tensor_to_image

__all__ = ["HostToDevice", "DeviceToHost", "RING_SIZE"]

#: Pinned buffers per direction: the host fills one while the copies of the others are in flight.
RING_SIZE = 3

_TORCH_DTYPE = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}


@dataclass
class _Slot:
    host: torch.Tensor          # pinned
    host_array: np.ndarray      # numpy view of ``host``
    device: torch.Tensor | None  # device twin of ``host`` (upload only)
    event: torch.cuda.Event     # recorded after the last copy that used this slot


class _PinnedRing:
    """``RING_SIZE`` pinned buffers of one shape and dtype, handed out in turn.

    A slot is handed out again only once the copy recorded on its event has finished. A new
    shape or dtype (a size change mid-stream) replaces the ring after its copies have finished.
    All slots are allocated at once, on the first frame of a shape: no allocation per frame,
    and none later, when another thread may be capturing a CUDA graph.
    """

    def __init__(self, device: torch.device, with_device_buffer: bool):
        self.device = device
        self.with_device_buffer = with_device_buffer
        self.key: tuple | None = None
        self.slots: list[_Slot] = []
        self.turn = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> _Slot:
        if (tuple(shape), dtype) != self.key:
            for slot in self.slots:
                slot.event.synchronize()
            self.key, self.turn = (tuple(shape), dtype), 0
            self.slots = [self._new_slot(shape, dtype) for _ in range(RING_SIZE)]
        slot = self.slots[self.turn]
        slot.event.synchronize()      # its previous copy must have left the buffer
        self.turn = (self.turn + 1) % RING_SIZE
        return slot

    def _new_slot(self, shape: tuple[int, ...], dtype: torch.dtype) -> _Slot:
        host = torch.empty(shape, dtype=dtype, pin_memory=True)
        device = torch.empty(shape, dtype=dtype, device=self.device) if self.with_device_buffer else None
        # Blocking sync: a waiting thread sleeps instead of spinning on a core.
        return _Slot(host, host.numpy(), device, torch.cuda.Event(blocking=True))


def _cuda_device(device: torch.device) -> torch.device:
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


class HostToDevice:
    """Upload ``(H, W, 3)`` uint8/uint16 RGB to a ``(3, H, W)`` float32 tensor in [0, 1] on ``device``.

    On CUDA: a pinned ring buffer, an asynchronous copy and the ``color.cu`` kernel on an upload
    stream; the result is ready on the calling thread's current stream (see the module's
    hand-over rule). The caller may overwrite ``image`` as soon as the call returns. On the CPU:
    exactly :func:`~streamden.tensors.image_to_tensor`.

    >>> upload = HostToDevice("cpu")
    >>> tensor = upload(np.full((2, 3, 3), 255, np.uint8))
    >>> tensor.shape, float(tensor.min())
    (torch.Size([3, 2, 3]), 1.0)
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.stream: torch.cuda.Stream | None = None
        self.ring: _PinnedRing | None = None

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """The float tensor of ``image``, on the device (see the class docstring)."""
        if self.device.type != "cuda":
            return image_to_tensor(image, self.device)
        if image.ndim != 3 or np.dtype(image.dtype) not in _TORCH_DTYPE:
            raise ValueError(f"expected (H, W, C) uint8 or uint16, got {image.shape} {image.dtype}")
        if self.stream is None:
            self.device = _cuda_device(self.device)
            self.stream = torch.cuda.Stream(self.device)
            self.ring = _PinnedRing(self.device, with_device_buffer=True)
        consumer = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):   # new device buffers belong to the upload stream
            slot = self.ring.take(image.shape, _TORCH_DTYPE[np.dtype(image.dtype)])
            np.copyto(slot.host_array, image)
            slot.device.copy_(slot.host, non_blocking=True)
            planar = interleaved_to_planar(slot.device.unsqueeze(0))[0]
            slot.event.record(self.stream)
        consumer.wait_event(slot.event)
        planar.record_stream(consumer)   # freed there: not reused before the consumer's work is done
        return planar


class DeviceToHost:
    """Download a ``(3, H, W)`` float tensor in [0, 1] to ``(H, W, 3)`` numpy of ``dtype`` (uint8/uint16).

    Values are scaled to full range, rounded half to even and clamped, as
    :func:`~streamden.tensors.tensor_to_image` does (NaN becomes 0 in both). On CUDA: the
    ``color.cu`` kernel and an asynchronous copy into a pinned ring buffer on a download stream
    that first waits for the calling thread's current stream; the returned array is the
    caller's own. A CPU tensor goes through exactly :func:`~streamden.tensors.tensor_to_image`.

    >>> DeviceToHost()(torch.tensor([-0.1, 0.5, 1.2]).view(3, 1, 1), np.uint8).tolist()
    [[[0, 128, 255]]]
    """

    def __init__(self) -> None:
        self.stream: torch.cuda.Stream | None = None
        self.ring: _PinnedRing | None = None

    def __call__(self, tensor: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
        """``tensor`` as a numpy image of ``dtype`` (see the class docstring)."""
        if not tensor.is_cuda:
            return tensor_to_image(tensor, dtype)
        if tensor.ndim != 3 or np.dtype(dtype) not in _TORCH_DTYPE:
            raise ValueError(f"expected (C, H, W) and uint8 or uint16, got {tuple(tensor.shape)} {dtype}")
        if self.stream is None or self.stream.device != tensor.device:
            self.stream = torch.cuda.Stream(tensor.device)
            self.ring = _PinnedRing(tensor.device, with_device_buffer=False)
        self.stream.wait_stream(torch.cuda.current_stream(tensor.device))
        with torch.cuda.stream(self.stream):
            packed = planar_to_interleaved(tensor.detach().unsqueeze(0), _TORCH_DTYPE[np.dtype(dtype)])[0]
            slot = self.ring.take(packed.shape, packed.dtype)
            slot.host.copy_(packed, non_blocking=True)
            slot.event.record(self.stream)
        # Waiting here also means ``tensor`` and ``packed`` are no longer in use on the download
        # stream when they are freed, so neither needs record_stream.
        slot.event.synchronize()
        return slot.host_array.copy()
