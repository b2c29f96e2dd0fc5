"""`ffbench explain`: memory by category at each phase's peak, closed form vs tracked vs predicted.

Imports torch (through ffbench.cell): the command line imports it only inside `explain`.

For one cell: the algorithm's closed-form account of its train peak (its
`memory_account`), the tensor tracker on the cell's device, and the same steps on meta.
Per phase (train, eval) a table of categories at the peak; where the peak is reached (the
op and module path of the allocation that reached it, replayed from the tracker's event
log); and how the train peak grows per added layer (on meta, and in closed form), set
against the published accounting (16 MB weights + 16 MB gradients + 32 MB Adam moments per
2000x2000 fp32 layer).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from rich.table import Table

from ffbench.algorithms import account, registry
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import PhasePeak, load_dataset
from ffbench.cell.run import memory_peaks, predicted_peaks
from ffbench.measure.categories import CATEGORIES
from ffbench.measure.tracker import replay
from ffbench.settings.cell import CellSpec
from ffbench.units import MIB, mib

log = logging.getLogger(__name__)

MB = 10**6  # the published per-layer figures are decimal megabytes
SLOPE_PART_MIN_FRACTION = 0.01  # smaller per-layer parts (a loss scalar) are summed as "other"
ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, each the size of its parameter
OUTSIDE_MODULES = "outside any module's forward (loss, backward or optimizer step)"

# What each optimizer keeps per parameter (algorithms.account.OPTIMIZER_STATE's copies).
OPTIMIZER_STATE_WORDS = {
    "adam": "Adam's two moments, 2x their bytes",
    "momentum": "SGD momentum's one buffer, 1x their bytes",
    "sgd": "none: plain SGD keeps no state",
}
# The closed-form account may differ from the tracked train peak by this fraction of it
# before explain warns (every built-in's account is exact to the byte, tests hold them so)
ACCOUNT_SLACK_FRACTION = 0.001
# Why a category grows (or not) with depth, for the per-layer note.
SLOPE_REASONS = {
    "parameters": "one more Linear: hidden x hidden weights + bias",
    "optimizer_state": "the optimizer's state of those parameters ({state})",
    "gradients": "the new layer's gradients are alive at the peak",
    "activations": "saved activations / temporaries per layer alive at the peak",
    "inputs": "per-layer inputs alive at the peak",
    "eval_replication": "per-layer replicated eval rows",
    "cache": "per-layer cached layer inputs",
}


@dataclass(frozen=True)
class Peak:
    """A phase's largest live total, its split by category, and where it was reached."""

    nbytes: int
    split: dict[str, int]
    at: str
    parts: dict[str, int] = dataclasses.field(default_factory=dict)  # named bytes in the split


@dataclass(frozen=True)
class Phase:
    name: str  # "train" or "eval"
    account: Peak | None  # the closed-form account (train phase only)
    tracked: Peak
    predicted: Peak
    allocated_bytes: int | None  # CUDA max_memory_allocated, on cuda only


@dataclass(frozen=True)
class Slope:
    """Growth of the train peak per added layer (n -> n + 1), by category, in bytes."""

    account: dict[str, int]
    predicted: dict[str, int]

    @property
    def predicted_bytes(self) -> int:
        return sum(self.predicted.values())


@dataclass(frozen=True)
class Explanation:
    spec: CellSpec
    phases: tuple[Phase, Phase]
    slope: Slope
    # host storages' tracked peak over both phases (None where the host is the device)
    host_tracked_bytes: int | None = None


def peak_location(phase: PhasePeak) -> str:
    """The op and module path of the allocation that reached the phase's peak, from the
    tracker's event log."""
    replayed = replay(list(phase.events), phase.phase_start)
    if replayed.at is None:
        return "start of phase"
    where = f"module {replayed.at.module}" if replayed.at.module else OUTSIDE_MODULES
    return f"{replayed.at.op}, {where}"


def _view(phase: PhasePeak) -> Peak:
    return Peak(phase.tracked_bytes, phase.split, peak_location(phase))


def _account_view(spec: CellSpec) -> Peak:
    closed = registry.load(spec.algorithm).memory_account(spec)
    return Peak(closed.nbytes, closed.split, closed.at, closed.parts)


def explain(spec: CellSpec) -> Explanation:
    """Run the cell's memory pass (tracked on its device, predicted on meta) and its account."""
    spec = resolved(spec)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    dataset = load_dataset(spec)
    peaks = memory_peaks(spec, dataset, module_paths=True)
    phases = (
        Phase("train", _account_view(spec), _view(peaks.train), _view(peaks.predicted_train),
              peaks.train.allocated_bytes),
        Phase("eval", None, _view(peaks.eval), _view(peaks.predicted_eval),
              peaks.eval.allocated_bytes),
    )
    _check_account(spec, phases[0])
    deeper = dataclasses.replace(spec, n_layers=spec.n_layers + 1)
    deeper_predicted, _ = predicted_peaks(deeper, dataset)
    slope = Slope(
        _difference_by_category(closed_form(deeper), closed_form(spec)),
        _difference_by_category(deeper_predicted.split, peaks.predicted_train.split),
    )
    return Explanation(spec, phases, slope, peaks.eval.host_tracked_bytes)


def _check_account(spec: CellSpec, train: Phase) -> None:
    """A warning line when the algorithm's closed-form account misses the tracked train
    peak by more than ACCOUNT_SLACK_FRACTION (a plugin's memory_account that is wrong)."""
    assert train.account is not None
    off = train.tracked.nbytes - train.account.nbytes
    if abs(off) > ACCOUNT_SLACK_FRACTION * train.tracked.nbytes:
        log.warning("%s's closed-form account (its memory_account) is %s bytes %s the tracked "
                    "train peak (%.2f%%): the account does not describe its step",
                    spec.algorithm, f"{abs(off):,}", "under" if off > 0 else "over",
                    100 * abs(off) / max(train.tracked.nbytes, 1))


def closed_form(spec: CellSpec) -> dict[str, int]:
    closed: MemoryAccount = registry.load(spec.algorithm).memory_account(spec)
    return closed.split


def _difference_by_category(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after.get(name, 0) - before.get(name, 0) for name in CATEGORIES}


def published_per_layer_bytes(spec: CellSpec) -> dict[str, int]:
    """The published accounting at this width: weights + gradients + Adam moments."""
    weights = account.matrix(spec.hidden, spec.hidden, spec)
    return {"parameters": weights, "gradients": weights, "optimizer_state": ADAM_MOMENTS * weights}


def _mb(nbytes: int) -> str:
    return f"{nbytes / MB:,.2f} MB"


def _difference(nbytes: int | None) -> str:
    """Exact below a MiB, where a few host scalars would round to 0.00 MiB."""
    if nbytes is None:
        return "-"
    if abs(nbytes) < MIB:
        return f"{nbytes:+,d} B" if nbytes else "0"
    return ("+" if nbytes > 0 else "") + mib(nbytes)


def phase_table(phase: Phase) -> Table:
    """Categories at the phase's peak: closed form, tracked, tracked - closed form, predicted."""
    table = Table(
        title=f"{phase.name} phase, at its peak",
        caption="closed form = the algorithm's memory_account; diff = tracked - closed form; "
        "predicted = the same steps on meta; * largest",
        header_style="bold",
    )
    table.add_column("category")
    for column in ("closed form", "tracked", "diff", "predicted"):
        table.add_column(column, justify="right")
    largest = largest_category(phase.tracked)
    for name in CATEGORIES:
        closed = phase.account.split[name] if phase.account else None
        tracked = phase.tracked.split.get(name, 0)
        if not (tracked or closed or phase.predicted.split.get(name, 0)):
            continue
        label = f"{name} *" if name == largest else name
        diff = None if closed is None else tracked - closed
        table.add_row(label, mib(closed), mib(tracked), _difference(diff),
                      mib(phase.predicted.split.get(name, 0)))
    closed_total = phase.account.nbytes if phase.account else None
    diff_total = None if closed_total is None else phase.tracked.nbytes - closed_total
    table.add_row("PEAK", mib(closed_total), mib(phase.tracked.nbytes),
                  _difference(diff_total), mib(phase.predicted.nbytes), style="bold")
    if phase.allocated_bytes is not None:
        table.add_row("CUDA max_memory_allocated", "", mib(phase.allocated_bytes), "", "")
    return table


def largest_category(view: Peak) -> str:
    return max(CATEGORIES, key=lambda name: view.split.get(name, 0))


def peak_lines(explanation: Explanation) -> list[str]:
    """Where each phase peaks, its largest category, and which phase is the cell's peak."""
    lines = []
    for phase in explanation.phases:
        where = f"tracked: new storage from {phase.tracked.at}"
        if phase.account:
            where = f"closed form: in {phase.account.at}; {where}"
        largest = largest_category(phase.tracked)
        share = phase.tracked.split[largest] / phase.tracked.nbytes
        lines.append(
            f"{phase.name} peak {mib(phase.tracked.nbytes)} ({where}); largest category "
            f"{largest}: {mib(phase.tracked.split[largest])} ({share:.0%} of the peak)"
        )
    top = max(explanation.phases, key=lambda phase: phase.tracked.nbytes)
    lines.append(f"the cell's peak is the {top.name} phase's: {mib(top.tracked.nbytes)}")
    return lines


def part_lines(explanation: Explanation) -> list[str]:
    """Named parts of the train peak in closed form (a linear read-out's bytes), each with
    its share of the peak."""
    closed = explanation.phases[0].account
    if closed is None or not closed.parts:
        return []
    parts = ", ".join(f"{name} {_bytes(nbytes)} ({nbytes / closed.nbytes:.1%})"
                      for name, nbytes in closed.parts.items())
    return [f"of the train peak in closed form: {parts}"]


def _bytes(nbytes: int) -> str:
    """Exact below a MiB."""
    return f"{nbytes:,d} B" if nbytes < MIB else mib(nbytes)


def cache_lines(explanation: Explanation) -> list[str]:
    """What a whole-training-set cache costs, and what holding two of them would."""
    spec, train = explanation.spec, explanation.phases[0].tracked
    cache = train.split.get("cache", 0)
    if not cache:
        return []
    rows = cache // account.matrix(1, spec.hidden, spec)
    return [
        f"cache: {_mb(cache)} = {rows:,} rows (each training image positive and negative) x "
        f"{spec.hidden} units x {account.element_bytes(spec)} B, refilled in place layer by "
        f"layer",
        f"  building the next layer's cache while the old one is alive (as the published code "
        f"did) holds two: about {_mb(train.nbytes + cache)} at this train peak",
    ]


def note_lines(explanation: Explanation) -> list[str]:
    """The closed form's notes; what it moves to host memory per train step, where it went
    and what that is on the host."""
    closed = registry.load(explanation.spec.algorithm).memory_account(explanation.spec)
    lines = [f"{name}: {note}" for name, note in closed.notes.items()]
    offloaded = closed.offloaded_bytes
    if offloaded:
        host = explanation.host_tracked_bytes
        lines.append(
            f"  offloaded per train step: {_mb(offloaded)} ({mib(offloaded)}) to host memory "
            f"in the forward, the same back to the device in the backward "
            f"({_mb(2 * offloaded)} over the host link), all of it there at the forward's "
            f"end; host tracked peak {mib(host)}")
    return lines


def slope_lines(explanation: Explanation) -> list[str]:
    """What the train peak gains per added layer (on meta, by category, and in closed form),
    and how it relates to the published ~64 MB."""
    spec, slope = explanation.spec, explanation.slope
    grown = slope.predicted
    lines = [f"per added layer ({spec.n_layers} -> {spec.n_layers + 1}) the train peak grows "
             f"by {_mb(slope.predicted_bytes)} = {_parts(grown)} (predicted on meta; "
             f"MB = 10^6 bytes, as published)"]
    state = OPTIMIZER_STATE_WORDS[spec.optimizer]
    lines += [f"  {name}: {SLOPE_REASONS[name].format(state=state)}"
              for name, n in _major_parts(grown).items() if n > 0]
    lines.append(f"closed form: {_mb(sum(slope.account.values()))} = {_parts(slope.account)}")
    if not grown["gradients"]:
        note = registry.load(spec.algorithm).gradient_note
        lines.append(f"  gradients: none; the added layer's gradients are not alive at the peak "
                     f"(at {explanation.phases[0].predicted.at})" + (f": {note}" if note else ""))
    published = published_per_layer_bytes(spec)
    lines.append(f"published accounting at hidden {spec.hidden} {spec.dtype}: "
                 f"{_mb(sum(published.values()))} = {_parts(published)}")
    difference = {name: grown[name] - published.get(name, 0) for name in CATEGORIES}
    lines.append(f"ffbench - published: {_parts(difference)}")
    return lines


def _major_parts(per_category: dict[str, int]) -> dict[str, int]:
    """Categories that matter: at least a small fraction of the largest one."""
    largest = max((abs(n) for n in per_category.values()), default=0)
    return {
        name: n for name, n in per_category.items()
        if n and abs(n) >= SLOPE_PART_MIN_FRACTION * largest
    }


def _parts(per_category: dict[str, int]) -> str:
    """ "parameters 16.01 MB + optimizer_state 32.02 MB + other 4 bytes" """
    major = _major_parts(per_category)
    parts = [f"{name} {_mb(n)}" for name, n in major.items()]
    other = sum(per_category.values()) - sum(major.values())
    if other:
        parts.append(f"other {other:,d} bytes")
    return " + ".join(parts).replace("+ -", "- ") or "0"


def lines(explanation: Explanation) -> list[Any]:
    """What `ffbench explain` shows: a table per phase, where each peak is reached, the
    caches, and what each added layer costs."""
    return [*(phase_table(phase) for phase in explanation.phases), *peak_lines(explanation),
            *part_lines(explanation), *note_lines(explanation), *cache_lines(explanation),
            *slope_lines(explanation)]
