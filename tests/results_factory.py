"""Result rows with known, exactly linear-plus-noise numbers, for the plot and report tests.

Built with `ffbench.results.make_row`, so they carry the real schema; no torch needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ffbench.results import make_row, write_parquet

MIB = 2**20
# Bytes added per hidden layer, and at zero layers, per algorithm (train peak).
# ff crosses below bp from 3 layers on (equal at 2); it stays above bp-lean at every depth.
TRAIN_SLOPE_BYTES = {"bp": 4 * MIB, "ff": 3 * MIB, "bp-lean": 2 * MIB}
INTERCEPT_BYTES = {"bp": 10 * MIB, "ff": 12 * MIB, "bp-lean": 6 * MIB}
STEP_S_PER_LAYER = {"bp": 2e-3, "ff": 3e-3, "bp-lean": 2.5e-3}
DEPTHS = (1, 2, 3, 4, 6)
BATCH_SIZES = (64, 256)
HIDDEN = 32


def wobble(n_layers: int, batch_size: int) -> int:
    """A deterministic, irregular offset so that a least-squares fit is not trivially exact."""
    return (n_layers * 7919 + batch_size * 104729) % 13 * 4096


def ok_row(algorithm: str, n_layers: int, batch_size: int, **extra: Any) -> dict[str, Any]:
    train = (INTERCEPT_BYTES[algorithm] + TRAIN_SLOPE_BYTES[algorithm] * n_layers
             + batch_size * 1024 + wobble(n_layers, batch_size))
    evaluation = train // 2 + wobble(n_layers + 1, batch_size)
    step_s = STEP_S_PER_LAYER[algorithm] * n_layers + 1e-3 + wobble(n_layers, batch_size) * 1e-9
    parameters = TRAIN_SLOPE_BYTES[algorithm] * n_layers // 4
    values = {
        "algorithm": algorithm, "n_layers": n_layers, "batch_size": batch_size,
        "hidden": HIDDEN, "device": "cpu", "status": "ok",
        "train_peak_tracked_bytes": train, "eval_peak_tracked_bytes": evaluation,
        "predicted_train_peak_bytes": train, "predicted_eval_peak_bytes": evaluation,
        "mem_parameters_bytes": parameters, "mem_optimizer_state_bytes": 2 * parameters,
        "mem_activations_bytes": train - 3 * parameters,
        "eval_mem_parameters_bytes": parameters,
        "eval_mem_activations_bytes": evaluation - parameters,
        "step_time_median_s": step_s, "step_time_iqr_s": step_s / 10,
        "samples_per_s": batch_size / step_s,
        "cpu_model": "Test CPU", "torch_version": "2.0-test", "host": "testhost",
        "started_at": "2026-01-02T03:04:05+00:00",
    }
    return make_row(**(values | extra))


def peak_row(algorithm: str, n_layers: int, train_mib: float, eval_mib: float,
             batch_size: int = BATCH_SIZES[0], **extra: Any) -> dict[str, Any]:
    """A successful cell with the given train and eval peaks (tracked, MiB) and nothing
    else measured: any algorithm name, any peaks."""
    values = {
        "algorithm": algorithm, "n_layers": n_layers, "batch_size": batch_size,
        "hidden": HIDDEN, "device": "cpu", "status": "ok",
        "train_peak_tracked_bytes": round(train_mib * MIB),
        "eval_peak_tracked_bytes": round(eval_mib * MIB),
        "cpu_model": "Test CPU", "torch_version": "2.0-test", "host": "testhost",
        "started_at": "2026-01-02T03:04:05+00:00",
    }
    return make_row(**(values | extra))


def failed_row(algorithm: str, n_layers: int, batch_size: int, status: str) -> dict[str, Any]:
    return make_row(algorithm=algorithm, n_layers=n_layers, batch_size=batch_size, hidden=HIDDEN,
                    device="cpu", status=status, error=f"{status} on purpose",
                    started_at="2026-01-02T03:04:05+00:00")


def sweep_rows(algorithms: tuple[str, ...] = ("bp", "ff"), **extra: Any) -> list[dict[str, Any]]:
    return [ok_row(a, n, b, **extra) for a in algorithms for b in BATCH_SIZES for n in DEPTHS]


def write_results(directory: Path, rows: list[dict[str, Any]]) -> Path:
    write_parquet(rows, directory / "results.parquet")
    return directory
