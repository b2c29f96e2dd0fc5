"""Each algorithm's peak against a backprop baseline's at the same depth, batch and width:
the ratio the figure draws, and the crossover depth and saving the report states.

Pure pandas over a loaded results frame; peaks are the measured ones (CUDA allocated,
else tracked; on meta, tracked is the prediction). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ffbench.results import measured_peak_bytes
from ffbench.units import PHASES

BASELINES = ("bp", "bp-lean")  # backprop and its memory-lean form: what FF is measured against
LARGER = "larger"  # the phase column holding the larger of the train and eval peaks
RATIO_PHASES = (*PHASES, LARGER)
PHASE_TITLES = {"train": "train", "eval": "eval", LARGER: "larger of train and eval"}
KEYS = ["source", "batch_size", "hidden", "n_layers"]


def peaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Per source, algorithm, batch, width and depth: the median successful peak of each
    phase and the larger of the two (bytes)."""
    ok = frame[frame["status"] == "ok"].dropna(subset=["n_layers"])
    if "source" not in ok:
        ok = ok.assign(source="results")
    values = ok.assign(**{phase: measured_peak_bytes(ok, phase) for phase in PHASES})
    values[LARGER] = values[list(PHASES)].max(axis=1)
    return (values.groupby(["algorithm", *KEYS])[list(RATIO_PHASES)].median().reset_index()
            .dropna(subset=list(RATIO_PHASES), how="all"))


def baselines_present(frame: pd.DataFrame) -> list[str]:
    present = set(frame.loc[frame["status"] == "ok", "algorithm"])
    return [name for name in BASELINES if name in present]


def against(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every other algorithm's peaks divided by `baseline`'s at the same source, batch,
    width and depth: columns algorithm, KEYS, and per phase `<phase>` (the ratio),
    `<phase>_bytes` (the algorithm's peak) and `<phase>_baseline_bytes`."""
    table = peaks(frame)
    base = table[table["algorithm"] == baseline].drop(columns="algorithm")
    others = table[table["algorithm"] != baseline]
    joined = others.merge(base, on=KEYS, suffixes=("_bytes", "_baseline_bytes"))
    for phase in RATIO_PHASES:
        joined[phase] = joined[f"{phase}_bytes"] / joined[f"{phase}_baseline_bytes"]
    return joined.sort_values(["algorithm", *KEYS], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Crossover:
    """One algorithm against one baseline in one phase, over the depths both reached."""

    algorithm: str
    baseline: str
    phase: str
    source: str
    batch_size: int
    hidden: int
    depth: int | None  # the smallest depth from which it needs less memory at every depth
    deepest: int
    saving_bytes: float  # baseline's peak minus the algorithm's, at the deepest depth
    saving_fraction: float  # of the baseline's peak


def crossovers(frame: pd.DataFrame) -> list[Crossover]:
    """For each algorithm that is not a baseline, against each baseline present, per phase."""
    found = []
    for baseline in baselines_present(frame):
        ratios = against(frame, baseline)
        ratios = ratios[~ratios["algorithm"].isin(BASELINES)]
        groups = ratios.groupby(["algorithm", "source", "batch_size", "hidden"], sort=False)
        for (algorithm, source, batch_size, hidden), line in groups:
            for phase in RATIO_PHASES:
                points = line.dropna(subset=[phase]).sort_values("n_layers")
                if points.empty:
                    continue
                found.append(_crossover(points, phase, str(algorithm), baseline,
                                        str(source), int(batch_size), int(hidden)))
    return found


def _crossover(points: pd.DataFrame, phase: str, algorithm: str, baseline: str, source: str,
               batch_size: int, hidden: int) -> Crossover:
    below = (points[phase] < 1).to_numpy()
    depths = points["n_layers"].astype(int).to_numpy()
    depth = None
    for i in range(len(below) - 1, -1, -1):  # the run of depths below 1 that reaches the end
        if not below[i]:
            break
        depth = int(depths[i])
    last = points.iloc[-1]
    saving = float(last[f"{phase}_baseline_bytes"] - last[f"{phase}_bytes"])
    return Crossover(algorithm, baseline, phase, source, batch_size, hidden, depth,
                     int(depths[-1]), saving, saving / float(last[f"{phase}_baseline_bytes"]))
