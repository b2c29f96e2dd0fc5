"""Predicted (meta) against measured (CUDA max_memory_allocated) peaks, for a handful of cells.

On a GPU machine, from the repository root:

    python benchmarks/gpu_predicted_vs_measured.py --out results/gpu/predicted-vs-measured

Each cell runs in its own process (`ffbench run ... --device cuda --out`); the rows are then
consolidated into OUT/results.parquet (commit it) and the gaps printed. Expected: measured >=
predicted by a near-constant few tens of MiB (cuBLAS / cuBLASLt workspaces, allocated through
PyTorch's caching allocator once a matmul runs) plus each block's rounding up to 512 bytes;
`max_memory_reserved` adds the allocator's segment rounding (2 MiB small-pool segments,
larger segments for big blocks); the CUDA context (hundreds of MiB) is in NVML's number only.
About three minutes on an H100.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ffbench.results import CELLS_DIR, PARQUET_NAME, load, read_row_json, write_parquet
from ffbench.units import mib as _mib

HIDDEN, BATCH = 2000, 5000  # the published width and batch
# (algorithm, layers, extra flags): shallow and deeper; FF eval chunked and whole
CELLS = [
    ("bp", 2, []), ("bp", 7, []),
    ("ff", 2, []), ("ff", 7, []),
    ("ff", 2, ["--eval-chunk", "10000"]),
    ("rff", 2, []),
    ("ff-progressive", 2, ["--option", "cache=true"]),
    ("ff-layerwise", 2, []),
]
CELL_TIMEOUT_S = 600


def mib(value: float | None) -> str:
    """MiB, or "-" for a missing value (None, or NaN from parquet)."""
    return "-" if value is None or value != value else _mib(value)


def run_cells(out: Path) -> None:
    for algorithm, layers, extra in CELLS:
        name = "-".join([algorithm, str(layers), *[e.strip("-").replace("=", "-") for e in extra]])
        command = [
            sys.executable, "-m", "ffbench", "run", algorithm, "--layers", str(layers),
            "--hidden", str(HIDDEN), "--batch-size", str(BATCH), "--device", "cuda",
            "--steps", "3", *extra, "--out", str(out / CELLS_DIR / f"{name}.json"),
        ]
        print(" ".join(command[2:]), flush=True)
        try:
            subprocess.run(command, check=False, timeout=CELL_TIMEOUT_S, stdout=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            print(f"  timed out after {CELL_TIMEOUT_S} s; no row", flush=True)


def report(out: Path) -> None:
    rows = [read_row_json(p) for p in sorted((out / CELLS_DIR).glob("*.json"))]
    write_parquet(rows, out / PARQUET_NAME)
    frame = load([out])
    print(f"{'cell':<28} {'phase':<6} {'predicted':>12} {'tracked':>12} {'allocated':>12} "
          f"{'reserved':>12} {'alloc-pred':>11}")
    for _, row in frame.iterrows():
        label = f"{row.algorithm} L={row.n_layers} chunk={row.eval_chunk} {row.status}"
        for phase in ("train", "eval"):
            predicted = row[f"predicted_{phase}_peak_bytes"]
            allocated = row[f"{phase}_peak_allocated_bytes"]
            gap = allocated - predicted  # NaN where the cell failed
            print(f"{label:<28} {phase:<6} {mib(predicted):>12} "
                  f"{mib(row[f'{phase}_peak_tracked_bytes']):>12} {mib(allocated):>12} "
                  f"{mib(row[f'{phase}_peak_reserved_bytes']):>12} {mib(gap):>11}")
    print(f"wrote {out / PARQUET_NAME}; GPU: {frame.gpu_name.iloc[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/gpu/predicted-vs-measured"))
    args = parser.parse_args()
    run_cells(args.out)
    report(args.out)


if __name__ == "__main__":
    main()
