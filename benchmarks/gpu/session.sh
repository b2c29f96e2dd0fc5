#!/usr/bin/env bash
# Everything ffbench checks on a GPU, in one call (GPU time is often short: each
# stage runs under its own time limit, most important first, so a run cut short by the
# call's own limit loses only the last stages).
# From the repository root:  OUT=results/gpu bash benchmarks/gpu/session.sh
# Each sweep resumes into $WORK and copies its results.parquet to $OUT as soon as it ends,
# so a run cut short still returns what it finished:
#   0. the tests that need a GPU (a forked cell's CUDA peak is its own; predicted against
#      measured peaks), their report kept in $OUT/gpu-tests.xml (and the log);
#   1. what offloading activations costs: bp, bp-lean, bp with the fused step and bp-offload
#      at 47 layers (hidden 2000, batch 5000), each one's CUDA peak against its prediction,
#      the host link's copy rate, step times timed alternately (offload_step_time.py;
#      $OUT/offload-47.json);
#   2. what the allocator holds at the train peak that the tracker does not see, ff then bp
#      at 2 layers (peak_snapshot.py; printed to the log, snapshot pickles kept in $OUT);
#   3. the published sweep (hidden 2000) for bp, bp-lean (when registered), ff, rff at
#      batch 5000 then 1000, depths 2,12,22,32,47 first; rows carry NVML peaks and the
#      predicted allocated/reserved peaks (allocator_view) beside the measured ones;
#   4. `ffbench capacity` against real OOM: the allocator capped at 4 GiB, the predicted
#      deepest network and one deeper, for bp and rff (capacity_check.py);
#   5. more published depths (7,17,27,37,42) at batch 5000, as time allows.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-results/gpu}
WORK=${WORK:-/tmp/ffbench-gpu}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/session.log
run() { echo "+ $*" | tee -a "$LOG"; "$@" 2>&1 | tee -a "$LOG"; }
keep() { [ -f "$WORK/$1/results.parquet" ] && cp "$WORK/$1/results.parquet" "$OUT/$1.parquet"; }
ALGORITHMS=$(python3 -c "from ffbench.algorithms.registry import ALGORITHMS as A
print(','.join(a for a in ('bp', 'bp-lean', 'ff', 'rff') if a in A))")
SWEEP=(python3 -m ffbench sweep --algorithms "$ALGORITHMS" --hidden 2000 --device cuda
       --steps 3 --warmup 1 --timeout 120)

run nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
run python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"

run timeout 120 python3 -m pytest -q -rA -p no:cacheprovider -m gpu --junitxml "$OUT/gpu-tests.xml"

run timeout 120 python3 benchmarks/gpu/offload_step_time.py 47 "$OUT"

run timeout 100 python3 benchmarks/gpu/peak_snapshot.py ff 2 "$OUT"
run timeout 60 python3 benchmarks/gpu/peak_snapshot.py bp 2 "$OUT"

run timeout 170 "${SWEEP[@]}" --layers 2,12,22,32,47 --batch-sizes 5000 --out "$WORK/published-5000"
keep published-5000
run timeout 100 "${SWEEP[@]}" --layers 2,12,22,32,47 --batch-sizes 1000 --out "$WORK/published-1000"
keep published-1000

run timeout 120 python3 benchmarks/gpu/capacity_check.py 4 bp rff

run timeout 60 "${SWEEP[@]}" --layers 7,17,27,37,42 --batch-sizes 5000 --out "$WORK/published-5000-more"
keep published-5000-more
ls -la "$OUT" | tee -a "$LOG"
