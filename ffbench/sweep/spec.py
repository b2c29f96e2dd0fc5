"""What a sweep is: a grid of cells (SweepSpec) from a TOML file and flags, validated.

Pure (no torch, no files written): a sweep file is a path or the name of one packaged in
ffbench/sweeps; its keys are CellSpec's field names plus the grid's plural ones (algorithms,
layers, batch_sizes, hidden) and the runner's (name, timeout_s, jobs, executor, [slurm]);
a flag overrides the key of the same name.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import ffbench
from ffbench.algorithms.presets import PRESETS, apply_preset
from ffbench.algorithms.registry import ALGORITHMS
from ffbench.algorithms.resolve import cell_id, check
from ffbench.errors import BadInput
from ffbench.results import read_regular
from ffbench.settings.cell import (
    MAX_BATCH_SIZE,
    MAX_HIDDEN,
    MAX_LAYERS,
    SETTINGS,
    CellSpec,
    check_data,
    flag_of,
    value_of,
)
from ffbench.settings.checks import one_of, whole_number
from ffbench.settings.ranges import parse_int_range, parse_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_SWEEP = "quick"
EXECUTORS = ("local", "slurm")
SUBMITIT_CLUSTERS = ("slurm", "local")  # local: submitit's stand-in on the local host (tests)
DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_MAX_CELLS = 10_000  # a bigger grid is refused unless --max-cells raises the limit
MAX_CELLS = 10**6  # the most --max-cells allows: one process per cell, 10**6 is weeks
MAX_JOBS = 1024  # cells at once on one machine; each is a process holding its own slot
MAX_SWEEP_FILE_BYTES = 1 << 20  # a sweep file is a few lines; a bigger one is not one
MAX_AUTO_META_JOBS = 4  # meta workers when --jobs is not given (each holds torch: ~0.9 GB)

GRID_KEYS = ("algorithms", *(setting.grid for setting in SETTINGS.values() if setting.grid))
# keys that set one setting of every cell: the table's settings but those the grid sets
CELL_KEYS = tuple(name for name, setting in SETTINGS.items() if not setting.grid)
RUNNER_KEYS = ("name", "timeout_s", "jobs", "executor", "slurm")
PRESET_KEY = "preset"  # named settings under every cell's own (algorithms.presets)
SLURM_KEYS: dict[str, type | tuple[type, ...]] = {
    "cluster": str, "partition": str, "account": str, "qos": str, "constraint": str,
    "time_min": int, "gpus_per_task": int, "cpus_per_task": int, "mem_gb": (int, float),
    "array_parallelism": int, "setup": list,
}


def usable_cpus() -> int:
    """CPU cores this process may run on (all of them where the OS cannot say: macOS)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class SweepSpec:
    """A grid (algorithms x hidden x batch sizes x depths) with settings shared by every cell."""

    name: str
    algorithms: tuple[str, ...]
    layers: tuple[int, ...]
    batch_sizes: tuple[int, ...] = (CellSpec.batch_size,)
    hidden: tuple[int, ...] = (CellSpec.hidden,)
    # CellSpec keyword arguments; a list is an axis of the grid (each value in turn)
    cell: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    jobs: int | None = None  # cells at once; None: `cells_at_once` chooses
    executor: str = "local"
    slurm: dict[str, Any] = field(default_factory=dict)
    # named settings each cell takes for its algorithm where the sweep sets nothing itself
    preset: str | None = None

    @property
    def device(self) -> str:
        """Every cell's device: it is a setting of the sweep, not a grid key."""
        return str(self.cell.get("device", CellSpec.device))

    @property
    def cells_at_once(self) -> int:
        """`jobs` if given; else predicted (meta) cells one per usable CPU core, up to
        MAX_AUTO_META_JOBS (nothing is timed, and each is only Python work), and measured
        cells one at a time (side by side, their step times would disturb each other)."""
        if self.jobs is not None:
            return self.jobs
        if self.device != "meta":
            return 1
        return max(1, min(usable_cpus(), MAX_AUTO_META_JOBS))

    @property
    def axes(self) -> dict[str, list[Any]]:
        """Settings the grid takes in turn (a sweep file's lists: `optimizer = ["adam",
        "sgd"]`), beyond its algorithms, widths, batch sizes and depths."""
        return {key: value for key, value in self.cell.items() if isinstance(value, list)}

    @property
    def shared(self) -> dict[str, Any]:
        """Settings every cell has the same."""
        return {key: value for key, value in self.cell.items() if not isinstance(value, list)}

    @property
    def size(self) -> int:
        """Cells in the grid, counted without building them (an upper bound: duplicates
        of one resolved cell run once, such as backprop's across FF-only settings)."""
        return (len(self.algorithms) * len(self.layers) * len(self.batch_sizes)
                * len(self.hidden) * math.prod(len(values) for values in self.axes.values()))

    def cells(self) -> list[CellSpec]:
        """Every cell, its algorithm and options checked (BadInput on the first bad one);
        depth-major so that all algorithms' curves grow together while the sweep runs."""
        axes, shared = self.axes, self.shared
        specs = [
            self._cell({"algorithm": a, "n_layers": n, "hidden": h, "batch_size": b, **shared,
                        **dict(zip(axes, values, strict=True))})
            for h in self.hidden
            for b in self.batch_sizes
            for n in self.layers
            for values in itertools.product(*axes.values())
            for a in self.algorithms
        ]
        return list({cell_id(spec): spec for spec in specs}.values())

    def _cell(self, fields: dict[str, Any]) -> CellSpec:
        """One cell: the sweep's settings, its preset's for the algorithm under them."""
        if self.preset is not None:
            fields = apply_preset(self.preset, fields["algorithm"], fields, set(fields))
        return check(CellSpec(**fields))


def packaged_sweeps() -> list[str]:
    folder = resources.files(ffbench).joinpath("sweeps")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_sweep_file(source: str | None) -> tuple[str, dict[str, Any]]:
    """(default name, TOML values) of a sweep file path or a packaged sweep name."""
    source = source or DEFAULT_SWEEP
    path = Path(source)
    if path.exists() or path.suffix == ".toml" or os.sep in source:
        try:
            text = read_regular(path, MAX_SWEEP_FILE_BYTES, "sweep file").decode()
        except (BadInput, UnicodeDecodeError) as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            raise BadInput(f"cannot read sweep file {source}: {reason}") from None
    elif source in packaged_sweeps():
        text = resources.files(ffbench).joinpath("sweeps", f"{source}.toml").read_text()
    else:
        known = ", ".join(packaged_sweeps())
        raise BadInput(f"no sweep file {source!r} (packaged sweeps: {known})")
    try:
        return path.stem, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source}: invalid TOML ({exc})") from None


def load_sweep(
    source: str | None, overrides: dict[str, Any], max_cells: int = DEFAULT_MAX_CELLS
) -> SweepSpec:
    """The sweep file's values with every given flag overriding its key (options merged)."""
    default_name, values = read_sweep_file(source)
    if not isinstance(values.get("options", {}), dict):
        raise BadInput("sweep key options: expected a table ([options] NAME = VALUE)")
    options = {**values.get("options", {}), **overrides.get("options", {})}
    merged = {**values, **overrides}
    if options:
        merged["options"] = options
    return parse_sweep(merged, default_name, max_cells)


def parse_definition(values: dict[str, Any]) -> SweepSpec:
    """A grid a results folder stored (its sweep.json), checked as a sweep file is (every
    key and value, at most MAX_CELLS cells), but for its algorithms, which may be plugins
    not installed here: names, not checked against the registry."""
    return parse_sweep(values, "", MAX_CELLS, installed_only=False)


def parse_sweep(
    values: dict[str, Any], default_name: str, max_cells: int = DEFAULT_MAX_CELLS, *,
    installed_only: bool = True,
) -> SweepSpec:
    """Check every key and value; BadInput names the first one wrong. The grid's size is
    computed before anything is expanded, and more than `max_cells` cells are refused.
    `installed_only`: the algorithms must be registered here."""
    known = (*GRID_KEYS, *CELL_KEYS, *RUNNER_KEYS, PRESET_KEY)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadInput(f"unknown sweep key {unknown[0]!r} (known: {', '.join(known)})")
    for key in ("algorithms", "layers"):
        if key not in values:
            raise BadInput(f"the sweep gives no {key} (set `{key} = ...` or --{key})")
    cell = {key: _cell_value(key, values[key]) for key in CELL_KEYS if key in values}

    def grid(key: str, default: Any) -> tuple[int, ...]:
        return _int_grid(key, values.get(key, default), max_cells)

    sweep = SweepSpec(
        name=_name(values.get("name", default_name)),
        algorithms=_algorithms(values["algorithms"], installed_only),
        layers=grid("layers", None),
        batch_sizes=grid("batch_sizes", CellSpec.batch_size),
        hidden=grid("hidden", CellSpec.hidden),
        cell=cell,
        timeout_s=_positive_number("timeout_s", values.get("timeout_s", DEFAULT_TIMEOUT_S)),
        jobs=None if values.get("jobs") is None else whole_number("jobs", values["jobs"], 1,
                                                                   MAX_JOBS),
        executor=_executor(values.get("executor", "local")),
        slurm=_slurm_table(values.get("slurm", {})),
        preset=_preset(values.get(PRESET_KEY)),
    )
    if sweep.size > max_cells:
        raise BadInput(f"the sweep has {sweep.size} cells, more than the limit of {max_cells} "
                       "(raise it with --max-cells)")
    return sweep


NOT_AXES = ("device", "data_dir", "options")  # one value per sweep


def _cell_value(key: str, given: Any) -> Any:
    """A sweep file's (or a flag's) value of a cell setting, through the setting's text rule;
    a list is an axis of the grid, each value checked."""
    hint = get_type_hints(CellSpec)[key]
    values = given if isinstance(given, list) else [given]
    if isinstance(given, list) and (key in NOT_AXES or not given):
        raise BadInput(f"sweep key {key}: takes one value, not a list" if given
                       else f"sweep key {key}: an empty list")
    converted = [value_of(key, value) for value in values]
    for value in converted:
        if not _accepts(hint, value):
            expected = getattr(hint, "__name__", str(hint))
            raise BadInput(f"sweep key {key} = {value!r}: expected {expected}")
    return list(dict.fromkeys(converted)) if isinstance(given, list) else converted[0]


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


RUNNER_FLAGS = {"timeout_s": "timeout"}  # runner keys whose flag is shorter


def flag_of_key(key: str) -> str:
    """The command-line flag (without "--") that sets a sweep file's key."""
    if key in CELL_KEYS:
        return flag_of(key)
    return RUNNER_FLAGS.get(key, key).replace("_", "-")


def _int_grid(key: str, value: Any, max_cells: int) -> tuple[int, ...]:
    """"2..47", "2..47:5", "2,4,8", 4 or [2, 4, 8] -> sorted unique positive ints."""
    if isinstance(value, list) and all(type(v) is int for v in value):
        value = ",".join(map(str, value))
    elif type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise BadInput(f"--{flag_of_key(key)}: expected a range like 2..47, 2..47:5 or 2,4,8")
    return tuple(parse_int_range(value, flag=flag_of_key(key), max_values=max_cells,
                                 limit_hint=" cells (raise it with --max-cells)",
                                 high=_GRID_BOUNDS[key]))


_GRID_BOUNDS = {"layers": MAX_LAYERS, "batch_sizes": MAX_BATCH_SIZE, "hidden": MAX_HIDDEN}


def _algorithms(value: Any, installed_only: bool = True) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise BadInput("--algorithms: expected names like bp,ff,rff")
    return tuple(parse_names(value, flag="algorithms",
                             known=tuple(ALGORITHMS) if installed_only else None))


def _positive_number(key: str, value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
            or not math.isfinite(value)):
        raise BadInput(f"--{flag_of_key(key)} must be a positive number of seconds, got {value!r}")
    return float(value)


def _preset(value: Any) -> str | None:
    if value is not None:
        one_of("preset", value, tuple(PRESETS))
    return value  # type: ignore[no-any-return]


def _executor(value: Any) -> str:
    one_of("executor", value, EXECUTORS)
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
    """What can be refused before anything runs, beyond the cells themselves: this
    machine's Slurm, and the cells' data (every cell shares the dataset)."""
    for spec in {spec.dataset: spec for spec in sweep.cells()}.values():
        check_data(spec)
    if sweep.executor == "slurm" and sweep.slurm.get("cluster", "slurm") == "slurm":
        if shutil.which("sbatch") is None:
            raise BadInput("--executor slurm: no sbatch on this host (is Slurm installed?)")
