#!/usr/bin/env bash
# The GPU-performance issue in two device calls (run from the repository root, results under $OUT):
#
#   OUT=$OUT bash benchmarks/gpu_perf.sh check   # CUDA tests (kernels, transfer, inference options,
#                                               # NVDEC) and the precision PSNR table (~5 min)
#   OUT=$OUT bash benchmarks/gpu_perf.sh bench   # streamden bench at 540p, 1080p, 2160p (~8 min)
#
# The GPU image has torch, cupy and opencv but no PyAV, and maybe no pyyaml or safetensors:
# carry their wheels in wheels_local/ (git-ignored), made here with
#   pip download --no-deps --only-binary=:all: -d wheels_local av==18.1.0 safetensors
#   for v in 3.10 3.11 3.12 3.13; do pip download --no-deps --only-binary=:all: --python-version $v -d wheels_local pyyaml; done
# and the validation clips in data_local/ (mkdir -p data_local/val && cp -r ../shared/data/val/videos data_local/val/),
# then run with carry ["wheels_local", "data_local"].
set -u
OUT="${OUT:-gpu_perf_out}"
WHAT="${1:-check}"
mkdir -p "$OUT"
ROOT="$(pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export STREAMDEN_DATA="${STREAMDEN_DATA:-$ROOT/data_local}"
[ -d "$STREAMDEN_DATA/val/videos" ] || STREAMDEN_DATA="$ROOT/../shared/data"

for module in av yaml safetensors; do
    python -c "import $module" 2>/dev/null || pip install -q --no-index --find-links wheels_local \
        "$([ $module = yaml ] && echo pyyaml || echo $module)" >> "$OUT/pip.txt" 2>&1
done
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    python -c "import torch, cupy, cv2, av; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), '| cupy', cupy.__version__, '| opencv', cv2.__version__, '| av', av.__version__, '| gpu', torch.cuda.get_device_name())" 2>&1
    nproc
} > "$OUT/env_$WHAT.txt"
cat "$OUT/env_$WHAT.txt"

status=0
if [ "$WHAT" = check ]; then
    python -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/cuda tests/models/test_accel.py \
        tests/test_transfer.py tests/io/test_hwaccel.py > "$OUT/pytest_gpu.txt" 2>&1 || status=1
    tail -15 "$OUT/pytest_gpu.txt"
    python benchmarks/precision_quality.py --data "$STREAMDEN_DATA/val/videos" --frames 16 --sigmas 10,30,50 \
        --device cuda --out "$OUT/precision_cuda.md" > "$OUT/precision_cuda.log" 2>&1 || status=1
    tail -12 "$OUT/precision_cuda.log"
else
    python -m streamden bench --device cuda --sizes 540p,1080p,2160p --frames 32 --repeat 3 \
        --report "$OUT/bench_cuda.md" --json "$OUT/bench_cuda.json" > "$OUT/bench_cuda.log" 2>&1 || status=1
    tail -80 "$OUT/bench_cuda.log"
fi
exit $status
