"""What `report` and `plot` read: the results folders found below a path (no link followed),
each set's rows as one frame with a row of status `missing` for each cell of its stored
grids not run yet, and a folder mixing configurations split into one source per
configuration."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffbench.algorithms.resolve import cell_id
from ffbench.results import CELLS_DIR, FOLDER, PARQUET_NAME
from ffbench.sweep.definition import stored_definition
from ffbench.sweep.spec import DEFAULT_MAX_CELLS

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
MISSING = "missing"  # status of a grid cell with no row yet (added for reports, never stored)


def holds_results(folder: Path) -> bool:
    return (folder / PARQUET_NAME).is_file() or any((folder / CELLS_DIR).glob("*.json"))


def results_below(path: Path) -> list[Path]:
    """`path` itself when it is a file or holds results (or nothing below it does), else
    every folder below it that holds results (sorted; a results folder's subfolders are not
    searched). Links to folders below `path` are not followed: a link to a parent would
    make the search endless, and a folder reached twice would be read twice."""
    if not path.is_dir() or holds_results(path):
        return [path]
    found = _below(path, {path.resolve()})
    return found or [path]  # nothing below: loading `path` says what is wrong with it


def _below(folder: Path, seen: set[Path]) -> list[Path]:
    found = []
    for child in sorted(folder.iterdir()):
        if child.is_symlink() or not child.is_dir() or child.resolve() in seen:
            continue
        seen.add(child.resolve())
        found += [child] if holds_results(child) else _below(child, seen)
    return found


def result_sets(paths: list[Path], *, together: bool) -> tuple[list[Path], list[list[Path]]]:
    """(the results folders found, the sets to draw): the inputs together, or, for a parent
    of results folders, each folder found below it on its own (`together`: all as one)."""
    found = [folder for path in paths for folder in results_below(path)]
    return found, [found] if together or found == paths else [[folder] for folder in found]


def load_set(paths: list[Path]) -> pd.DataFrame:
    """A set's rows as one frame, with a row of status `missing` for each cell of its
    folders' stored grids that has none yet (ResultsError, bad input, when unreadable); an
    input whose cells differ in a setting beyond the grid (optimizer, learning rate,
    options, ...) is split into one source per configuration, so that nothing is fitted
    across them."""
    from ffbench.results import load

    return by_configuration(with_missing(load(paths)))


def default_out(results: list[Path], name: str) -> Path:
    """`name` inside the first results folder (beside it, for a file)."""
    first = results[0]
    return (first if first.is_dir() else first.parent) / name


def with_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` plus a row of status `missing` for each cell of its folders' stored grids
    that has no row yet (a sweep stopped halfway), so reports and figures can show them.
    A grid beyond DEFAULT_MAX_CELLS cells is not listed (one warning), nor are the cells
    of an algorithm that is not installed here (their ids need its class)."""
    import pandas as pd

    from ffbench.algorithms.resolve import identity_columns
    from ffbench.results import COLUMNS

    extra = []
    for source in dict.fromkeys(frame["source"]):
        kept = stored_definition(Path(source)) if Path(source).is_dir() else None
        if kept is None:
            continue
        if kept.size > DEFAULT_MAX_CELLS:
            log.warning("%s: its stored grids hold %d cells, more than %d: the cells not run "
                        "yet are not listed", source, kept.size, DEFAULT_MAX_CELLS)
            continue
        present = set(frame.loc[frame["source"] == source, "cell_id"])
        usable = [name for name in kept.spec.algorithms if _installed(name)]
        spec = dataclasses.replace(kept, spec=dataclasses.replace(kept.spec,
                                                                  algorithms=tuple(usable)))
        extra += [{**identity_columns(c, kept.spec.name), "source": source, "status": MISSING}
                  for c in (spec.cells() if usable else []) if cell_id(c) not in present]
    if not extra:
        return frame
    missing = pd.DataFrame(extra)
    missing["options"] = missing["options"].map(lambda o: json.dumps(o, sort_keys=True))
    return pd.concat([frame, missing[[c for c in missing if c in COLUMNS or c == "source"]]],
                     ignore_index=True)


def _installed(algorithm: str) -> bool:
    from ffbench.algorithms import registry

    failure = registry.load_failure(algorithm)
    if failure is not None:
        log.warning("the cells of %r not run yet are not listed: %s", algorithm, failure)
    return failure is None


# settings a sweep's cells share, or take in turn as an axis: cells of one algorithm that
# differ in one of them are another configuration (the grid's own columns, depth, batch and
# width, aside; seeds are repeats of one configuration, summarized as a median and a range)
CONFIGURATION = ("dataset", "device", "dtype", "goodness", "threshold", "lr", "optimizer",
                 "warmup_steps", "steps", "epochs", "threads", "eval_chunk", "compile",
                 "options", "target_gpu")


def by_configuration(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each source that mixes configurations (an algorithm's cells differing
    in a CONFIGURATION setting: a sweep with an optimizer axis, rows merged by hand) split
    into one source per configuration, named after what differs for the row's algorithm:
    "results/fair (optimizer=sgd)", so that nothing is fitted or drawn across them. The
    source as read stays in FOLDER (the verdict compares across optimizers and eval forms
    itself). Missing cells count as the configuration they belong to."""
    frame = frame.assign(**{FOLDER: frame["source"]})
    labels = []
    for source, rows in frame.groupby("source", sort=False):
        for _, mine in rows.groupby("algorithm", sort=False, dropna=False):
            varying = [column for column in CONFIGURATION
                       if column in mine and mine[column].nunique(dropna=False) > 1]
            if varying:
                labels.append(f"{source} (" + mine[varying].astype(object).apply(
                    lambda row, names=varying: ", ".join(
                        f"{n}={_label(row[n])}" for n in names), axis=1) + ")")
    if not labels:
        return frame
    import pandas as pd

    split = pd.concat(labels)
    return frame.assign(source=split.reindex(frame.index).fillna(frame["source"]))


def _label(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:g}"
    return "-" if value is None else str(value)
