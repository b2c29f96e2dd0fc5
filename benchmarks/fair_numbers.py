"""The fair sweep's answer in numbers: each algorithm's peak (train, eval, the larger) at the
deepest depth, its ratio to bp's and bp-lean's, and the crossover depth against each (the
shallowest depth from which its peak stays below the baseline's through the deepest).

Run: `PYTHONPATH=. python benchmarks/fair_numbers.py RESULTS` on the results of
`ffbench sweep fair --device meta --out RESULTS` (or of the same sweep on a GPU).
Uses the tracked peaks (on meta they are the predictions).
"""

from __future__ import annotations

import sys

import pandas as pd

from ffbench.results import load

BASELINES = ("bp", "bp-lean")
MIB = 2**20


def peaks(frame: pd.DataFrame) -> pd.DataFrame:
    """(algorithm, n_layers) -> train, eval, max peak bytes, for ok cells."""
    ok = frame[frame["status"] == "ok"].copy()
    ok["train"] = ok["train_peak_tracked_bytes"]
    ok["eval"] = ok["eval_peak_tracked_bytes"]
    ok["max"] = ok[["train", "eval"]].max(axis=1)
    return ok.set_index(["algorithm", "n_layers"])[["train", "eval", "max"]].sort_index()


def crossover(ours: pd.Series, baseline: pd.Series) -> str:
    """The shallowest depth from which `ours` < `baseline` at every deeper depth."""
    below = (ours < baseline).reindex(baseline.index).fillna(False).astype(bool)
    depths = list(below.index)
    for i, depth in enumerate(depths):
        if below.iloc[i:].all():
            return "all depths" if i == 0 else str(depth)
    return "never"


def main(path: str) -> None:
    table = peaks(load([path]))
    algorithms = table.index.get_level_values(0).unique()
    deepest = int(table.index.get_level_values(1).max())
    print(f"peaks at {deepest} layers (MiB) and ratio to each baseline; crossover depths")
    for phase in ("train", "eval", "max"):
        print(f"\n{phase}:")
        for algorithm in algorithms:
            ours = table.loc[algorithm, phase]
            cells = [f"{algorithm:13} {ours.loc[deepest] / MIB:9.1f}"]
            for baseline in BASELINES:
                base = table.loc[baseline, phase]
                ratio = ours.loc[deepest] / base.loc[deepest]
                cells.append(f"/{baseline} {ratio:5.3f} (cross {crossover(ours, base)})")
            print("  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1])
