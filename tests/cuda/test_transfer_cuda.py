"""The CUDA transfers against the CPU path, exactly: odd sizes, back-to-back frames, three threads.

Skipped without a GPU (or without CuPy). Each case draws a new seed, printed on failure.
"""
import importlib.util
import queue
import secrets
import threading

import numpy as np
import pytest
import torch

from streamden.tensors import image_to_tensor, tensor_to_image
from streamden.transfer import RING_SIZE, DeviceToHost, HostToDevice

HAVE_GPU = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
pytestmark = pytest.mark.skipif(not HAVE_GPU, reason="needs a CUDA GPU and CuPy (pip install \"streamden[cuda]\")")

SIZES = [(1, 1), (37, 53), (64, 31), (17, 128)]
DTYPES = [np.uint8, np.uint16]
TIMEOUT = 120.0   # seconds; only so that a failing thread cannot hang the suite


@pytest.fixture
def rng():
    """A numpy generator with a fresh seed; the seed is in the test's output on failure."""
    seed = secrets.randbits(31)
    print(f"seed={seed}")
    return np.random.default_rng(seed)


def _image(rng, h, w, dtype):
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, size=(h, w, 3), dtype=dtype, endpoint=True)
    image.reshape(-1)[0], image.reshape(-1)[-1] = 0, top
    return image


def _tensor(rng, h, w, dtype):
    """``(3, h, w)`` float32 on the GPU: out of range on both sides, and exact ties after scaling."""
    scale = np.iinfo(dtype).max
    values = rng.uniform(-0.2, 1.2, size=3 * h * w).astype(np.float32)
    ties = (rng.integers(0, scale, size=values[::5].size) + 0.5) / scale
    values[::5] = ties.astype(np.float32)
    values[:3] = (0.0, 1.0, 0.5)
    return torch.from_numpy(values).view(3, h, w).cuda()


def _gpu_busy():
    """Keep the current stream busy for a while, so that missing waits show up as wrong results."""
    torch.cuda._sleep(2_000_000)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
def test_upload_matches_cpu(size, dtype, rng):
    image = _image(rng, *size, dtype)
    out = HostToDevice("cuda")(image)
    assert out.is_cuda and out.dtype == torch.float32 and out.shape == (3, *size)
    assert torch.equal(out.cpu(), image_to_tensor(image, "cpu"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_upload_of_a_non_contiguous_image(dtype, rng):
    image = _image(rng, 37, 106, dtype)[::-1, ::2]
    assert torch.equal(HostToDevice(torch.device("cuda", 0))(image).cpu(), image_to_tensor(image, "cpu"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
def test_download_matches_cpu(size, dtype, rng):
    tensor = _tensor(rng, *size, dtype)
    for t in (tensor, tensor.half()):
        out = DeviceToHost()(t, dtype)
        ref = tensor_to_image(t.cpu(), dtype)
        assert out.dtype == np.dtype(dtype) and out.shape == (*size, 3)
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_download_of_a_cropped_tensor(dtype, rng):
    padded = _tensor(rng, 40, 58, dtype)
    crop = padded[:, 1:38, 2:55]                        # as the network's output is cropped from its padding
    np.testing.assert_array_equal(DeviceToHost()(crop, dtype), tensor_to_image(crop.cpu(), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_back_to_back_frames_through_the_ring(dtype, rng):
    upload, download = HostToDevice("cuda"), DeviceToHost()
    images = [_image(rng, 37, 53, dtype) for _ in range(2 * RING_SIZE + 1)]
    originals = [image.copy() for image in images]
    tensors = []
    for image in images:
        _gpu_busy()                                     # the consumer stream lags behind the uploads
        tensors.append(upload(image))
        image[...] = 0                                  # the caller's buffer is free once the call returns
    outs = [download(tensor, dtype) for tensor in tensors]
    for original, tensor, out in zip(originals, tensors, outs):
        assert torch.equal(tensor.cpu(), image_to_tensor(original, "cpu"))
        np.testing.assert_array_equal(out, original)    # earlier results are not overwritten by the ring


def test_size_and_depth_changes(rng):
    upload, download = HostToDevice("cuda"), DeviceToHost()
    for size, dtype in [((37, 53), np.uint8), ((37, 53), np.uint8), ((20, 11), np.uint16),
                        ((20, 11), np.uint8), ((37, 53), np.uint16)] * 2:
        image = _image(rng, *size, dtype)
        tensor = upload(image)
        assert torch.equal(tensor.cpu(), image_to_tensor(image, "cpu"))
        np.testing.assert_array_equal(download(tensor, dtype), image)


@pytest.mark.parametrize("own_stream", [False, True], ids=["default-stream", "own-stream"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_upload_process_download_in_three_threads(dtype, own_stream, rng):
    """The graph's shape: upload, a compute node and download each in a thread, joined by queues."""
    images = [_image(rng, 37, 53, dtype) for _ in range(4 * RING_SIZE)]
    uploaded, processed = queue.Queue(maxsize=2), queue.Queue(maxsize=2)
    results, errors = [], []

    def upload_all():
        upload = HostToDevice("cuda")
        for image in images:
            uploaded.put(upload(image.copy()), timeout=TIMEOUT)   # the copy is freed at once
        uploaded.put(None, timeout=TIMEOUT)

    def process_all():
        stream = torch.cuda.Stream() if own_stream else None
        while (tensor := uploaded.get(timeout=TIMEOUT)) is not None:
            if stream is None:
                _gpu_busy()
                out = tensor.flip(2).flip(2)            # exact: the pixels come back unchanged
            else:                                       # the module's rule for a node with its own stream
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    _gpu_busy()
                    out = tensor.flip(2).flip(2)
                tensor.record_stream(stream)
                torch.cuda.current_stream().wait_stream(stream)
                out.record_stream(torch.cuda.current_stream())
            del tensor            # freed while the GPU may still read it: the uploads must not reuse it yet
            processed.put(out, timeout=TIMEOUT)
        processed.put(None, timeout=TIMEOUT)

    def download_all():
        download = DeviceToHost()
        while (tensor := processed.get(timeout=TIMEOUT)) is not None:
            results.append(download(tensor, dtype))

    def guarded(target):
        def run():
            try:
                target()
            except BaseException as exc:  # reported by the test's thread
                errors.append(exc)
        return threading.Thread(target=run, daemon=True)

    threads = [guarded(f) for f in (upload_all, process_all, download_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    assert len(results) == len(images)
    for image, out in zip(images, results):
        np.testing.assert_array_equal(out, image)
