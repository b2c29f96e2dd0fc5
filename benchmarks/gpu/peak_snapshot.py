"""What CUDA holds at its train peak that the tensor tracker does not see.

python benchmarks/gpu/peak_snapshot.py [ALGORITHM] [LAYERS] [OUT_DIR]

Builds the published-size cell (hidden 2000, batch 5000) on cuda, warms it up as a cell
does, then runs the train phase of the memory pass twice: once bare and once under the
tensor tracker (does tracking change what CUDA allocates?), the second with the caching
allocator's history recorded. Prints max_memory_allocated of both, the tracked peak, and
the allocations alive at the allocator's peak, largest first, each with the Python line
and the C++ frames that made it. The snapshot goes to OUT_DIR/ALGORITHM-LAYERS.pickle
(drag it onto https://pytorch.org/memory_viz).

Written for the open question in docs/gpu.md ("Not identified yet"): ff's
max_memory_allocated did not move when fusing ReLU + goodness lowered its tracked peak.
"""

from __future__ import annotations

import pickle
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import MEMORY_PASS_STEPS, warmed_up
from ffbench.measure import cuda
from ffbench.measure.tracker import TensorTracker
from ffbench.settings.cell import CellSpec

MIB = 2**20
SHOWN_BLOCKS = 16
CPP_FRAMES_SHOWN = 4


def live_at_peak(trace: list[dict[str, Any]], start: int) -> tuple[int, list[dict[str, Any]]]:
    """(allocated bytes, blocks alive) at the highest point of `trace[start:]`, replaying
    the whole trace from its first event (recording began before anything was allocated)."""
    live: dict[int, dict[str, Any]] = {}
    total = peak = 0
    peak_blocks: list[dict[str, Any]] = []
    for index, event in enumerate(trace):
        if event["action"] == "alloc":
            live[event["addr"]] = event
            total += event["size"]
        elif event["action"] == "free_completed" and event["addr"] in live:
            total -= live.pop(event["addr"])["size"]
        if index >= start and total > peak:
            peak, peak_blocks = total, list(live.values())
    return peak, sorted(peak_blocks, key=lambda block: -block["size"])


def origin(block: dict[str, Any]) -> str:
    """The ffbench line that asked for a block, then the first C++ frames outside the
    allocator (on the autograd thread there is no Python line)."""
    frames = block.get("frames", [])
    python = [f"{f['filename'].split('ffbench/')[-1]}:{f['line']} {f['name']}"
              for f in frames if "ffbench/" in f["filename"]]
    native = [f["name"][:70] for f in frames
              if f["filename"].endswith((".so", ".cpp", ".h", "??")) or "::" in f["name"]]
    native = [name for name in native if not name.startswith(("c10::", "std::"))]
    return " | ".join(python[:1] + native[:CPP_FRAMES_SHOWN]) or "(no frames)"


def train_phase(built: Any, tracked: bool) -> tuple[int, int | None]:
    """(max_memory_allocated, tracked peak) over the memory pass's train steps."""
    device = built.algorithm.device
    cuda.reset_peaks(device)
    tracker = TensorTracker(device, built.algorithm.persistent_tensors) if tracked else None
    with nullcontext() if tracker is None else tracker:
        for _ in range(MEMORY_PASS_STEPS):
            built.algorithm.step(built.train)
    allocated_bytes, _ = cuda.read_peaks(device)
    assert allocated_bytes is not None
    return allocated_bytes, None if tracker is None else tracker.peak_bytes


def main(algorithm: str, layers: int, out_dir: Path) -> None:
    torch.cuda.memory._record_memory_history(max_entries=1_000_000, stacks="all")
    spec = resolved(CellSpec(algorithm, n_layers=layers, hidden=2000, batch_size=5000,
                    device="cuda"))
    built = warmed_up(spec, spec.warmup_steps)
    bare_bytes, _ = train_phase(built, tracked=False)
    start = len(torch.cuda.memory._snapshot()["device_traces"][torch.cuda.current_device()])
    allocated_bytes, tracked_bytes = train_phase(built, tracked=True)
    snapshot = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{algorithm}-{layers}.pickle"
    path.write_bytes(pickle.dumps(snapshot))
    trace = snapshot["device_traces"][torch.cuda.current_device()]
    replayed_bytes, blocks = live_at_peak(trace, start)
    assert tracked_bytes is not None
    print(f"{algorithm}, {layers} layers, train phase ({MEMORY_PASS_STEPS} steps):")
    print(f"  max_memory_allocated bare {bare_bytes / MIB:,.1f} MiB, "
          f"under the tracker {allocated_bytes / MIB:,.1f} MiB")
    print(f"  tracked peak {tracked_bytes / MIB:,.1f} MiB; replayed trace peak "
          f"{replayed_bytes / MIB:,.1f} MiB ({len(blocks)} blocks alive)")
    for block in blocks[:SHOWN_BLOCKS]:
        print(f"  {block['size'] / MIB:9.2f} MiB  {origin(block)}")
    rest = sum(block["size"] for block in blocks[SHOWN_BLOCKS:])
    print(f"  {rest / MIB:9.2f} MiB  in {max(0, len(blocks) - SHOWN_BLOCKS)} smaller blocks")
    print(f"  snapshot: {path}")


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("peak_snapshot.py: needs a CUDA GPU (the allocator history is CUDA's)",
              file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1] if len(sys.argv) > 1 else "ff",
         int(sys.argv[2]) if len(sys.argv) > 2 else 2,
         Path(sys.argv[3] if len(sys.argv) > 3 else "results/gpu"))
