"""Human-readable views of result rows (units converted here, never in stored data)."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from ffbench.measure.categories import CATEGORIES

MIB = 2**20


def mib(value: int | float | None) -> str:
    return "-" if value is None else f"{value / MIB:,.2f} MiB"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:,.2f} ms"


def cell_table(row: dict[str, Any]) -> Table:
    """One cell's headline numbers: memory per phase, categories at the train peak, time."""
    title = (
        f"{row['algorithm']}  layers={row['n_layers']} hidden={row['hidden']} "
        f"batch={row['batch_size']} rows/step={row['rows_per_step'] or '-'}  "
        f"{row['device']} {row['dtype']}  [{row['status']}]"
    )
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("train", justify="right")
    table.add_column("eval", justify="right")
    for label, key in (
        ("tracked peak", "peak_tracked_bytes"),
        ("predicted peak (meta)", "predicted_{}_peak_bytes"),
        ("CUDA allocated peak", "peak_allocated_bytes"),
        ("CUDA reserved peak", "peak_reserved_bytes"),
    ):
        train_key = key.format("train") if "{}" in key else f"train_{key}"
        eval_key = key.format("eval") if "{}" in key else f"eval_{key}"
        table.add_row(label, mib(row.get(train_key)), mib(row.get(eval_key)))
    for name in CATEGORIES:
        train_bytes, eval_bytes = row.get(f"mem_{name}_bytes"), row.get(f"eval_mem_{name}_bytes")
        if train_bytes or eval_bytes:
            table.add_row(f"  {name}", mib(train_bytes), mib(eval_bytes))
    table.add_row("static (params + optimizer)", mib(row.get("static_bytes")), "")
    table.add_row("NVML device peak", mib(row.get("nvml_peak_used_bytes")), "")
    table.add_row("host peak RSS (VmHWM)", mib(row.get("cpu_peak_rss_bytes")), "")
    if row.get("host_peak_tracked_bytes") is not None:
        table.add_row("host tracked peak", mib(row["host_peak_tracked_bytes"]), "")
    table.add_row("time, median", ms(row.get("step_time_median_s")), ms(row.get("eval_time_s")))
    table.add_row("time, IQR", ms(row.get("step_time_iqr_s")), "")
    rate = row.get("samples_per_s")
    table.add_row("samples/s", "-" if rate is None else f"{rate:,.0f}", "")
    flops = row.get("achieved_flops_per_s")
    table.add_row("GFLOP/s achieved", "-" if flops is None else f"{flops / 1e9:,.1f}", "")
    accuracy = row.get("test_accuracy")
    table.add_row("test accuracy", "-" if accuracy is None else f"{accuracy:.2%}", "")
    if row.get("layer_accuracy"):
        per_layer = json.loads(row["layer_accuracy"])
        table.add_row("  by layer", " ".join(f"{value:.1%}" for value in per_layer), "")
    return table
