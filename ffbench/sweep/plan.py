"""Which sweeps `ffbench sweep` runs for what was typed, and where their results go.

- a sweep file (or packaged name): that sweep, with the flags over its keys;
- nothing at all (runner flags aside): the embedded default (`quick`, under a minute);
- flags but no file: the published comparison's grid (`published`) with the flags over it,
  measured on CUDA where the host has a GPU; without one (and no --device given),
  predicted on `meta` (no compute, labelled predicted) plus a measured CPU stand-in at a size
  a CPU affords (the `quick` width, batch and steps over a few of the requested depths).
  A grid the flags change is named for what it is, never "published".

A CUDA sweep on a machine without CUDA is refused with the meta command to run instead.
Whether CUDA is present is asked in one place, `cuda_present`. No torch here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffbench.errors import BadInput
from ffbench.runner import devices
from ffbench.settings.cell import CPU_STAND_IN_SUFFIX, PREDICTED_DEVICE, option_text, stand_in
from ffbench.settings.checks import whole_number
from ffbench.sweep.spec import (
    DEFAULT_MAX_CELLS,
    DEFAULT_SWEEP,
    MAX_CELLS,
    SweepSpec,
    flag_of_key,
    load_sweep,
)
from ffbench.text import shell_command

RESULTS_ROOT = Path("results")
PUBLISHED_SWEEP = "published"
CPU_SWEEP = DEFAULT_SWEEP  # the CPU stand-in takes the default's width, batch and steps
PREDICTED_SUFFIX = "-predicted"
PREDICTED_PART, CPU_STAND_IN_PART = "predicted", "cpu-stand-in"  # the parts of --out DIR
CPU_MAX_DEPTHS = 6  # depths the CPU stand-in measures, spread over the requested range
RUNNER_KEYS = ("timeout_s", "jobs", "executor")  # flags that leave the choice of grid alone
NAMING_KEYS = (*RUNNER_KEYS, "device")  # flags that do not change what a grid is called
NEW_FOLDER_FLAG_TEXT = "--no-resume starts a new folder"
# what the CPU stand-in keeps from its own sweep file whatever the flags say
STAND_IN_KEEPS = ("hidden", "batch_sizes", "device", "steps", "warmup_steps", "threads",
                  "eval_chunk")


def cuda_present() -> bool:
    """Whether this host has a CUDA GPU (the one place the sweep command asks)."""
    return bool(devices.gpu_ids())


def is_predicted(device: str) -> bool:
    return device == PREDICTED_DEVICE


@dataclass(frozen=True)
class PlannedSweep:
    spec: SweepSpec
    out: Path
    why: str  # a line for the console: what this sweep is and why it runs
    # the folder the user gave (--out) when this sweep writes into a part of it (`out` is
    # root/part): --no-resume makes the root fresh, and a resume command names the root
    root: Path | None = None

    @property
    def part(self) -> str:
        return self.out.name if self.root is not None else ""


def spread(values: tuple[int, ...], count: int) -> tuple[int, ...]:
    """At most `count` of `values`, evenly spread, the first and the last always kept."""
    if len(values) <= count:
        return values
    step = (len(values) - 1) / (count - 1)
    return tuple(sorted({values[round(i * step)] for i in range(count)}))


def command(source: str | None, overrides: dict[str, Any]) -> str:
    """The `ffbench sweep` command line for a sweep file and flags, each value written as
    its flag reads it back (an option's true as `true`, not Python's `True`)."""

    args: list[Any] = ["ffbench", "sweep", *([Path(source)] if source else [])]
    for key, value in overrides.items():
        flag = "--" + flag_of_key(key)
        if key == "options":
            args += [a for name, v in value.items() for a in (flag, f"{name}={option_text(v)}")]
        elif isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, Path):
            args += [flag, value]
        else:
            args += [flag, str(value)]
    return shell_command(*args)


def refuse_cuda_without_gpu(spec: SweepSpec, source: str | None,
                            overrides: dict[str, Any]) -> None:
    if spec.executor != "local" or not spec.device.startswith("cuda") or cuda_present():
        return
    meta = command(source, {**overrides, "device": PREDICTED_DEVICE})
    raise BadInput(f"--device {spec.device}: this host has no CUDA GPU; to predict the "
                   f"same sweep's memory without one, run: {meta}")


def plan(source: str | None, given: dict[str, Any], out: Path | None,
         root: Path = RESULTS_ROOT, max_cells: int = DEFAULT_MAX_CELLS) -> list[PlannedSweep]:
    """The sweeps to run, in order, for a sweep file (or none) and the flags `given` (sweep
    file keys -> values; None: not given). BadInput for what cannot run here; a grid of more
    than `max_cells` cells is refused before it is expanded."""
    whole_number("max-cells", max_cells, 1, MAX_CELLS)
    overrides = {key: value for key, value in given.items() if value is not None}
    chooses_grid = any(key not in RUNNER_KEYS for key in overrides)
    if source is not None or not chooses_grid:
        spec = load_sweep(source, overrides, max_cells)
        refuse_cuda_without_gpu(spec, source, overrides)
        label = "predicted on meta: no compute, " if is_predicted(spec.device) else ""
        return [PlannedSweep(spec, out or root / spec.name, f"{label}{spec.name}")]
    if "device" in overrides or cuda_present():
        spec = grid_named(load_sweep(PUBLISHED_SWEEP, overrides, max_cells), overrides)
        refuse_cuda_without_gpu(spec, source, overrides)
        return [PlannedSweep(spec, out or root / spec.name, f"{_what(spec)} on {spec.device}")]
    return _without_gpu(overrides, out, root, max_cells)


def grid_named(spec: SweepSpec, overrides: dict[str, Any]) -> SweepSpec:
    """The published sweep as the flags made it, named for what it is: `published` when they
    changed nothing but where and how it runs, else after what they set
    (`published_layers-2..10_optimizer-sgd`)."""
    as_published = load_sweep(PUBLISHED_SWEEP, {})
    chosen = {key: value for key, value in overrides.items() if key not in NAMING_KEYS
              and load_sweep(PUBLISHED_SWEEP, {key: value}) != as_published}
    if not chosen:
        return spec
    parts = [f"{flag_of_key(key)}-{_name_part(value)}" for key, value in sorted(chosen.items())]
    return dataclasses.replace(spec, name="_".join([spec.name, *parts]))


def _what(spec: SweepSpec) -> str:
    """The published sweep, or what the flags made of it, in words."""
    if spec.name == PUBLISHED_SWEEP:
        return "the published comparison"
    return f"the published comparison's grid as the flags changed it ({spec.name})"


def _name_part(value: Any) -> str:
    """A flag's value as part of a folder name (letters, digits, '.', '+' and '-')."""
    if isinstance(value, dict):
        value = "+".join(f"{k}={v}" for k, v in sorted(value.items()))
    text = str(value).replace(",", "+").replace(" ", "")
    return re.sub(r"[^\w.+-]", "-", text.replace("=", "-"))


def _without_gpu(overrides: dict[str, Any], out: Path | None, root: Path,
                 max_cells: int) -> list[PlannedSweep]:
    published = grid_named(load_sweep(PUBLISHED_SWEEP, {**overrides, "device": PREDICTED_DEVICE},
                                      max_cells), overrides)
    predicted = dataclasses.replace(published, name=published.name + PREDICTED_SUFFIX)
    # the stand-in: the published algorithms and depths (a few) and the flags, at the size
    # and steps of the CPU sweep
    cpu_flags = {k: v for k, v in overrides.items() if k not in STAND_IN_KEEPS}
    base = load_sweep(CPU_SWEEP, {**cpu_flags, "algorithms": list(published.algorithms),
                                  "layers": list(spread(published.layers, CPU_MAX_DEPTHS))},
                      max_cells)
    cpu = dataclasses.replace(base, name=published.name + CPU_STAND_IN_SUFFIX)
    return [
        PlannedSweep(predicted, out / PREDICTED_PART if out else root / predicted.name,
                     f"no CUDA GPU here: {_what(published)} PREDICTED on meta (no compute; "
                     f"hidden {_joined(predicted.hidden)}, batch "
                     f"{_joined(predicted.batch_sizes)})", root=out),
        PlannedSweep(cpu, out / CPU_STAND_IN_PART if out else root / cpu.name,
                     f"and MEASURED on the CPU: {stand_in_label(cpu)}, depths "
                     f"{_joined(cpu.layers)}", root=out),
    ]


def stand_in_label(spec: SweepSpec) -> str:
    """How the CPU stand-in is named wherever it appears (settings.cell.stand_in)."""
    return stand_in(spec.hidden, spec.batch_sizes)


def _joined(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


def _compact(values: tuple[int, ...]) -> str:
    """2..47 for a whole run of integers, else the values."""
    whole = len(values) > 2 and values == tuple(range(values[0], values[-1] + 1))
    return f"{values[0]}..{values[-1]}" if whole else _joined(values)


def defaults_help() -> str:
    """What `ffbench sweep` runs when a flag (or the file) is left out, for its --help."""
    quick, published = load_sweep(DEFAULT_SWEEP, {}), load_sweep(PUBLISHED_SWEEP, {})

    def grid(spec: SweepSpec) -> str:
        return (f"{','.join(spec.algorithms)}; layers {_compact(spec.layers)}; hidden "
                f"{_joined(spec.hidden)}; batch {_joined(spec.batch_sizes)}; {spec.device}")

    return (f"Defaults: no file and no flags runs the embedded '{DEFAULT_SWEEP}' sweep "
            f"({grid(quick)}). Flags without a file run the published comparison "
            f"'{PUBLISHED_SWEEP}' ({grid(published)}) with the flags over it; without a GPU, "
            f"PREDICTED on {PREDICTED_DEVICE} into results/{PUBLISHED_SWEEP}{PREDICTED_SUFFIX} "
            f"plus MEASURED on the CPU at the '{CPU_SWEEP}' width and batch over at most "
            f"{CPU_MAX_DEPTHS} of the depths into results/{PUBLISHED_SWEEP}{CPU_STAND_IN_SUFFIX}. "
            "A grid the flags change is named after them. A flag "
            "left out takes the sweep file's value. Results go to results/NAME; a folder keeps "
            "its sweep's settings (more depths or batch sizes extend it; other settings are "
            f"refused: {NEW_FOLDER_FLAG_TEXT}).")
