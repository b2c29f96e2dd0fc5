"""A results folder belongs to one sweep definition; finding results folders below a path.

The definition (the grid and the settings every cell shares) is stored as OUT/sweep.json
at the first run. A later run into the same folder must share its fixed settings (every
cell setting, the widths and the algorithms); its depths and batch sizes may differ, and
the stored grid grows to their union, so a grid that adds depths or batch sizes extends
the sweep. Anything else is refused before a file is written. No torch here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffbench.algorithms.resolve import cell_id
from ffbench.errors import BadInput
from ffbench.results import CELLS_DIR, PARQUET_NAME, _atomic_write
from ffbench.settings.cell import CellSpec
from ffbench.sweep_spec import SweepSpec

if TYPE_CHECKING:
    import pandas as pd

DEFINITION_NAME = "sweep.json"
MISSING = "missing"  # status of a grid cell with no row yet (added for reports, never stored)
NEW_FOLDER_FLAG = "--no-resume"
_PER_CELL = ("algorithm", "n_layers", "hidden", "batch_size", "eval_batch_size")


def fixed_settings(spec: SweepSpec) -> dict[str, Any]:
    """What every cell of the sweep shares, resolved (defaults filled in), plus the
    algorithms and widths: the part of a definition a folder keeps for good."""
    probe = CellSpec(algorithm=spec.algorithms[0], n_layers=1, **spec.cell)
    shared = {k: v for k, v in dataclasses.asdict(probe).items() if k not in _PER_CELL}
    shared["eval_batch_size"] = spec.cell.get("eval_batch_size")
    return {"algorithms": list(spec.algorithms), "hidden": list(spec.hidden), **shared}


def definition(spec: SweepSpec) -> dict[str, Any]:
    return {"name": spec.name, "algorithms": list(spec.algorithms), "layers": list(spec.layers),
            "batch_sizes": list(spec.batch_sizes), "hidden": list(spec.hidden),
            "cell": spec.cell}


def stored_sweep(folder: Path) -> SweepSpec | None:
    """The sweep a folder belongs to, or None for a folder without a definition."""
    path = folder / DEFINITION_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        return SweepSpec(name=values["name"], algorithms=tuple(values["algorithms"]),
                         layers=tuple(values["layers"]),
                         batch_sizes=tuple(values["batch_sizes"]),
                         hidden=tuple(values["hidden"]), cell=dict(values["cell"]))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BadInput(f"{path}: unreadable sweep definition ({exc})") from None


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
    kept = stored_sweep(folder)
    if kept is None:
        return
    difference = _difference(fixed_settings(kept), fixed_settings(spec))
    if difference:
        raise BadInput(f"{folder} holds another sweep ({difference}); add {NEW_FOLDER_FLAG} "
                       "to start a new folder beside it, or give --out DIR")


def record_owner(spec: SweepSpec, folder: Path) -> SweepSpec:
    """Store the definition, its depths and batch sizes grown by this run's; returns it."""
    kept = stored_sweep(folder)
    grown = spec if kept is None else dataclasses.replace(
        kept, layers=tuple(sorted({*kept.layers, *spec.layers})),
        batch_sizes=tuple(sorted({*kept.batch_sizes, *spec.batch_sizes})))
    text = json.dumps(definition(grown), indent=1) + "\n"
    _atomic_write(folder / DEFINITION_NAME, text.encode())
    return grown


# ---- finding results -------------------------------------------------------------------


def holds_results(folder: Path) -> bool:
    return (folder / PARQUET_NAME).is_file() or any((folder / CELLS_DIR).glob("*.json"))


def results_below(path: Path) -> list[Path]:
    """`path` itself when it is a file or holds results (or nothing below it does), else
    every folder below it that holds results (sorted; a results folder's subfolders are not
    searched)."""
    if not path.is_dir() or holds_results(path):
        return [path]
    found = [f for child in sorted(p for p in path.iterdir() if p.is_dir())
             for f in results_below(child) if f.is_dir() and holds_results(f)]
    return found or [path]  # nothing below: loading `path` says what is wrong with it


def with_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` plus a row of status `missing` for each cell of its folders' stored grids
    that has no row yet (a sweep stopped halfway), so reports and figures can show them."""
    import pandas as pd

    extra = []
    for source in dict.fromkeys(frame["source"]):
        kept = stored_sweep(Path(source)) if Path(source).is_dir() else None
        if kept is None:
            continue
        present = set(frame.loc[frame["source"] == source, "cell_id"])
        extra += [{"source": source, "cell_id": cell_id(c), "algorithm": c.algorithm,
                   "n_layers": c.n_layers, "hidden": c.hidden, "batch_size": c.batch_size,
                   "device": c.device, "status": MISSING, "sweep_id": kept.name}
                  for c in kept.cells() if cell_id(c) not in present]
    if not extra:
        return frame
    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
