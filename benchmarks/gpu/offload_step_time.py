"""What offloading activations costs in time on a GPU, and whether its device peak is the
predicted one.

PYTHONPATH=. python benchmarks/gpu/offload_step_time.py [LAYERS] [OUT_DIR]

At the published size (hidden 2000, batch 5000; LAYERS default 47), on cuda:
1. each variant's memory pass on its own (cell.memory_peaks, after the previous variant is
   freed): CUDA max_memory_allocated of the train and eval phases against the tracked and
   the predicted (meta) peaks and the allocator view's prediction; bp-offload's tracked host
   peak and its bytes per step, and what PyTorch's pinned-memory cache held for them (it
   rounds each block up to a power of two);
2. the host link: pinned copies of one (batch, hidden) block each way, median seconds, so
   the copies' expected cost per step is offloaded bytes / each rate;
3. train step times, the variants timed alternately (benchmarks/bp_lean_step_time.py):
   bp, bp-lean, bp with the fused step alone, and bp-offload (= that, plus offloading: the
   difference of those two is what the copies cost, set against the link's expectation).
Prints each and writes OUT_DIR/offload-LAYERS.json (after each part: a run cut short keeps
what it finished). Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.bp_lean_step_time import alternating_medians, ratio_lines
from ffbench.algorithms import registry
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import load_dataset
from ffbench.cell.run import allocator_columns, memory_peaks
from ffbench.measure.timer import time_calls
from ffbench.settings.cell import CellSpec

HIDDEN, BATCH = 2000, 5000  # the published width and batch
DEFAULT_LAYERS = 47
ROUNDS = 10
LINK_REPEATS = 10
MIB = 2**20
# torch.cuda.host_memory_stats(): bytes of pinned blocks (rounded) owned, and handed out
PINNED_STATS = ("allocated_bytes.peak", "active_bytes.peak")
VARIANTS = {
    "bp": ("bp", {}), "bp-lean": ("bp-lean", {}),
    "bp-fused": ("bp", {"fused_step": True}), "bp-offload": ("bp-offload", {}),
}


def spec_of(name: str, options: dict[str, Any], layers: int) -> CellSpec:
    return resolved(CellSpec(name, n_layers=layers, hidden=HIDDEN, batch_size=BATCH, device="cuda",
                    options=options))


def memory(layers: int) -> dict[str, dict[str, Any]]:
    """Each variant's memory pass, one at a time (nothing else of ffbench's on the device)."""
    found = {}
    for label, (name, options) in VARIANTS.items():
        spec = spec_of(name, options, layers)
        peaks = memory_peaks(spec, load_dataset(spec))
        found[label] = {
            "train_peak_allocated_bytes": peaks.train.allocated_bytes,
            "eval_peak_allocated_bytes": peaks.eval.allocated_bytes,
            "train_peak_tracked_bytes": peaks.train.tracked_bytes,
            "predicted_train_peak_bytes": peaks.predicted_train.tracked_bytes,
            "host_peak_tracked_bytes": peaks.eval.host_tracked_bytes,
            "offloaded_bytes_per_step": registry.load(name).memory_account(spec).offloaded_bytes,
            **allocator_columns(peaks.log, spec),
        }
        del peaks
        gc.collect()
        torch.cuda.empty_cache()
    return found


def link_seconds(device: torch.device) -> dict[str, float]:
    """Median seconds to copy one (batch, hidden) float32 block to pinned host memory and
    back, as the offloading hooks do."""
    block = torch.empty(BATCH, HIDDEN, device=device)
    host = torch.empty(BATCH, HIDDEN, pin_memory=True)
    to_host = time_calls(lambda: host.copy_(block, non_blocking=True), LINK_REPEATS, device)
    to_device = time_calls(lambda: host.to(device, non_blocking=True), LINK_REPEATS, device)
    return {"block_bytes": block.nbytes, "to_host_s": statistics.median(to_host),
            "to_device_s": statistics.median(to_device)}


def main(layers: int, out_dir: Path) -> None:
    if not torch.cuda.is_available():
        print("offload_step_time: no CUDA device, nothing measured")
        return
    device = torch.device("cuda")
    found: dict[str, Any] = {"layers": layers, "hidden": HIDDEN, "batch_size": BATCH,
                             "gpu": torch.cuda.get_device_name(device)}
    path = out_dir / f"offload-{layers}.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    found["memory"] = memory(layers)
    path.write_text(json.dumps(found, indent=1))
    for label, row in found["memory"].items():
        print(f"{label:10} CUDA allocated train {row['train_peak_allocated_bytes'] / MIB:,.1f} "
              f"MiB (predicted {row['predicted_train_peak_allocated_bytes'] / MIB:,.1f}), "
              f"eval {row['eval_peak_allocated_bytes'] / MIB:,.1f}; tracked train "
              f"{row['train_peak_tracked_bytes'] / MIB:,.1f} (meta "
              f"{row['predicted_train_peak_bytes'] / MIB:,.1f}); host tracked "
              f"{(row['host_peak_tracked_bytes'] or 0) / MIB:,.1f} MiB")
    pinned = torch.cuda.host_memory_stats()  # the other variants pin only their batches
    found["pinned_host"] = {name: pinned.get(name) for name in PINNED_STATS}
    print(f"pinned host memory (PyTorch's cache): {found['pinned_host']}")
    link = found["link"] = link_seconds(device)
    offloaded = found["memory"]["bp-offload"]["offloaded_bytes_per_step"]
    expected = offloaded / link["block_bytes"] * (link["to_host_s"] + link["to_device_s"])
    print(f"host link: {link['block_bytes'] / link['to_host_s'] / 1e9:.1f} GB/s to the host, "
          f"{link['block_bytes'] / link['to_device_s'] / 1e9:.1f} GB/s back; "
          f"{offloaded / 1e9:.2f} GB each way per step: {expected * 1e3:.1f} ms expected")
    median, cells = alternating_medians(VARIANTS, layers, HIDDEN, BATCH, ROUNDS, "cuda", None)
    found["step_time_median_s"] = median
    found["copy_seconds_expected"] = expected
    print("\n".join(ratio_lines(median, cells, list(VARIANTS))))
    print(f"bp-offload - bp-fused: {(median['bp-offload'] - median['bp-fused']) * 1e3:.1f} ms "
          f"a step (the copies; {expected * 1e3:.1f} ms expected from the link)")
    path.write_text(json.dumps(found, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_LAYERS,
         Path(sys.argv[2]) if len(sys.argv) > 2 else Path("results/gpu"))
