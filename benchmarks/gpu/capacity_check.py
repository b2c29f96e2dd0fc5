"""`ffbench capacity` against real out-of-memory boundaries, on a GPU.

python benchmarks/gpu/capacity_check.py [CAP_GIB] [ALGORITHM ...]

The caching allocator is capped at CAP_GIB (torch.cuda.set_per_process_memory_fraction)
so that the boundary is shallow enough to run; `capacity` is asked for the deepest network
in CAP_GIB + the CUDA context (the cap is on what the allocator reserves, the context is
outside it), then that depth and one more run their memory pass (cell.memory_peaks), each in its own
process.
Prints, per algorithm: predicted depth, the status at that depth and at one more.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.capacity import deepest
from ffbench.settings.cell import CellSpec
from ffbench.settings.gpus import Gpu

HIDDEN, BATCH = 2000, 5000  # the published width and batch
CELL_TIMEOUT_S = 300
# the cell's memory pass only (what capacity predicts), not its timing or calibration
CHILD = f"""
import json, sys, torch
from ffbench.cell.run import classify, memory_peaks
from ffbench.cell.built import load_dataset
from ffbench.settings.cell import CellSpec
from ffbench.algorithms.resolve import resolved
torch.cuda.set_per_process_memory_fraction(float(sys.argv[1]))
spec = resolved(CellSpec(sys.argv[2], n_layers=int(sys.argv[3]), hidden={HIDDEN},
                         batch_size={BATCH}, device="cuda", warmup_steps=1))
try:
    peaks = memory_peaks(spec, load_dataset(spec))
    out = dict(status="ok", train_reserved_bytes=peaks.train.reserved_bytes,
               eval_reserved_bytes=peaks.eval.reserved_bytes)
except Exception as exc:
    out = dict(status=classify(exc), error=str(exc)[:300])
print(json.dumps(out))
"""


def run(algorithm: str, layers: int, fraction: float) -> dict[str, object]:
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(fraction), algorithm,
                               str(layers)], capture_output=True, text=True,
                              timeout=CELL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"status": "crashed", "error": done.stderr[-300:]}


def main(cap_gib: float, algorithms: list[str]) -> None:
    properties = torch.cuda.get_device_properties(0)
    target = Gpu(properties.name, properties.total_memory, (properties.major, properties.minor))
    fraction = cap_gib * 2**30 / properties.total_memory
    for algorithm in algorithms:
        spec = resolved(CellSpec(algorithm, n_layers=1, hidden=HIDDEN, batch_size=BATCH,
                        device="meta"))
        fit = deepest(spec, int(cap_gib * 2**30) + target.context_bytes, target)
        at, beyond = run(algorithm, fit.n_layers, fraction), run(algorithm, fit.n_layers + 1,
                                                                  fraction)
        print(json.dumps({"algorithm": algorithm, "cap_gib": cap_gib,
                          "predicted_deepest": fit.n_layers, "checked": fit.checked,
                          "predicted_needed_bytes": fit.needed_bytes,
                          "at_predicted": at, "one_deeper": beyond}), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 4.0, sys.argv[2:] or ["bp", "rff"])
