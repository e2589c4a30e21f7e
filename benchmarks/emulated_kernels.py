"""Every CUDA kernel, run on the host emulation, against its torch reference on many sizes (outside CI).

The parity suite (``tests/cuda/test_parity.py``) tries four sizes per kernel; this draws
``--sizes`` more at random (plus degenerate ones: a single pixel, one row, one column) and
prints, per kernel, the largest absolute difference from the reference and how many outputs
are bitwise equal to it. Unwritten elements would show as NaN (outputs are poisoned).
Run from the repository root:

    python benchmarks/emulated_kernels.py --sizes 30 --seed 5
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamden.align import color, lk  # noqa: E402
from streamden.align.warp import warp_torch  # noqa: E402
from streamden.cuda import emulate, ops  # noqa: E402


def cases(n: int, c: int, h: int, w: int, g: torch.Generator):
    """(kernel name, emulated op, reference) for one size."""
    image = torch.rand(n, c, h, w, generator=g)
    flow = torch.randn(n, 2, h, w, generator=g) * 3
    flow[:, :, ::5] *= 10
    half = image.half()
    yield "warp_f32", lambda: ops.warp_cuda(image, flow), lambda: warp_torch(image, flow)
    yield "warp_f16", lambda: ops.warp_cuda(half, flow), lambda: warp_torch(half.float(), flow).half()
    rgb = torch.rand(n, 3, h, w, generator=g)
    yield "rgb_to_luma", lambda: ops.rgb_to_luma_cuda(rgb), lambda: color.rgb_to_luma_torch(rgb)
    for dtype in (torch.uint8, torch.uint16):
        top, suffix = color.INT_MAX[dtype], str(dtype).removeprefix("torch.")
        frames = torch.randint(0, top + 1, (n, h, w, c), generator=g, dtype=torch.int32).to(dtype)
        planar = torch.rand(n, c, h, w, generator=g) * 1.4 - 0.2
        yield (f"to_planar {suffix}", lambda f=frames: ops.interleaved_to_planar_cuda(f),
               lambda f=frames: color.interleaved_to_planar_torch(f))
        yield (f"to_interleaved {suffix}", lambda p=planar, d=dtype: ops.planar_to_interleaved_cuda(p, d),
               lambda p=planar, d=dtype: color.planar_to_interleaved_torch(p, d))
    for sigma in (0.7, 2.0, 7.0):
        weights = lk.gaussian_weights(sigma)
        yield (f"gaussian_blur {sigma}", lambda wt=weights: ops.gaussian_blur_cuda(image, wt),
               lambda wt=weights: lk.gaussian_blur_torch(image, wt))
    yield "pyr_down", lambda: ops.pyr_down_cuda(image), lambda: lk.pyr_down_torch(image)
    coarse = torch.randn(n, 2, (h + 1) // 2, (w + 1) // 2, generator=g)
    yield "flow_upsample2", lambda: ops.flow_upsample2_cuda(coarse, h, w), lambda: lk.flow_upsample2_torch(coarse, h, w)
    ref, moving = torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)
    yield "lk_gradients", lambda: ops.lk_gradients_cuda(ref), lambda: lk.lk_gradients_torch(ref)
    grad = torch.randn(n, 2, h, w, generator=g) * 0.1
    for robust in (0.0, 0.05):
        yield (f"lk_system {robust}", lambda r=robust: ops.lk_system_cuda(grad, ref, moving, flow, r),
               lambda r=robust: lk.lk_system_torch(grad, ref, moving, flow, r))
    system = lk.gaussian_blur_torch(lk.lk_system_torch(lk.lk_gradients_torch(ref), ref, moving, flow, 0.05),
                                    lk.gaussian_weights(2.0))
    yield ("lk_update", lambda: ops.lk_update_cuda(system, flow, 1e-3, 1.0),
           lambda: lk.lk_update_torch(system, flow, 1e-3, 1.0))
    yield "median3x3", lambda: ops.median3x3_cuda(image), lambda: lk.median3x3_torch(image)


def main() -> None:
    """Run the comparison and print one line per kernel."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, default=30, help="random sizes besides the degenerate ones")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sizes = [(1, 1, 1, 1), (1, 1, 1, 7), (1, 1, 9, 1), (2, 2, 2, 2), (1, 3, 255, 3), (1, 1, 3, 300)]
    sizes += [(rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 70), rng.randint(1, 70)) for _ in range(args.sizes)]
    worst: dict[str, float] = {}
    equal: dict[str, list[int]] = {}
    with emulate.emulated(), ops.poisoned_outputs():
        for k, size in enumerate(sizes):
            g = torch.Generator().manual_seed(args.seed * 1000 + k)
            for name, kernel, reference in cases(*size, g):
                out, ref = kernel(), reference()
                if out.is_floating_point() and out.isnan().any():
                    raise SystemExit(f"{name} {size}: the kernel left elements unwritten (NaN)")
                diff = (out.double() - ref.double()).abs()
                worst[name] = max(worst.get(name, 0.0), float(diff.max()))
                counts = equal.setdefault(name, [0, 0])
                counts[0] += int((diff == 0).sum())
                counts[1] += diff.numel()
    print(f"{len(sizes)} sizes (seed {args.seed}); kernel: largest |emulated - reference|, outputs bitwise equal")
    for name, value in worst.items():
        same, total = equal[name]
        print(f"  {name:28s} {value:.2e}  {same}/{total}")


if __name__ == "__main__":
    main()
