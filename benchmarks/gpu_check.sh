#!/usr/bin/env bash
# One prepared GPU run for a lent device (see README, Benchmarks): throughput of our BYOL step against
# the plain forward+backward reference and lucidrains byol-pytorch (when its wheel is carried in .whl/),
# augmentation speed, and the seed-experiment estimate. Results land in $OUT (or benchmarks/results).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pytest -q -x tests/test_augment.py tests/test_models.py tests/test_primitives.py 2>&1 | tail -3
python3 benchmarks/augment_speed.py --device cuda --size 96 --batch 256 --iters 50 --out "$out/augment_speed_gpu.json"
python3 benchmarks/throughput.py --device cuda --backbone resnet18 --size 96 --batch 256 --stem standard \
  --steps 20 --rounds 3 --out "$out/throughput_gpu.json"
python3 benchmarks/throughput.py --device cuda --backbone resnet18 --size 96 --batch 256 --stem standard \
  --steps 20 --rounds 3 --compile --out "$out/throughput_gpu_compile.json"
