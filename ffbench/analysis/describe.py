"""How a results frame is described to a reader: the caption (device, torch version, dates),
whether its peaks are predictions, and the CPU stand-in's name ("CPU stand-in: hidden 256,
batch 128") wherever such results appear."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ffbench.results import as_read
from ffbench.settings.cell import CPU_STAND_IN_SUFFIX, PREDICTED_DEVICE, stand_in

if TYPE_CHECKING:  # the frame's own methods are all it uses: pandas is not imported here
    import pandas as pd


def stand_in_label(frame: pd.DataFrame) -> str | None:
    """The CPU stand-in's name when `frame`'s cells ran as one (their sweep is named so)."""
    if "sweep_id" not in frame:
        return None
    ids = frame["sweep_id"].dropna().astype(str)
    if ids.empty or not ids.str.endswith(CPU_STAND_IN_SUFFIX).all():
        return None
    return stand_in(sorted(set(frame["hidden"].dropna().astype(int))),
                    sorted(set(frame["batch_size"].dropna().astype(int))))


def predicted_only(frame: pd.DataFrame) -> bool:
    """Whether every successful cell ran on meta: the peaks are predictions, not measured."""
    devices = frame.loc[frame["status"] == "ok", "device"].dropna()
    return not devices.empty and bool((devices == PREDICTED_DEVICE).all())


def _joined(values: pd.Series) -> str:
    unique = [str(v) for v in dict.fromkeys(values.dropna())]
    return " / ".join(unique) if unique else "unknown"


def _one_caption(frame: pd.DataFrame) -> str:
    device = frame["gpu_name"].where(frame["gpu_name"].notna(), frame["cpu_model"])
    dates = frame["started_at"].dropna().str[:10]
    when = "unknown date" if dates.empty else " to ".join(dict.fromkeys([dates.min(), dates.max()]))
    described = f"{_joined(device)} · torch {_joined(frame['torch_version'])} · {when}"
    label = stand_in_label(frame)
    return f"{label} · {described}" if label else described


def caption(frame: pd.DataFrame) -> str:
    """'device · torch version · date' of the cells (several values joined by ' / '); with
    several inputs, one such part per input (per folder read, not per configuration),
    named."""
    frame = as_read(frame)
    if "source" not in frame or frame["source"].nunique() < 2:
        return _one_caption(frame)
    return "  |  ".join(f"{source}: {_one_caption(cells)}"
                        for source, cells in frame.groupby("source", sort=False))
