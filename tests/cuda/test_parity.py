"""Every CUDA kernel against its torch reference: fresh random inputs, poisoned outputs, odd sizes.

On a GPU (with CuPy) the kernels run there; elsewhere they run on the host emulation of
:mod:`streamden.cuda.emulate` (the same sources and launch configuration, compiled as C++),
so the suite runs everywhere and never skips. Each case draws a new seed, printed on failure.
"""
import importlib.util
import secrets

import pytest
import torch

from streamden.align import color, lk
from streamden.align.occlusion import ALPHA, BETA, consistency_mask_torch
from streamden.align.warp import warp, warp_torch
from streamden.cuda import emulate

HAVE_GPU = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
DEVICE = "cuda" if HAVE_GPU else "cpu"

SIZES = [(1, 1, 1, 1), (2, 3, 37, 53), (1, 2, 64, 31), (3, 1, 17, 128)]
F32 = dict(atol=2e-5, rtol=1e-5)
F16 = dict(atol=1.5e-3, rtol=1e-3)


@pytest.fixture(scope="module", autouse=True)
def kernels():
    """The real kernels on a GPU; without one, CPU tensors run the emulated kernels."""
    if HAVE_GPU:
        yield "gpu"
        return
    with emulate.emulated():
        yield "emulated"


@pytest.fixture
def gen():
    """A generator on the kernels' device with a fresh seed; the seed is in the test's output on failure."""
    seed = secrets.randbits(31)
    print(f"seed={seed}")
    return torch.Generator(DEVICE).manual_seed(seed)


def _ops():
    from streamden.cuda import ops
    return ops


def _rand(gen, *shape, scale=1.0, dtype=torch.float32):
    return (torch.rand(shape, generator=gen, device=DEVICE) * scale).to(dtype)


def _flow(gen, n, h, w, scale=3.0):
    return torch.randn((n, 2, h, w), generator=gen, device=DEVICE) * scale


def _poisoned(fn, *args):
    ops = _ops()
    with ops.poisoned_outputs():
        out = fn(*args)
    for t in out if isinstance(out, tuple) else (out,):
        assert not t.isnan().any(), "the kernel left elements unwritten"
    return out


def _close(actual, expected, tol):
    torch.testing.assert_close(actual, expected, **tol)


@pytest.mark.parametrize("size", SIZES)
def test_warp_f32(size, gen):
    n, c, h, w = size
    image, flow = _rand(gen, n, c, h, w), _flow(gen, n, h, w)
    flow[:, :, ::5] *= 10                                   # some samples far outside the frame
    _close(_poisoned(_ops().warp_cuda, image, flow), warp_torch(image, flow), F32)
    _close(warp(image, flow), warp_torch(image, flow), F32)    # the public dispatch


@pytest.mark.parametrize("size", SIZES)
def test_warp_f16(size, gen):
    n, c, h, w = size
    image, flow = _rand(gen, n, c, h, w, dtype=torch.float16), _flow(gen, n, h, w)
    out = _poisoned(_ops().warp_cuda, image, flow)
    assert out.dtype == torch.float16
    # Reference in float32 (warp_torch would sample at half-precision positions).
    _close(out.float(), warp_torch(image.float(), flow), F16)


@pytest.mark.parametrize("size", SIZES)
def test_consistency_mask(size, gen):
    n, _, h, w = size
    fw = lk.gaussian_blur_torch(_flow(gen, n, h, w, 6.0), lk.gaussian_weights(2.0))  # smooth motion
    bw = -fw + _flow(gen, n, h, w, scale=0.5)
    out = _poisoned(_ops().consistency_mask_cuda, fw, bw, ALPHA, BETA)
    ref = consistency_mask_torch(fw, bw)
    # A pixel may only differ where the test sits on its threshold (rounding of diff vs bound).
    back = warp_torch(bw.double(), fw.double())
    diff = (fw.double() + back).square().sum(1, keepdim=True)
    bound = ALPHA * (fw.double().square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)) \
        + BETA
    differ = out != ref
    assert ((diff - bound).abs()[differ] <= 1e-4 * bound[differ]).all()
    if h * w > 100:
        assert 0 < ref.mean() < 1 and differ.float().mean() < 1e-3


@pytest.mark.parametrize("size", SIZES)
def test_rgb_to_luma(size, gen):
    n, _, h, w = size
    image = _rand(gen, n, 3, h, w)
    _close(_poisoned(_ops().rgb_to_luma_cuda, image), color.rgb_to_luma_torch(image), F32)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
@pytest.mark.parametrize("size", SIZES)
def test_interleaved_to_planar(size, dtype, gen):
    n, c, h, w = size
    top = color.INT_MAX[dtype]
    frames = torch.randint(0, top + 1, (n, h, w, c), generator=gen, device=DEVICE, dtype=torch.int32).to(dtype)
    _close(_poisoned(_ops().interleaved_to_planar_cuda, frames), color.interleaved_to_planar_torch(frames),
           dict(atol=1e-6, rtol=1e-6))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
@pytest.mark.parametrize("size", SIZES)
def test_planar_to_interleaved(size, dtype, gen):
    n, c, h, w = size
    image = _rand(gen, n, c, h, w, scale=1.4) - 0.2                     # out of range on both sides
    image.view(-1)[::7] = torch.arange(0, image.numel(), 7, device=DEVICE) % 9 / 8   # exact ties
    ref = color.planar_to_interleaved_torch(image, dtype)
    ops = _ops()
    for sentinel in (0, color.INT_MAX[dtype]):                          # an unwritten element differs in one
        with ops.poisoned_outputs(sentinel):
            assert torch.equal(ops.planar_to_interleaved_cuda(image, dtype), ref)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sigma", [0.7, 2.0, 7.0])
def test_gaussian_blur(size, sigma, gen):
    image = _rand(gen, *size)
    weights = lk.gaussian_weights(sigma)
    _close(_poisoned(_ops().gaussian_blur_cuda, image, weights), lk.gaussian_blur_torch(image, weights), F32)


@pytest.mark.parametrize("size", SIZES)
def test_pyr_down(size, gen):
    image = _rand(gen, *size)
    _close(_poisoned(_ops().pyr_down_cuda, image), lk.pyr_down_torch(image), F32)


@pytest.mark.parametrize("size", SIZES)
def test_flow_upsample2(size, gen):
    n, _, h, w = size
    coarse = _flow(gen, n, (h + 1) // 2, (w + 1) // 2)
    _close(_poisoned(_ops().flow_upsample2_cuda, coarse, h, w), lk.flow_upsample2_torch(coarse, h, w), F32)


@pytest.mark.parametrize("size", SIZES)
def test_lk_gradients(size, gen):
    n, _, h, w = size
    ref = _rand(gen, n, 1, h, w)
    _close(_poisoned(_ops().lk_gradients_cuda, ref), lk.lk_gradients_torch(ref), F32)


@pytest.mark.parametrize("robust", [0.0, 0.05])
@pytest.mark.parametrize("size", SIZES)
def test_lk_system(size, robust, gen):
    n, _, h, w = size
    ref, moving = _rand(gen, n, 1, h, w), _rand(gen, n, 1, h, w)
    grad, flow = _flow(gen, n, h, w, 0.1), _flow(gen, n, h, w)
    args = (grad, ref, moving, flow, robust)
    _close(_poisoned(_ops().lk_system_cuda, *args), lk.lk_system_torch(*args), F32)


@pytest.mark.parametrize("size", SIZES)
def test_lk_update(size, gen):
    n, _, h, w = size
    ref = _rand(gen, n, 1, h, w)
    system = lk.lk_system_torch(lk.lk_gradients_torch(ref), ref, _rand(gen, n, 1, h, w), _flow(gen, n, h, w), 0.05)
    system = lk.gaussian_blur_torch(system, lk.gaussian_weights(2.0))       # as in lk_flow_with
    args = (system, _flow(gen, n, h, w), 1e-3, 1.0)
    _close(_poisoned(_ops().lk_update_cuda, *args), lk.lk_update_torch(*args), dict(atol=1e-4, rtol=1e-4))


@pytest.mark.parametrize("size", SIZES)
def test_median3x3(size, gen):
    image = _rand(gen, *size)
    image[..., ::3, :] = image[..., ::3, :].round()                   # ties
    assert torch.equal(_poisoned(_ops().median3x3_cuda, image), lk.median3x3_torch(image))


def test_lk_flow_matches_reference(gen):
    base = lk.gaussian_blur_torch(_rand(gen, 2, 1, 97, 131), lk.gaussian_weights(1.5))
    flow = torch.zeros(2, 2, 97, 131, device=DEVICE)
    flow[:, 0], flow[:, 1] = 2.3, -1.4
    moving = base
    ref = warp_torch(base, flow)
    cuda_flow = lk.lk_flow(ref, moving)
    torch_flow = lk.lk_flow_torch(ref, moving)
    assert (cuda_flow - torch_flow).abs().mean() < 1e-3
    inner = (slice(None), slice(None), slice(10, -10), slice(10, -10))
    assert (cuda_flow - flow)[inner].abs().mean() < 0.05


def test_window_aligner_runs_on_the_kernels():
    from streamden.align import WindowAligner, make_flow_estimator
    # "auto" picks the LK kernels on CUDA; on the host the emulated kernels are asked for by name.
    aligner = WindowAligner(make_flow_estimator("auto" if HAVE_GPU else "lk", DEVICE))
    frames = [torch.rand(3, 40, 56, device=DEVICE) for _ in range(5)]
    aligned, masks = aligner.align(frames, (0, 1, 2, 3, 4))
    assert aligned.device.type == DEVICE and aligned.shape == (5, 3, 40, 56) and not aligned.isnan().any()
    assert masks.shape == (5, 1, 40, 56)
