"""Human-readable views of result rows (units converted here, never in stored data)."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from ffbench.check import Change, CheckReport
from ffbench.measure.categories import CATEGORIES
from ffbench.results import FAILED_STATUSES
from ffbench.units import mib, ms


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
    if row.get("predicted_train_peak_allocated_bytes") is not None:
        gpu = row.get("target_gpu") or row.get("gpu_name") or "GPU"
        for label, key in (("allocated", "allocated"), ("reserved", "reserved")):
            table.add_row(f"predicted CUDA {label} ({gpu})",
                          mib(row.get(f"predicted_train_peak_{key}_bytes")),
                          mib(row.get(f"predicted_eval_peak_{key}_bytes")))
    for name in CATEGORIES:
        train_bytes, eval_bytes = row.get(f"mem_{name}_bytes"), row.get(f"eval_mem_{name}_bytes")
        if train_bytes or eval_bytes:
            table.add_row(f"  {name}", mib(train_bytes), mib(eval_bytes))
    table.add_row("static (params + optimizer)", mib(row.get("static_bytes")), "")
    table.add_row("NVML device peak", mib(row.get("nvml_peak_used_bytes")), "")
    table.add_row("host peak RSS (VmHWM)", mib(row.get("cpu_peak_rss_bytes")), "")
    if row.get("host_peak_tracked_bytes") is not None:
        table.add_row("host tracked peak", mib(row["host_peak_tracked_bytes"]), "")
    if row.get("offloaded_bytes_per_step"):
        table.add_row("offloaded to host, per step", mib(row["offloaded_bytes_per_step"]), "")
    table.add_row("time, median", ms(row.get("step_time_median_s")), ms(row.get("eval_time_s")))
    table.add_row("time, IQR", ms(row.get("step_time_iqr_s")), "")
    rate = row.get("samples_per_s")
    table.add_row("samples/s", "-" if rate is None else f"{rate:,.0f}", "")
    flops = row.get("achieved_flops_per_s")
    table.add_row("GFLOP/s achieved", "-" if flops is None else f"{flops / 1e9:,.1f}", "")
    efficiency = row.get("efficiency")
    table.add_row(
        "of calibrated matmul rate", "-" if efficiency is None else f"{efficiency:.0%}", ""
    )
    accuracy = row.get("test_accuracy")
    table.add_row("test accuracy", "-" if accuracy is None else f"{accuracy:.2%}", "")
    if row.get("layer_accuracy"):
        per_layer = json.loads(row["layer_accuracy"])
        table.add_row("  by layer", " ".join(f"{value:.1%}" for value in per_layer), "")
    return table


def train_peak_bytes(row: dict[str, Any]) -> int | None:
    """The device's own peak where it has one (CUDA), else the tensor tracker's."""
    allocated = row.get("train_peak_allocated_bytes")
    return allocated if allocated is not None else row.get("train_peak_tracked_bytes")


def _value_range(values: list[Any], fmt: Any) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    low, high = min(present), max(present)
    return fmt(low) if low == high else f"{fmt(low)} – {fmt(high)}"


def sweep_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """One line per algorithm: how its cells ended, and its range of train peaks and step times."""
    table = Table(title=title, show_header=True, header_style="bold")
    for name, justify in (("algorithm", "left"), ("ok", "right"), ("failed", "left"),
                          ("skipped", "right"), ("train peak", "right"),
                          ("step time (median)", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for algorithm in dict.fromkeys(row["algorithm"] for row in rows):
        mine = [row for row in rows if row["algorithm"] == algorithm]
        ok = [row for row in mine if row["status"] == "ok"]
        failed = {s: sum(row["status"] == s for row in mine) for s in FAILED_STATUSES}
        failed_text = ", ".join(f"{n} {s}" for s, n in failed.items() if n) or "0"
        table.add_row(
            algorithm, str(len(ok)), failed_text,
            str(sum(row["status"] == "skipped" for row in mine)),
            _value_range([train_peak_bytes(row) for row in ok], mib),
            _value_range([row.get("step_time_median_s") for row in ok], ms),
        )
    return table


def changes_table(title: str, changes: list[Change]) -> Table:
    table = Table(title=title, header_style="bold")
    table.add_column("cell")
    table.add_column("metric", overflow="fold")  # a column's name whole, if on two lines
    for column in ("baseline", "now", "change"):
        table.add_column(column, justify="right")
    for change in sorted(changes, key=lambda c: (c.label, c.metric)):
        ratio = "failed" if change.result is None else f"{change.ratio - 1:+.2%}"
        table.add_row(change.label, change.metric, mib(change.baseline), mib(change.result), ratio)
    return table


def check_lines(report: CheckReport, rtol: float) -> list[Any]:
    """`ffbench check`'s answer: its tables of changes, the new and missing cells, a summary."""
    shown: list[Any] = []
    if report.regressions:
        shown.append(changes_table(f"regressions beyond {rtol:.1%}", report.regressions))
    if report.improvements:
        shown.append(changes_table(f"improvements beyond {rtol:.1%}", report.improvements))
    for what, labels in (("new (not in the baseline)", report.new_cells),
                         ("missing (in the baseline only)", report.missing_cells)):
        shown += [f"{what}: {label}" for label in labels]
    if report.uncompared:
        shown.append(uncompared_line(report))
    verdict = "FAIL" if report.exit_code else "ok"
    uncompared = f", {len(report.uncompared)} not compared" if report.uncompared else ""
    shown.append(f"{verdict}: {report.compared_cells} cells compared, "
                 f"{len(report.regressions)} regressions, {len(report.improvements)} "
                 f"improvements, {len(report.new_cells)} new, {len(report.missing_cells)} "
                 f"missing{uncompared}")
    return shown


UNCOMPARED_SHOWN = 10  # cells named in the line; the rest are counted


def uncompared_line(report: CheckReport) -> str:
    """One line naming the cells the gate could not compare, and why."""
    cells = report.uncompared
    named = "; ".join(cells[:UNCOMPARED_SHOWN])
    more = f"; and {len(cells) - UNCOMPARED_SHOWN} more" if len(cells) > UNCOMPARED_SHOWN else ""
    allowed = (" (--allow-uncompared: not a failure)" if report.allow_uncompared
               else " (a failure: add --allow-uncompared to accept it)")
    return f"could not compare {len(cells)} cell(s){allowed}: {named}{more}"
