#!/usr/bin/env bash
# One command for a GPU machine (run from the repository root): the CUDA parity and compile
# tests, the LK/known-flow tests, and both alignment benchmarks, with every output under $OUT.
#
#   OUT=/some/dir bash benchmarks/gpu_align_check.sh
#
# The known-flow set needs the footage: it is read from $STREAMDEN_DATA, else ../shared/data,
# else data_local/ in the checkout (git-ignored; carry it to the machine after
# `mkdir -p data_local/val && cp -r ../shared/data/val/videos data_local/val/`: the val clips
# are enough). Without it the EPE benchmark fails and the data tests skip.
# The GPU image has torch, cupy, opencv and pytest but maybe not the rest of streamden's
# dependencies: `import streamden` needs pyyaml and safetensors at import time, so where they
# are missing this script puts import-only stand-ins for them on PYTHONPATH (nothing in these
# tests or benchmarks calls them).
set -u
OUT="${OUT:-gpu_align_out}"
mkdir -p "$OUT"
ROOT="$(pwd)"
STUBS="$(mktemp -d)"
if ! python -c "import yaml" 2>/dev/null; then
    printf 'def safe_load(*a, **k):\n    raise ImportError("pyyaml is not installed")\nsafe_dump = dump = load = safe_load\nYAMLError = Exception\n' > "$STUBS/yaml.py"
fi
if ! python -c "import safetensors.torch" 2>/dev/null; then
    mkdir -p "$STUBS/safetensors"
    printf 'def safe_open(*a, **k):\n    raise ImportError("safetensors is not installed")\n' > "$STUBS/safetensors/__init__.py"
    printf 'def save_file(*a, **k):\n    raise ImportError("safetensors is not installed")\nload_file = save_file\n' > "$STUBS/safetensors/torch.py"
fi
export PYTHONPATH="$ROOT:$STUBS${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${STREAMDEN_DATA:-}" ]; then
    for d in "$ROOT/../shared/data" "$ROOT/data_local"; do
        if [ -d "$d/val/videos" ]; then STREAMDEN_DATA="$d"; break; fi
    done
fi
export STREAMDEN_DATA="${STREAMDEN_DATA:-$ROOT/../shared/data}"

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    nvcc --version 2>&1 | tail -1
    python -c "import torch, cupy, cv2; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| cupy', cupy.__version__, '| opencv', cv2.__version__, '| gpu', torch.cuda.get_device_name())" 2>&1
    echo "data: $STREAMDEN_DATA"
} > "$OUT/env.txt"

status=0
# --noconftest: tests/conftest.py builds model weights (safetensors); these tests need none of it.
# Only the tests that need no PyAV (the GPU image has none): kernels, LK, known flow, core ops.
python -m pytest -q -p no:cacheprovider --noconftest -o addopts="-ra" \
    tests/cuda tests/align/test_lk.py tests/align/test_known_flow.py tests/align/test_core.py \
    > "$OUT/pytest_cuda_align.txt" 2>&1 || status=1
tail -3 "$OUT/pytest_cuda_align.txt"

python benchmarks/align_epe.py --data "$STREAMDEN_DATA" --count 16 --size 256 \
    --json "$OUT/align_epe.json" > "$OUT/align_epe.md" 2>&1 || status=1
python benchmarks/align_speed.py --data "$STREAMDEN_DATA" --repeats 5 \
    --json "$OUT/align_speed.json" > "$OUT/align_speed.md" 2>&1 || status=1
cat "$OUT/env.txt" "$OUT/align_epe.md" "$OUT/align_speed.md"
rm -rf "$STUBS"
exit $status
