"""The verdict: does each Forward-Forward variant need less memory than backprop, from what
depth, and at what cost in time and accuracy? Computed once from a loaded results frame
(`ffbench.results.load`); the report's first section, the answer figure and the sweep's
last lines all show this one computation.

- Backprops are the algorithms whose class says `baseline` (bp and its variants, plugins
  that say so); every other algorithm is an FF variant.
- Groups: source, optimizer, dtype, batch size, width. Depths are compared within a group.
- Peaks: `measured_peak_bytes` (CUDA allocated, else tracked; on meta the tracked bytes are
  the prediction), the median of repeated cells.
- Phases: `train`; `eval at equal rows` (FF cells whose replicated eval rows never exceed
  the eval batch, 0 < eval_chunk <= eval_batch_size) against backprop's eval; `eval as
  published` (FF cells with eval_chunk 0: every label of the whole eval batch at once, 10x
  its rows) against backprop's eval; `larger of train and fair eval` (FF: the larger of
  train and eval at equal rows; backprop: of train and eval). An FF variant's train peak
  comes from its equal-rows cells where a depth has them, else from its other cells (the
  same settings but for eval_chunk).
- Baselines: each backprop present, and the strongest backprop: at each depth and phase the
  lowest peak among the backprops present there.
- A comparison: the ratio at the deepest depth both reached, the depth from which the FF
  variant is below at every deeper depth both reached (None: never), and "about the same"
  where the peaks are under 1% or under 4 MiB apart (neither a saving nor a crossover).
- Time per step from measured (not meta) cells, and test accuracy against bp in percentage
  points, at the deepest depth both have; how the answer moves with the optimizer where a
  group was run with several.

Pure pandas; torch comes in only when the registry loads an algorithm's class (to ask it
whether it is a backprop, and for its display name).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from ffbench.algorithms.registry import algorithm_order, is_backprop
from ffbench.analysis.verdict_records import (
    EQUAL_ROWS,
    EVAL_EQUAL,
    EVAL_PUBLISHED,
    GROUP,
    KEYS,
    LARGER,
    OTHER_ROWS,
    PHASES,
    PUBLISHED_ROWS,
    SAME_BYTES,
    SAME_FRACTION,
    SETTING_DEFAULTS,
    STRONGEST,
    TRAIN,
    AccuracyComparison,
    Comparison,
    Group,
    OptimizerShift,
    TimeComparison,
    Verdict,
    _fields,
    headline,
)
from ffbench.results import as_read, measured_peak_bytes, rows_to_table
from ffbench.settings.cell import (
    DEFAULT_OPTIMIZER,
    EVAL_CHUNK_ALL,
    EVAL_CHUNK_EQUAL,
    HOST_DEVICE,
    PREDICTED_DEVICE,
)

# ---- the computation -------------------------------------------------------------------


def cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The successful cells with their settings' defaults filled in (rows written before a
    setting existed), `backprop` (bool), `eval_rows` (EQUAL_ROWS, PUBLISHED_ROWS or
    OTHER_ROWS) and each phase's measured peak as `train_peak` and `eval_peak` (bytes)."""
    ok = frame[frame["status"] == "ok"].dropna(
        subset=["n_layers", "algorithm", "batch_size", "hidden"])
    if "source" not in ok:
        ok = ok.assign(source="results")
    ok = ok.assign(**{name: ok[name].fillna(value) if name in ok else value
                      for name, value in SETTING_DEFAULTS.items()})
    eval_batch = ok["eval_batch_size"].fillna(ok["batch_size"]).astype(int)
    chunk = ok["eval_chunk"].astype(int)
    rows = np.where(chunk == 0, PUBLISHED_ROWS,
                    np.where(chunk <= eval_batch, EQUAL_ROWS, OTHER_ROWS))
    backprops = {name: is_backprop(name) for name in ok["algorithm"].unique()}
    return ok.assign(
        n_layers=ok["n_layers"].astype(int), batch_size=ok["batch_size"].astype(int),
        hidden=ok["hidden"].astype(int), eval_batch_size=eval_batch, eval_chunk=chunk,
        eval_rows=rows, backprop=ok["algorithm"].map(backprops).astype(bool),
        train_peak=measured_peak_bytes(ok, "train"), eval_peak=measured_peak_bytes(ok, "eval"),
    )


def _median(data: pd.DataFrame, column: str) -> pd.Series:
    """Median of `column` per KEYS, over the rows that have it."""
    return data.dropna(subset=[column]).groupby(KEYS)[column].median()


def _preferring_equal_rows(ff: pd.DataFrame, column: str) -> pd.Series:
    """An FF variant's train-side value (peak, step time, accuracy) per depth: from its
    equal-rows cells where the depth has them, else from its other cells."""
    return _median(ff[ff["eval_rows"] == EQUAL_ROWS], column).combine_first(_median(ff, column))


def _larger(a: pd.Series, b: pd.Series) -> pd.Series:
    return pd.concat([a, b], axis=1, join="inner").max(axis=1)


def phase_peaks(data: pd.DataFrame) -> dict[str, tuple[pd.Series, pd.Series]]:
    """Per phase: (FF variants' peaks, backprops' peaks), each a Series indexed by KEYS."""
    ff, bp = data[~data["backprop"]], data[data["backprop"]]
    ff_train = _preferring_equal_rows(ff, "train_peak")
    ff_equal = _median(ff[ff["eval_rows"] == EQUAL_ROWS], "eval_peak")
    bp_train, bp_eval = _median(bp, "train_peak"), _median(bp, "eval_peak")
    return {
        TRAIN: (ff_train, bp_train),
        EVAL_EQUAL: (ff_equal, bp_eval),
        EVAL_PUBLISHED: (_median(ff[ff["eval_rows"] == PUBLISHED_ROWS], "eval_peak"), bp_eval),
        LARGER: (_larger(ff_train, ff_equal), _larger(bp_train, bp_eval)),
    }


def _tidy(series: pd.Series, name: str) -> pd.DataFrame:
    return series.rename(name).reset_index()


def _baselines(backprops: pd.DataFrame) -> pd.DataFrame:
    """Each backprop's peaks as a baseline, and the strongest backprop's: at each depth the
    lowest of those present (ties: registry order). Columns GROUP, n_layers, baseline,
    backprop, baseline_bytes."""
    each = backprops.rename(columns={"algorithm": "backprop", "bytes": "baseline_bytes"})
    each = each.assign(baseline=each["backprop"])
    rank = {name: i for i, name in enumerate(algorithm_order(each["backprop"]))}
    lowest = (each.assign(rank=each["backprop"].map(rank))
              .sort_values(["baseline_bytes", "rank"], kind="stable")
              .drop_duplicates([*GROUP, "n_layers"]).drop(columns="rank")
              .assign(baseline=STRONGEST))
    return pd.concat([each, lowest], ignore_index=True)


def per_depth(peaks: dict[str, tuple[pd.Series, pd.Series]]) -> pd.DataFrame:
    """Every FF variant against every baseline, per phase and depth both reached: bytes,
    baseline_bytes, ratio, about_same, below (a saving that is not about the same)."""
    tables = []
    for phase, (ff, bp) in peaks.items():
        if ff.empty or bp.empty:
            continue
        joined = _tidy(ff, "bytes").merge(_baselines(_tidy(bp, "bytes")),
                                          on=[*GROUP, "n_layers"])
        tables.append(joined.assign(phase=phase))
    columns = [*GROUP, "algorithm", "baseline", "backprop", "phase", "n_layers", "bytes",
               "baseline_bytes", "ratio", "about_same", "below"]
    if not tables:
        return pd.DataFrame(columns=columns)
    table = pd.concat(tables, ignore_index=True)
    apart = (table["bytes"] - table["baseline_bytes"]).abs()
    same = (apart < SAME_FRACTION * table["baseline_bytes"]) | (apart < SAME_BYTES)
    table = table.assign(ratio=table["bytes"] / table["baseline_bytes"], about_same=same,
                         below=(table["bytes"] < table["baseline_bytes"]) & ~same)
    return table[columns].sort_values([*GROUP, "algorithm", "baseline", "phase", "n_layers"],
                                      kind="stable").reset_index(drop=True)


def below_from(points: pd.DataFrame) -> int | None:
    """The smallest depth from which every deeper depth of `points` (sorted by depth) is
    below; None when the deepest is not."""
    depth = None
    for n_layers, below in zip(points["n_layers"][::-1], points["below"][::-1], strict=True):
        if not below:
            break
        depth = int(n_layers)
    return depth


def _deepest(peaks: dict[str, tuple[pd.Series, pd.Series]]) -> dict[tuple[Any, ...], int]:
    """(phase, *GROUP, algorithm) -> the deepest depth it has in that phase; for the
    backprops also (phase, *GROUP, STRONGEST): the deepest any of them has."""
    deepest: dict[tuple[Any, ...], int] = {}
    for phase, (ff, bp) in peaks.items():
        for series, strongest in ((ff, False), (bp, True)):
            if series.empty:
                continue
            depths = series.reset_index()
            for key, depth in depths.groupby([*GROUP, "algorithm"])["n_layers"].max().items():
                deepest[(phase, *key)] = int(depth)
            if strongest:
                for key, depth in depths.groupby(GROUP)["n_layers"].max().items():
                    deepest[(phase, *key, STRONGEST)] = int(depth)
    return deepest


def comparisons(table: pd.DataFrame,
                peaks: dict[str, tuple[pd.Series, pd.Series]]) -> list[Comparison]:
    deepest = _deepest(peaks)
    found = []
    for (*group, algorithm, baseline, phase), points in table.groupby(
            [*GROUP, "algorithm", "baseline", "phase"], sort=False):
        last = points.iloc[-1]
        found.append(Comparison(
            **_fields(group), algorithm=algorithm, baseline=baseline, phase=phase,
            deepest=int(last["n_layers"]), ratio=float(last["ratio"]),
            bytes=float(last["bytes"]), baseline_bytes=float(last["baseline_bytes"]),
            backprop=str(last["backprop"]), below_from=below_from(points),
            about_same=bool(last["about_same"]), first_depth=int(points["n_layers"].iloc[0]),
            algorithm_deepest=deepest[(phase, *group, algorithm)],
            baseline_deepest=deepest[(phase, *group, baseline)],
        ))
    return found


def _measure(data: pd.DataFrame) -> str:
    """How a group's peaks were obtained, in words."""
    kinds = []
    for device, rows in data.groupby("device", sort=False, dropna=False):
        if device == PREDICTED_DEVICE:
            kinds.append("PREDICTED on meta (tracked bytes of fake tensors, nothing timed)")
        elif rows["train_peak_allocated_bytes"].notna().all():
            kinds.append(f"measured on {_joined(rows['gpu_name'], device)}, CUDA allocated")
        else:
            where = device if pd.notna(device) else "an unknown device"
            host = (" of the one memory a CPU has: what any algorithm keeps in host memory counts"
                    if device == HOST_DEVICE else "")
            kinds.append(f"tracked on {where} (live tensor bytes{host})")
    return " and ".join(kinds)


def _joined(values: pd.Series, fallback: Any) -> str:
    unique = [str(v) for v in dict.fromkeys(values.dropna())]
    return " / ".join(unique) if unique else str(fallback)


def _notes(group: pd.DataFrame, found: set[str], eval_batch: int) -> tuple[str, ...]:
    """What a group's results cannot say, and the setting that would let them."""
    if not group["backprop"].any():
        return ("no backprop in these results: nothing to compare with",)
    if group["backprop"].all():
        return ("no FF variant in these results",)
    hints = {
        EVAL_EQUAL: f"run with --eval-chunk {EVAL_CHUNK_EQUAL}: at most the eval batch's "
                    f"{eval_batch} rows",
        EVAL_PUBLISHED: f"run with --eval-chunk {EVAL_CHUNK_ALL}",
        LARGER: "it needs eval at equal rows",
        TRAIN: "no depth that an FF variant and a backprop both reached",
    }
    return tuple(f"{phase}: not in these results ({hints[phase]})"
                 for phase in PHASES if phase not in found)


def groups(data: pd.DataFrame, found: list[Comparison]) -> list[Group]:
    made = []
    for key, rows in data.groupby(GROUP, sort=False):
        phases = {c.phase for c in found if c.key == key}
        eval_batch = int(rows["eval_batch_size"].max())
        names = algorithm_order(rows["algorithm"])
        backprop = set(rows.loc[rows["backprop"], "algorithm"])
        made.append(Group(
            str(key[0]), str(key[1]), str(key[2]), int(key[3]), int(key[4]),
            measure=_measure(rows), eval_batch_size=eval_batch,
            backprops=tuple(n for n in names if n in backprop),
            variants=tuple(n for n in names if n not in backprop),
            notes=_notes(rows, phases, eval_batch),
        ))
    return made


def _pairs(ff: pd.Series, bp: pd.Series) -> Iterator[tuple[tuple[Any, ...], str, str, int]]:
    """(group key, FF variant, backprop, deepest depth both have) for each pair present."""
    ff_depths, bp_depths = ff.reset_index(), bp.reset_index()
    for (*group, algorithm), mine in ff_depths.groupby([*GROUP, "algorithm"], sort=False):
        theirs = bp_depths.merge(pd.DataFrame([group], columns=GROUP), on=GROUP)
        for backprop, points in theirs.groupby("algorithm", sort=False):
            common = set(mine["n_layers"]) & set(points["n_layers"])
            if common:
                yield tuple(group), str(algorithm), str(backprop), max(common)


def _strongest_by_memory(found: list[Comparison], v_groups: list[Group]
                         ) -> dict[tuple[Any, ...], str]:
    """(group key, FF variant) -> the strongest backprop in the headline phase, deepest."""
    heads = {}
    for group in v_groups:
        phase = headline(c.phase for c in found if c.key == group.key)
        for c in found:
            if c.key == group.key and c.baseline == STRONGEST and c.phase == phase:
                heads[(*group.key, c.algorithm)] = c.backprop
    return heads


def times(data: pd.DataFrame, strongest: dict[tuple[Any, ...], str]) -> list[TimeComparison]:
    timed = data[(data["device"] != PREDICTED_DEVICE) & data["step_time_median_s"].notna()]
    timed = timed.assign(measured_on=timed["gpu_name"].fillna(timed["device"]).fillna("?"))
    ff = _preferring_equal_rows(timed[~timed["backprop"]], "step_time_median_s")
    bp = _median(timed[timed["backprop"]], "step_time_median_s")
    where = timed.groupby(GROUP)["measured_on"].agg(lambda v: " / ".join(dict.fromkeys(v)))
    found = []
    for group, algorithm, backprop, depth in _pairs(ff, bp):
        named = [backprop] + ([STRONGEST] if strongest.get((*group, algorithm)) == backprop
                              else [])
        for baseline in named:
            found.append(TimeComparison(
                **_fields(group), algorithm=algorithm, baseline=baseline, backprop=backprop,
                depth=depth,
                seconds=float(ff[(*group, algorithm, depth)]),
                baseline_seconds=float(bp[(*group, backprop, depth)]),
                measured_on=str(where[group])))
    return found


def _cells_at(data: pd.DataFrame, group: tuple[Any, ...], algorithm: str,
              depth: int) -> pd.DataFrame:
    rows = data[(data["algorithm"] == algorithm) & (data["n_layers"] == depth)]
    return rows.merge(pd.DataFrame([group], columns=GROUP), on=GROUP)


def accuracies(data: pd.DataFrame) -> list[AccuracyComparison]:
    """Each FF variant's test accuracy against bp's, at the deepest depth both have: the
    median over the cells run (seeds), with how many and their lowest and highest."""
    scored = data[data["test_accuracy"].notna()]
    ff = _preferring_equal_rows(scored[~scored["backprop"]], "test_accuracy")
    bp = _median(scored[scored["algorithm"] == "bp"], "test_accuracy")
    found = []
    for group, algorithm, _, depth in _pairs(ff, bp):
        rows, baseline = (_cells_at(scored, group, name, depth) for name in (algorithm, "bp"))
        if not rows["backprop"].any() and (rows["eval_rows"] == EQUAL_ROWS).any():
            rows = rows[rows["eval_rows"] == EQUAL_ROWS]
        found.append(AccuracyComparison(
            **_fields(group), algorithm=algorithm, depth=depth,
            accuracy=float(ff[(*group, algorithm, depth)]),
            baseline_accuracy=float(bp[(*group, "bp", depth)]),
            dataset=_joined(rows["dataset"], "unknown data"),
            epochs=_joined(rows["epochs"].dropna().astype(int), "?"),
            runs=len(rows), low=float(rows["test_accuracy"].min()),
            high=float(rows["test_accuracy"].max()), baseline_runs=len(baseline),
            baseline_low=float(baseline["test_accuracy"].min()),
            baseline_high=float(baseline["test_accuracy"].max())))
    return found


def shifts(found: list[Comparison]) -> list[OptimizerShift]:
    """Against the strongest backprop, in the headline phase both optimizers have."""
    strongest = [c for c in found if c.baseline == STRONGEST]
    by_size: dict[tuple[Any, ...], dict[str, dict[str, Comparison]]] = {}
    for c in strongest:
        size = (c.source, c.dtype, c.batch_size, c.hidden, c.algorithm)
        by_size.setdefault(size, {}).setdefault(c.optimizer, {})[c.phase] = c
    made = []
    for (source, dtype, batch, hidden, algorithm), per_optimizer in by_size.items():
        if len(per_optimizer) < 2:
            continue
        names = sorted(per_optimizer)
        reference = DEFAULT_OPTIMIZER if DEFAULT_OPTIMIZER in names else names[0]
        for other in (n for n in names if n != reference):
            ref, oth = per_optimizer[reference], per_optimizer[other]
            phase = headline(set(ref) & set(oth))
            if phase not in ref or phase not in oth:
                continue
            made.append(OptimizerShift(
                source, dtype, batch, hidden, algorithm, phase, reference, other,
                ref[phase].ratio, oth[phase].ratio, ref[phase].backprop, oth[phase].backprop,
                ref[phase].deepest, oth[phase].deepest))
    return made


def verdict(frame: pd.DataFrame) -> Verdict:
    """The verdict of a results frame (as `ffbench.results.load` returns it; a frame split
    into configurations, `sweep.result_sets.by_configuration`, is compared per folder: the
    verdict separates optimizers and eval forms itself)."""
    data = cells(as_read(frame))
    peaks = phase_peaks(data)
    table = per_depth(peaks)
    found = comparisons(table, peaks)
    made = groups(data, found)
    return Verdict(made, found, table, times(data, _strongest_by_memory(found, made)),
                   accuracies(data), shifts(found))


def from_rows(rows: Iterable[dict[str, Any]], source: str) -> Verdict:
    """The verdict of result rows (a sweep's, as it ends), named `source`."""
    return verdict(rows_to_table(rows).to_pandas().assign(source=source))
