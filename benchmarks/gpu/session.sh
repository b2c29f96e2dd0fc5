#!/usr/bin/env bash
# Everything ffbench checks on a GPU, in one call (a lent GPU machine's time is short).
# From the repository root:  OUT=results/gpu bash benchmarks/gpu/session.sh
# Stages, most important first; each copies its results.parquet to $OUT as soon as it ends,
# so a run cut short still returns what it finished:
#   1. the GPU-only tests (predicted vs max_memory_allocated);
#   1b. what the allocator holds at ff's train peak that the tracker does not see
#      (peak_snapshot.py: printed to the log, the snapshot pickle kept in $OUT);
#   2. ff vs ff-layerwise device memory at 2 and 8 layers (hidden 256, batch 512);
#   3. the reduced published sweep: bp, ff, rff; depths 2, 12, 22, 32, 47; hidden 2000;
#      batch 5000 (FF: + 5000 negatives);
#   4. published-size ff-progressive (cache) and ff-layerwise at the published batch 2500.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-results/gpu}
WORK=${WORK:-/tmp/ffbench-gpu}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/session.log
run() { echo "+ $*" | tee -a "$LOG"; "$@" 2>&1 | tee -a "$LOG"; }
keep() { [ -f "$WORK/$1/results.parquet" ] && cp "$WORK/$1/results.parquet" "$OUT/$1.parquet"; }

run nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
run python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
run python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_explain.py
run python3 benchmarks/gpu/peak_snapshot.py ff 2 "$OUT"

run python3 -m ffbench sweep --algorithms ff,ff-layerwise --layers 2,8 --hidden 256 \
    --batch-sizes 512 --device cuda --steps 3 --warmup 1 --out "$WORK/layerwise-depth"
keep layerwise-depth

run python3 -m ffbench sweep seed-figure --layers 2,12,22,32,47 --steps 3 --warmup 1 \
    --timeout 300 --out "$WORK/published-reduced"
keep published-reduced

run python3 -m ffbench sweep --algorithms ff-progressive --option cache=true --layers 2,7 \
    --hidden 2000 --batch-sizes 2500 --device cuda --steps 3 --warmup 1 --timeout 300 \
    --out "$WORK/published-progressive"
keep published-progressive
run python3 -m ffbench sweep --algorithms ff-layerwise --layers 2,7 --hidden 2000 \
    --batch-sizes 2500 --device cuda --steps 3 --warmup 1 --timeout 300 \
    --out "$WORK/published-layerwise"
keep published-layerwise
ls -la "$OUT" | tee -a "$LOG"
