"""The host emulation of kernels/*.cu (streamden.cuda.emulate): it rounds like the GPU, it
catches broken kernels, and it refuses what it cannot emulate, loudly. No GPU needed."""
import os

import pytest
import torch

from streamden.align import lk
from streamden.cuda import emulate, module, ops
from tests.cuda.test_parity import F32, _close, _poisoned

PROBE = """#include "sample.cuh"
extern "C" __global__ void to_half(const float* src, unsigned short* dst, int n) {
    long long i = element_index(n);
    if (i < 0) return;
    store_f(dst, i, src[i]);
}
extern "C" __global__ void from_half(const unsigned short* src, float* dst, int n) {
    long long i = element_index(n);
    if (i < 0) return;
    dst[i] = load_f(src, i);
}
extern "C" __global__ void past_end(float* out, int n) {
    long long i = element_index(n);
    if (i < 0) return;
    out[i + 1] = 1.0f;
}
"""


@pytest.fixture(scope="module")
def probe():
    return emulate.build("emulate_probe", PROBE)


def _run(kernel, n, *args):
    kernel(*module.launch_config(n), (*args, n))


def test_half_to_float_is_exact_for_every_half(probe):
    bits = torch.arange(65536, dtype=torch.int32).to(torch.uint16)
    out = torch.empty(65536)
    _run(probe.get_function("from_half"), 65536, bits, out)
    expected = bits.view(torch.float16).float()
    nan = expected.isnan()
    assert torch.equal(out.isnan(), nan)
    assert torch.equal(out[~nan].view(torch.int32), expected[~nan].view(torch.int32))   # -0.0 included


def test_float_to_half_rounds_to_nearest_even_like_cvt_rn(probe):
    halves = torch.arange(0, 0x7C00, dtype=torch.int32).to(torch.uint16).view(torch.float16).float()
    mids = (halves[:-1] + halves[1:]) / 2                      # exact ties (12 significant bits)
    edges = torch.tensor([65504.0, 65519.996, 65520.0, 1e5, float("inf"), 2.0 ** -25, 2.0 ** -26, 1e-40, 0.0])
    pos = torch.cat([halves, mids, torch.nextafter(mids, torch.tensor(0.0)),
                     torch.nextafter(mids, torch.tensor(float("inf"))), edges,
                     torch.rand(50_000, generator=torch.Generator().manual_seed(0)) * 70000,
                     torch.nextafter(torch.tensor(2.0 ** -25), torch.tensor(1.0)).reshape(1)])
    values = torch.cat([pos, -pos]).contiguous()
    out = torch.empty(values.shape, dtype=torch.uint16)
    _run(probe.get_function("to_half"), values.numel(), values, out)
    assert torch.equal(out.view(torch.int16), values.half().view(torch.int16))    # torch rounds half-even
    nan = torch.full((3,), float("nan"))
    out = torch.zeros(3, dtype=torch.uint16)
    _run(probe.get_function("to_half"), 3, nan, out)
    assert out.tolist() == [0x7FFF] * 3                                             # PTX's canonical NaN


def test_a_write_past_the_end_is_an_error(probe):
    out = torch.zeros(10)
    with pytest.raises(emulate.EmulationError, match=r"past_end wrote outside argument 0 \(f32\*, 40 bytes\)"):
        _run(probe.get_function("past_end"), 10, out)


def test_arguments_are_checked_against_the_parameter_types():
    warp = emulate.build("warp").get_function("warp_f32")
    image, flow, out = torch.rand(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), torch.empty(1, 1, 4, 4)
    grid, block = module.launch_config(16)
    warp(grid, block, (image, flow, out, 1, 1, 4, 4))
    assert torch.equal(out, image)
    with pytest.raises(emulate.EmulationError, match=r"argument 5 \(i32\) got float 4.0"):
        warp(grid, block, (image, flow, out, 1, 1, 4.0, 4))
    with pytest.raises(emulate.EmulationError, match=r"argument 0 \(const f32\*\) got a torch.float64 tensor"):
        warp(grid, block, (image.double(), flow, out, 1, 1, 4, 4))
    with pytest.raises(emulate.EmulationError, match="takes 7 arguments"):
        warp(grid, block, (image, flow, out, 1, 1, 4))
    warp(grid, block, (image.numpy(), flow.numpy(), out.numpy(), 1, 1, 4, 4))      # numpy arrays too


def test_a_border_index_off_by_one_fails_the_parity_check():
    source = module.kernel_source("flow")
    good = "row[clampi(x + k, 0, w - 1)]"
    assert source.count(good) == 1
    broken = source.replace(good, "row[clampi(x + k, 0, w)]")       # blur_h reads one pixel past the row
    image, weights = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1)), lk.gaussian_weights(2.0)
    reference = lk.gaussian_blur_torch(image, weights)
    with emulate.emulated():
        _close(_poisoned(ops.gaussian_blur_cuda, image, weights), reference, F32)
    with emulate.emulated({"flow": broken}), pytest.raises(AssertionError):
        _close(ops.gaussian_blur_cuda(image, weights), reference, F32)


def test_a_grid_that_misses_pixels_fails(monkeypatch):
    def one_block_short(total, block=module.BLOCK):
        grid, block3 = module.grid_for(total, block), (block, 1, 1)
        return (grid[0] - 1, 1, 1), block3

    monkeypatch.setattr(module, "launch_config", one_block_short)
    image = torch.rand(1, 1, 37, 53)
    with emulate.emulated(), pytest.raises(AssertionError, match="unwritten"):
        _poisoned(ops.median3x3_cuda, image)


@pytest.mark.parametrize("body, what", [
    ("__shared__ float tile[256]; tile[threadIdx.x] = out[0]; out[1] = tile[0];", r"__shared__ \(shared memory\)"),
    ("out[threadIdx.x] = 1.0f; __syncthreads(); out[0] = out[1];", r"__syncthreads \(a barrier\)"),
    ("atomicAdd(out, 1.0f);", r"atomicAdd \(an atomic\)"),
    ("out[0] = __shfl_down_sync(0xffffffffu, out[0], 1);", r"__shfl_down_sync \(a warp intrinsic\)"),
    ("SYNC();", r"__syncthreads \(a barrier\)"),                          # hidden behind a macro
    ('asm("membar.gl;");', r"asm \(inline assembly\)"),
])
def test_what_cannot_be_emulated_fails_the_build_loudly(body, what):
    source = f'#define SYNC() __syncthreads()\nextern "C" __global__ void k(float* out) {{\n    {body}\n}}\n'
    with pytest.raises(emulate.EmulationError, match=rf"limits\.cu: cannot be emulated on the host: limits\.cu "
                                                     rf"line 3: {what}") as info:
        emulate.build("limits", source)
    assert "\n" not in str(info.value) and "free of shared memory, barriers, atomics" in str(info.value)


def test_a_source_that_does_not_compile_names_the_line():
    source = 'extern "C" __global__ void k(float* out) {\n    int i = threadIdx.x;\n    out[i] = undefined_thing;\n}\n'
    with pytest.raises(emulate.EmulationError) as info:
        emulate.build("bad", source)
    assert str(info.value).startswith(f"{module.kernels_dir() / 'bad.cu'}: failed to build for the host emulation: "
                                      "line 3: 'undefined_thing' was not declared")
    assert info.value.exit_code == 6 and "undefined_thing" in info.value.log


def test_compiled_libraries_are_cached_by_source(monkeypatch):
    first = emulate.build("occlusion")
    stamp = os.stat(first.library).st_mtime_ns
    monkeypatch.setattr(emulate, "_modules", {})                       # a new process, as far as build knows
    again = emulate.build("occlusion")
    assert again.library == first.library and os.stat(again.library).st_mtime_ns == stamp
    other = emulate.build("occlusion", module.kernel_source("occlusion").replace("1.0f : 0.0f", "1.0f : 0.5f"))
    assert other.library != first.library


def test_emulation_is_only_for_cpu_tensors_inside_emulated():
    cpu = torch.zeros(1)
    assert not module.use_kernels(cpu)
    with emulate.emulated():
        assert module.use_kernels(cpu)
    assert not module.use_kernels(cpu) and module._host_launcher is None
    assert module.launch_config(257) == ((2, 1, 1), (256, 1, 1))
