"""A results folder's definition, OUT/sweep.json: the settings every cell of the sweep shares
and the grids run into the folder (its cells are the union of its grids, never their cross
product); read back checked as a sweep file is, at most MAX_CELLS cells."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ffbench.algorithms.resolve import cell_id
from ffbench.errors import BadInput
from ffbench.results import ResultsError, atomic_write, read_regular
from ffbench.settings.cell import SETTINGS, CellSpec
from ffbench.settings.paths import file_kind
from ffbench.sweep.spec import CELL_KEYS, MAX_CELLS, PRESET_KEY, SweepSpec, parse_definition

MAX_DEFINITION_BYTES = 1 << 20  # a definition is a few KB; a bigger one was not written here
DEFINITION_NAME = "sweep.json"
NEW_FOLDER_FLAG = "--no-resume"
# what the grid sets per cell (and the eval batch, which follows the batch size by default)
_PER_CELL = ("algorithm", *(name for name, setting in SETTINGS.items() if setting.grid),
             "eval_batch_size")


def fixed_settings(spec: SweepSpec) -> dict[str, Any]:
    """What every cell of the sweep shares, resolved (defaults filled in), plus the
    algorithms, widths and other axes: the part of a definition a folder keeps for good."""
    probe = CellSpec(algorithm=spec.algorithms[0], n_layers=1, **spec.shared)
    shared = {k: v for k, v in dataclasses.asdict(probe).items() if k not in _PER_CELL}
    shared["eval_batch_size"] = spec.cell.get("eval_batch_size")
    return {"algorithms": list(spec.algorithms), "hidden": list(spec.hidden), **shared,
            **spec.axes, "preset": spec.preset}


Grid = tuple[tuple[int, ...], tuple[int, ...]]  # (depths, batch sizes) run together


@dataclasses.dataclass(frozen=True)
class Definition:
    """What a folder keeps of its sweep: the settings its cells share (`spec`, at its
    first grid) and every grid run into it. Its cells are the union of the grids' cells:
    a run extending the depths at other batch sizes adds its own grid, never the cross
    product of the two."""

    spec: SweepSpec
    grids: tuple[Grid, ...]

    def sweeps(self) -> list[SweepSpec]:
        return [dataclasses.replace(self.spec, layers=layers, batch_sizes=batch_sizes)
                for layers, batch_sizes in self.grids]

    @property
    def size(self) -> int:
        """Cells in all the grids, counted without building them (an upper bound)."""
        return sum(sweep.size for sweep in self.sweeps())

    def cells(self) -> list[CellSpec]:
        """Every cell of every grid, once."""
        return list({cell_id(spec): spec for sweep in self.sweeps()
                     for spec in sweep.cells()}.values())

    def grown(self, spec: SweepSpec) -> Definition:
        """This definition with `spec`'s grid added: merged into a grid of the same depths
        (or the same batch sizes), else kept as a grid of its own."""
        grids = list(self.grids)
        for index, (layers, batch_sizes) in enumerate(grids):
            if layers == spec.layers or batch_sizes == spec.batch_sizes:
                grids[index] = (_union(layers, spec.layers), _union(batch_sizes,
                                                                    spec.batch_sizes))
                break
        else:
            grids.append((spec.layers, spec.batch_sizes))
        return Definition(self.spec, tuple(dict.fromkeys(grids)))


def _union(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted({*first, *second}))


def definition(stored: Definition) -> dict[str, Any]:
    spec = stored.spec
    return {"name": spec.name, "algorithms": list(spec.algorithms), "hidden": list(spec.hidden),
            "cell": spec.cell, **({PRESET_KEY: spec.preset} if spec.preset else {}),
            "grids": [{"layers": list(layers), "batch_sizes": list(batch_sizes)}
                      for layers, batch_sizes in stored.grids]}


DEFINITION_KEYS = ("name", "algorithms", "hidden", "cell", "grids", PRESET_KEY)
LEGACY_GRID_KEYS = ("layers", "batch_sizes")  # one grid, as folders stored it before grids


def stored_definition(folder: Path) -> Definition | None:
    """The sweep a folder belongs to, or None for a folder without a definition. A
    definition that is not one ffbench wrote (unreadable, a FIFO, huge, unknown keys,
    values of the wrong type, a grid beyond the cell limit) is BadInput, one line."""
    path = folder / DEFINITION_NAME
    if file_kind(path, follow=False) is None and not path.exists():
        return None
    try:
        values = json.loads(read_regular(path, MAX_DEFINITION_BYTES, "sweep definition"))
        return _definition_of(values)
    except (ResultsError, ValueError, RecursionError, TypeError) as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise BadInput(f"{path}: not a sweep definition ffbench wrote ({reason})") from None


def _definition_of(values: Any) -> Definition:
    if not isinstance(values, dict):
        raise BadInput(f"a JSON {type(values).__name__}, not an object")
    unknown = sorted(set(values) - {*DEFINITION_KEYS, *LEGACY_GRID_KEYS})
    if unknown:
        raise BadInput(f"unknown key {unknown[0]!r:.40}")
    grids = values.get("grids", [{key: values.get(key) for key in LEGACY_GRID_KEYS}])
    cell = values.get("cell")
    if not isinstance(cell, dict) or not set(cell) <= set(CELL_KEYS):
        raise BadInput("its cell settings are not a table of known settings")
    if not isinstance(grids, list) or not grids:
        raise BadInput("grids: expected a list of grids")
    sweeps = []
    for grid in grids:
        if not isinstance(grid, dict) or set(grid) != set(LEGACY_GRID_KEYS):
            raise BadInput("a grid is an object of layers and batch_sizes")
        sweeps.append(parse_definition({**cell, **grid, **{
            key: values.get(key) for key in ("name", "algorithms", "hidden", PRESET_KEY)}}))
    total = sum(sweep.size for sweep in sweeps)
    if total > MAX_CELLS:
        raise BadInput(f"{total} cells, more than any sweep may have ({MAX_CELLS})")
    return Definition(sweeps[0], tuple((sweep.layers, sweep.batch_sizes) for sweep in sweeps))


def _difference(kept: dict[str, Any], given: dict[str, Any]) -> str | None:
    changed = [key for key in kept if kept[key] != given.get(key)]
    if not changed:
        return None
    first = changed[0]
    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
    return f"{first} {_show(kept[first])} there, {_show(given.get(first))} here{more}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


def check_owner(spec: SweepSpec, folder: Path) -> None:
    """Refuse (BadInput, one line) a sweep whose fixed settings differ from the folder's."""
    kept = stored_definition(folder)
    if kept is None:
        return
    difference = _difference(fixed_settings(kept.spec), fixed_settings(spec))
    if difference:
        raise BadInput(f"{folder} holds another sweep ({difference}); add {NEW_FOLDER_FLAG} "
                       "to start a new folder beside it, or give --out DIR")


def record_owner(spec: SweepSpec, folder: Path) -> Definition:
    """Store the definition, with this run's grid added to the folder's; returns it."""
    kept = stored_definition(folder)
    grown = (Definition(spec, ((spec.layers, spec.batch_sizes),)) if kept is None
             else kept.grown(spec))
    text = json.dumps(definition(grown), indent=1) + "\n"
    atomic_write(folder / DEFINITION_NAME, text.encode())
    return grown
