"""What a shallow FF step spends its time on, on a GPU (the least efficient published cell).

python benchmarks/gpu/profile_step.py [ALGORITHM] [LAYERS]: the batch fetch timed alone, then
the top ops of five train steps by GPU time and by CPU time (torch.profiler).
"""

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import warmed_up
from ffbench.measure.timer import TimeSummary, time_calls
from ffbench.settings.cell import CellSpec

algorithm = sys.argv[1] if len(sys.argv) > 1 else "ff"
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
spec = resolved(CellSpec(algorithm, n_layers=layers, hidden=2000, batch_size=5000, device="cuda"))
built = warmed_up(spec, 2)
device = torch.device("cuda")
fetch = TimeSummary.of(time_calls(built.train.next, 10, device)).median_s
step = TimeSummary.of(time_calls(lambda: built.algorithm.step(built.train), 10, device)).median_s
print(f"{algorithm} {layers} layers: step {step * 1e3:.2f} ms, "
      f"batch fetch alone {fetch * 1e3:.2f} ms")
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        built.algorithm.step(built.train)
    torch.cuda.synchronize()
table = prof.key_averages()
print(table.table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=40))
print(table.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
