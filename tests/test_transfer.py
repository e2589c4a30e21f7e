"""Host/device transfers on the CPU: exactly image_to_tensor / tensor_to_image, edge values included."""
import numpy as np
import pytest
import torch

from streamden.tensors import image_to_tensor, tensor_to_image
from streamden.transfer import DeviceToHost, HostToDevice


def every_value(dtype) -> np.ndarray:
    """An (H, W, 3) image holding every value of ``dtype`` (0 and the maximum included)."""
    values = np.arange(np.iinfo(dtype).max + 1)
    values = np.resize(values, -(-len(values) // 3) * 3)       # padded to whole pixels by repeating
    return values.reshape(-1, 1, 3).astype(dtype).repeat(2, axis=1)


def edge_tensor(dtype) -> torch.Tensor:
    """Out-of-range values, exact ends, values whose scaled form ends in .5, and random ones."""
    scale = np.iinfo(dtype).max
    ties = (np.arange(0, scale, 7, dtype=np.float64) + 0.5) / scale    # k + 0.5 after scaling, in float64
    fixed = [-1.0, -0.1, -0.0, 0.0, 0.5, 1.0, 1.0 + 1e-7, 1.2, 100.0, float("inf"), float("-inf")]
    rest = np.random.default_rng(0).uniform(-0.2, 1.2, 3001)
    values = np.concatenate([fixed, ties, rest]).astype(np.float32)
    values = np.resize(values, len(values) // 3 * 3)
    return torch.from_numpy(values).view(3, 1, -1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_upload_is_image_to_tensor(dtype):
    image = every_value(dtype)
    out = HostToDevice("cpu")(image)
    ref = image_to_tensor(image, "cpu")
    assert out.dtype == torch.float32 and out.shape == (3,) + image.shape[:2]
    assert torch.equal(out, ref) and out.stride() == ref.stride()
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_upload_of_a_non_contiguous_image():
    image = every_value(np.uint8)[::-1, ::2]
    assert torch.equal(HostToDevice(torch.device("cpu"))(image), image_to_tensor(image))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_download_is_tensor_to_image(dtype):
    tensor = edge_tensor(dtype)
    out = DeviceToHost()(tensor, dtype)
    ref = tensor_to_image(tensor, dtype)
    assert out.dtype == np.dtype(dtype) and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    assert out.min() == 0 and out.max() == np.iinfo(dtype).max


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_download_rounds_half_to_even_and_clamps(dtype):
    scale = np.iinfo(dtype).max
    tensor = torch.tensor([0.5, -0.3, 1.7], dtype=torch.float32).view(3, 1, 1)
    # 0.5 scales to 127.5 or 32767.5, an exact tie: to even is 128 or 32768.
    assert DeviceToHost()(tensor, dtype).tolist() == [[[(scale + 1) // 2, 0, scale]]]


def test_download_of_half_precision_and_non_contiguous_tensors():
    big = edge_tensor(np.uint8).view(3, 1, -1).expand(3, 4, -1)[:, 1:3, 5:]
    for tensor in (big, big.half()):
        np.testing.assert_array_equal(DeviceToHost()(tensor, np.uint8), tensor_to_image(tensor, np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_is_exact(dtype):
    image = every_value(dtype)
    np.testing.assert_array_equal(DeviceToHost()(HostToDevice("cpu")(image), dtype), image)
