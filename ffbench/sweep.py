"""A sweep: a grid of cells from a TOML file and flags, run in fresh processes, resumable.

Pure core (reading the sweep, expanding the grid, planning a resume, classifying how a
child ended) and one effectful driver, `run_sweep`, which writes every outcome as a row:
`OUT/cells/<cell_id>.json` per cell and `OUT/results.parquet` after each, both atomically.
No torch here: the parent process starts fast and refuses bad input in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import ffbench
from ffbench.algorithms.registry import ALGORITHMS
from ffbench.executors import CellJob, CellOutcome, LocalPool, SubmititPool, gpu_ids
from ffbench.measure.env import host_columns, utc_now
from ffbench.results import (
    CELLS_DIR,
    FAILED_STATUSES,
    PARQUET_NAME,
    ResultsError,
    make_row,
    read_row_json,
    write_parquet,
    write_row_json,
)
from ffbench.spec import BadInput, CellSpec, identity_columns, parse_int_range, parse_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

DEFAULT_SWEEP = "quick"
RESULTS_ROOT = Path("results")
WORK_DIR = ".work"  # spec files and child stderr of the running invocation; removed after it
EXECUTORS = ("local", "slurm")
SUBMITIT_CLUSTERS = ("slurm", "local")  # local: submitit's stand-in on this machine (tests)
DEFAULT_TIMEOUT_S = 1800.0
OOM_MARKERS = ("MemoryError", "OutOfMemoryError", "CUDA out of memory", "can't allocate memory")
STDERR_TAIL_CHARS = 2000

GRID_KEYS = ("algorithms", "layers", "batch_sizes", "hidden")
_PER_CELL = {"algorithm", "n_layers", "batch_size", "hidden"}  # set by the grid, not by a key
CELL_KEYS = tuple(f.name for f in dataclasses.fields(CellSpec) if f.name not in _PER_CELL)
RUNNER_KEYS = ("name", "timeout_s", "jobs", "executor", "slurm")
SLURM_KEYS: dict[str, type | tuple[type, ...]] = {
    "cluster": str, "partition": str, "account": str, "qos": str, "constraint": str,
    "time_min": int, "gpus_per_task": int, "cpus_per_task": int, "mem_gb": (int, float),
    "array_parallelism": int, "setup": list,
}


@dataclass(frozen=True)
class SweepSpec:
    """A grid (algorithms x hidden x batch sizes x depths) with settings shared by every cell."""

    name: str
    algorithms: tuple[str, ...]
    layers: tuple[int, ...]
    batch_sizes: tuple[int, ...] = (CellSpec.batch_size,)
    hidden: tuple[int, ...] = (CellSpec.hidden,)
    cell: dict[str, Any] = field(default_factory=dict)  # CellSpec keyword arguments
    timeout_s: float = DEFAULT_TIMEOUT_S
    jobs: int = 1
    executor: str = "local"
    slurm: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[CellSpec]:
        """Every cell, validated (BadInput on the first bad one); depth-major so that all
        algorithms' curves grow together while the sweep runs."""
        specs = [
            CellSpec(algorithm=a, n_layers=n, hidden=h, batch_size=b, **self.cell)
            for h in self.hidden
            for b in self.batch_sizes
            for n in self.layers
            for a in self.algorithms
        ]
        return list({spec.cell_id: spec for spec in specs}.values())


# ---- reading a sweep: TOML file (path or packaged name) + flags ---------------------------


def packaged_sweeps() -> list[str]:
    folder = resources.files(ffbench).joinpath("sweeps")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_sweep_file(source: str | None) -> tuple[str, dict[str, Any]]:
    """(default name, TOML values) of a sweep file path or a packaged sweep name."""
    source = source or DEFAULT_SWEEP
    path = Path(source)
    if path.exists() or path.suffix == ".toml" or os.sep in source:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read sweep file {source}: {exc}") from None
    elif source in packaged_sweeps():
        text = resources.files(ffbench).joinpath("sweeps", f"{source}.toml").read_text()
    else:
        known = ", ".join(packaged_sweeps())
        raise BadInput(f"no sweep file {source!r} (packaged sweeps: {known})")
    try:
        return path.stem, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source}: invalid TOML ({exc})") from None


def load_sweep(source: str | None, overrides: dict[str, Any]) -> SweepSpec:
    """The sweep file's values with every given flag overriding its key (options merged)."""
    default_name, values = read_sweep_file(source)
    if not isinstance(values.get("options", {}), dict):
        raise BadInput("sweep key options: expected a table ([options] NAME = VALUE)")
    options = {**values.get("options", {}), **overrides.get("options", {})}
    merged = {**values, **overrides}
    if options:
        merged["options"] = options
    return sweep_spec(merged, default_name)


def sweep_spec(values: dict[str, Any], default_name: str) -> SweepSpec:
    """Check every key and value; BadInput names the first one wrong."""
    known = (*GRID_KEYS, *CELL_KEYS, *RUNNER_KEYS)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadInput(f"unknown sweep key {unknown[0]!r} (known: {', '.join(known)})")
    for key in ("algorithms", "layers"):
        if key not in values:
            raise BadInput(f"the sweep gives no {key} (set `{key} = ...` or --{key})")
    hints = get_type_hints(CellSpec)
    cell = {key: values[key] for key in CELL_KEYS if key in values}
    for key, value in cell.items():
        if not _accepts(hints[key], value):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise BadInput(f"sweep key {key} = {value!r}: expected {expected}")
    return SweepSpec(
        name=_name(values.get("name", default_name)),
        algorithms=_algorithms(values["algorithms"]),
        layers=_int_grid("layers", values["layers"]),
        batch_sizes=_int_grid("batch_sizes", values.get("batch_sizes", CellSpec.batch_size)),
        hidden=_int_grid("hidden", values.get("hidden", CellSpec.hidden)),
        cell=cell,
        timeout_s=_positive_number("timeout_s", values.get("timeout_s", DEFAULT_TIMEOUT_S)),
        jobs=_positive_int("jobs", values.get("jobs", 1)),
        executor=_executor(values.get("executor", "local")),
        slurm=_slurm_table(values.get("slurm", {})),
    )


def _accepts(hint: Any, value: Any) -> bool:
    """isinstance against a CellSpec annotation (int | None, float, dict[str, Any], ...)."""
    if get_origin(hint) in (Union, UnionType):
        return any(_accepts(arg, value) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    base = get_origin(hint) or hint
    if isinstance(value, bool) and base is not bool:
        return False
    if base is float:
        return isinstance(value, (int, float))
    return isinstance(value, base)


def _name(value: Any) -> str:
    """The sweep's name: the default results directory results/NAME, so one path part."""
    if not isinstance(value, str) or not re.fullmatch(r"[\w.+-]+", value) or value in (".", ".."):
        raise BadInput(f"sweep name {value!r}: use letters, digits, '.', '_', '+' or '-'")
    return value


_FLAGS = {"timeout_s": "timeout", "warmup_steps": "warmup"}  # keys whose flag is shorter


def _flag(key: str) -> str:
    return _FLAGS.get(key, key).replace("_", "-")


def _int_grid(key: str, value: Any) -> tuple[int, ...]:
    """"2..47", "2..47:5", "2,4,8", 4 or [2, 4, 8] -> sorted unique positive ints."""
    if isinstance(value, list) and all(type(v) is int for v in value):
        value = ",".join(map(str, value))
    elif type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise BadInput(f"--{_flag(key)}: expected a range like 2..47, 2..47:5 or 2,4,8")
    return tuple(parse_int_range(value, flag=_flag(key)))


def _algorithms(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise BadInput("--algorithms: expected names like bp,ff,rff")
    names = parse_names(value, flag="algorithms", known=tuple(ALGORITHMS))
    return tuple(dict.fromkeys(names))


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BadInput(f"--{_flag(key)} must be a positive number of seconds, got {value!r}")
    return float(value)


def _positive_int(key: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise BadInput(f"--{_flag(key)} must be a whole number of at least 1, got {value!r}")
    return value


def _executor(value: Any) -> str:
    if value not in EXECUTORS:
        raise BadInput(f"unknown executor {value!r} (use one of: {', '.join(EXECUTORS)})")
    return str(value)


def _slurm_table(table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise BadInput("sweep key slurm: expected a table ([slurm])")
    for key, value in table.items():
        if key not in SLURM_KEYS:
            raise BadInput(f"unknown [slurm] key {key!r} (known: {', '.join(SLURM_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, SLURM_KEYS[key]):
            raise BadInput(f"[slurm] {key} = {value!r} has the wrong type")
    if table.get("cluster", "slurm") not in SUBMITIT_CLUSTERS:
        raise BadInput(f"[slurm] cluster must be one of: {', '.join(SUBMITIT_CLUSTERS)}")
    return dict(table)


def check_runnable(sweep: SweepSpec) -> None:
    """What can be refused before anything runs, beyond the cells themselves."""
    if sweep.executor == "slurm" and sweep.slurm.get("cluster", "slurm") == "slurm":
        if shutil.which("sbatch") is None:
            raise BadInput("--executor slurm: no sbatch on this machine (is Slurm installed?)")


# ---- the results directory -----------------------------------------------------------------


def results_dir(out: Path | None, name: str, *, fresh: bool) -> Path:
    """Where the sweep writes: `out` (default results/NAME); with `fresh`, the first of
    NAME, NAME.2, NAME.3, ... that does not exist yet. Nothing is created here."""
    base = out if out is not None else RESULTS_ROOT / name
    if base.exists() and not base.is_dir():
        raise BadInput(f"--out {base} is a file; give a directory for the sweep's results")
    _check_creatable(base)
    if not fresh or not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}.{n}").exists():
        n += 1
    return base.with_name(f"{base.name}.{n}")


def _check_creatable(path: Path) -> None:
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise BadInput(f"--out {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"--out {path}: {existing} is not writable")


def clean_partial_files(out_dir: Path) -> None:
    """Temporary files of atomic writes interrupted by a kill, and the last run's work dir."""
    for tmp in [*out_dir.glob(".*.tmp"), *(out_dir / CELLS_DIR).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)


def load_cells(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Rows already in OUT/cells, by cell_id; an unreadable file is left to be run again."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / CELLS_DIR).glob("*.json")):
        try:
            rows[path.stem] = read_row_json(path)
        except ResultsError as exc:
            log.warning("%s; the cell will run again", exc)
    return rows


def is_finished(row: dict[str, Any] | None, *, retry_failed: bool) -> bool:
    """ok cells are never rerun; failed ones only with --retry-failed; skipped ones always."""
    if row is None:
        return False
    return row["status"] == "ok" or (row["status"] in FAILED_STATUSES and not retry_failed)


# ---- turning how a child ended into a row ----------------------------------------------------


def classify(outcome: CellOutcome, timeout_s: float) -> tuple[str, str]:
    """(status, error text) for a cell whose child left no row."""
    tail = outcome.stderr_tail[-STDERR_TAIL_CHARS:]
    code = outcome.returncode
    if outcome.timed_out:
        return "timeout", f"no result within the timeout of {timeout_s:g} s; the cell was killed"
    if outcome.scheduler_state is not None:
        status = {"OUT_OF_MEMORY": "oom", "TIMEOUT": "timeout", "FAILED": "error"}
        return status.get(outcome.scheduler_state, "crashed"), tail
    if code is not None and code < 0:
        name = _signal_name(-code)
        if -code == signal.SIGKILL:
            return "oom", f"killed by {name}, most likely the host's out-of-memory killer\n{tail}"
        return "crashed", f"killed by {name}\n{tail}"
    if any(marker in tail for marker in OOM_MARKERS):
        return "oom", tail
    return "error", f"exited with code {code} without a result row\n{tail}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_row(
    spec: CellSpec, sweep_id: str, status: str, error: str, outcome: CellOutcome | None = None
) -> dict[str, Any]:
    """A full row for a cell that left none: identity and the environment known without torch."""
    where = host_columns() | ({"host": outcome.host} if outcome and outcome.host else {})
    return make_row(
        **identity_columns(spec, sweep_id),
        **where,
        status=status,
        error=error,
        returncode=outcome.returncode if outcome else None,
        cell_wall_s=outcome.wall_s if outcome else None,
        started_at=outcome.started_at if outcome else utc_now(),
        torch_version=_installed_version("torch"),
    )


def _installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def outcome_row(job: CellJob, outcome: CellOutcome, timeout_s: float) -> dict[str, Any]:
    """The child's own row if it wrote one (even if it hung afterwards), else a failure row."""
    try:
        return read_row_json(job.row_path)
    except ResultsError:
        row = failure_row(job.spec, job.sweep_id, *classify(outcome, timeout_s), outcome)
        write_row_json(row, job.row_path)
        return row


# ---- running -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    total: int  # cells in the grid
    to_run: int  # of which this invocation runs (the rest were finished before)


@dataclass(frozen=True)
class Started:
    spec: CellSpec


@dataclass(frozen=True)
class Finished:
    spec: CellSpec
    row: dict[str, Any]


Event = Planned | Started | Finished


class SweepDir:
    """The results directory of a sweep: its rows in memory, mirrored to disk atomically."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir
        self.cells = out_dir / CELLS_DIR
        self.cells.mkdir(parents=True, exist_ok=True)
        clean_partial_files(out_dir)
        self.rows = load_cells(out_dir)
        self.consolidate()  # repairs a parquet left behind by a kill between two writes

    def row_path(self, spec: CellSpec) -> Path:
        return self.cells / f"{spec.cell_id}.json"

    def forget(self, spec: CellSpec) -> None:
        """Drop a stale (failed or skipped) row about to be redone: it must not pass as new."""
        self.row_path(spec).unlink(missing_ok=True)
        self.rows.pop(spec.cell_id, None)

    def record(self, row: dict[str, Any]) -> None:
        self.rows[row["cell_id"]] = row
        self.consolidate()

    def sync(self) -> None:
        """Take in rows that children wrote but this process never heard of (Ctrl-C)."""
        self.rows = load_cells(self.path)
        self.consolidate()

    def consolidate(self) -> None:
        """All rows, one per cell, in a stable order, to results.parquet (atomically)."""
        if self.rows:
            write_parquet(sorted(self.rows.values(), key=_row_order), self.path / PARQUET_NAME)


def _row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("algorithm", "device", "dtype", "hidden", "batch_size", "n_layers", "cell_id")
    return tuple((row[key] is None, row[key] or 0) for key in keys)


def run_sweep(sweep: SweepSpec, out_dir: Path, *, retry_failed: bool = False) -> Iterator[Event]:
    """Run every unfinished cell of the sweep, yielding progress; each outcome is a row.

    Closing the iterator (or Ctrl-C inside it) kills the running cells; finished ones stay."""
    cells = sweep.cells()
    store = SweepDir(out_dir)
    todo = [
        spec for spec in cells
        if not is_finished(store.rows.get(spec.cell_id), retry_failed=retry_failed)
    ]
    yield Planned(total=len(cells), to_run=len(todo))
    runnable, skipped = _split_runnable(sweep, todo)
    for spec in skipped:
        row = failure_row(spec, out_dir.name, "skipped", "no CUDA device on this machine")
        write_row_json(row, store.row_path(spec))
        store.record(row)
        yield Finished(spec, row)

    def jobs() -> Iterator[CellJob]:
        for spec in runnable:  # taken one by one, just before each cell starts
            store.forget(spec)
            yield CellJob(spec, out_dir.name, store.row_path(spec))

    try:
        with closing(_pool(sweep, out_dir).run(jobs())) as ends:  # closing kills what runs
            for job, outcome in ends:
                if outcome is None:
                    yield Started(job.spec)
                    continue
                row = outcome_row(job, outcome, sweep.timeout_s)
                store.record(row)
                yield Finished(job.spec, row)
    finally:
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
        store.sync()


def _split_runnable(
    sweep: SweepSpec, cells: list[CellSpec]
) -> tuple[list[CellSpec], list[CellSpec]]:
    """(cells to run, cells to skip): CUDA cells cannot run locally without a GPU (a Slurm
    node may well have one, so the slurm executor runs them all)."""
    on_cuda = [spec for spec in cells if spec.device.startswith("cuda")]
    if sweep.executor != "local" or not on_cuda or gpu_ids():
        return cells, []
    return [spec for spec in cells if spec not in on_cuda], on_cuda


def _pool(sweep: SweepSpec, out_dir: Path) -> LocalPool | SubmititPool:
    if sweep.executor == "slurm":
        minutes = sweep.slurm.get("time_min", math.ceil(sweep.timeout_s / 60) + 5)
        return SubmititPool(slurm={**sweep.slurm, "time_min": minutes}, folder=out_dir / "slurm",
                            timeout_s=sweep.timeout_s)
    return LocalPool(jobs=sweep.jobs, timeout_s=sweep.timeout_s, gpus=gpu_ids(),
                     workdir=out_dir / WORK_DIR)


def timing_warning(sweep: SweepSpec) -> str | None:
    """Parallel cells on one CPU share its cores and caches: their times are not comparable."""
    timed_on_cpu = any(spec.device == "cpu" for spec in sweep.cells())
    if sweep.executor == "local" and sweep.jobs > 1 and timed_on_cpu:
        return (f"--jobs {sweep.jobs} runs CPU cells side by side: their step times distort "
                "each other (memory is unaffected); use --jobs 1 for timings")
    return None
