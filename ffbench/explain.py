"""`ffbench explain`: memory by category at each phase's peak, analytic vs tracked vs predicted.

Imports torch (through ffbench.cell): the command line imports it only inside `explain`.

For one cell: the analytic model (ffbench.memory_model), the tensor tracker on the cell's
device, and the same steps on meta. Per phase (train, eval) a table of categories at the
peak, where the peak is reached, and how the train peak grows per added layer, set
against the published accounting (16 MB weights + 16 MB gradients + 32 MB Adam moments
per 2000x2000 fp32 layer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from rich.table import Table

from ffbench.cell import PhasePeak, load_dataset, memory_peaks, predicted_peaks
from ffbench.measure.categories import CATEGORIES
from ffbench.memory_model import CellModel, Peak, cell_model
from ffbench.memory_model.core import Sizes
from ffbench.spec import BadInput, CellSpec
from ffbench.summary import MIB, mib

MB = 10**6  # the published per-layer figures are decimal megabytes
SLOPE_PART_MIN_FRACTION = 0.01  # smaller per-layer parts (a loss scalar) are summed as "other"
ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, each the size of its parameter

# Why a category grows (or not) with depth, for the per-layer note.
SLOPE_REASONS = {
    "parameters": "one more Linear: hidden x hidden weights + bias",
    "optimizer_state": "Adam's two moments of those parameters (2x their bytes)",
    "gradients": "the new layer's gradients are alive at the peak",
    "activations": "saved activations / temporaries per layer alive at the peak",
    "inputs": "per-layer inputs alive at the peak",
    "eval_replication": "per-layer replicated eval rows",
    "cache": "per-layer cached layer inputs",
}
# Why, for an algorithm, the added layer's gradients can be missing at the train peak.
_ONE_LAYER_AT_A_TIME = (
    "each layer's gradients are freed (zero_grad(set_to_none=True)) right after its own "
    "Adam step, so at most one layer holds gradients at a time; the published "
    "implementation kept every layer's gradients"
)
_FROZEN_LAYERS = (
    "only the layer in training has gradients and Adam moments; finished layers are frozen "
    "and their moments freed"
)
GRADIENT_NOTES = {
    "bp": "the peak is in backward, before the lower layers' gradients are made",
    "ff": _ONE_LAYER_AT_A_TIME,
    "rff": _ONE_LAYER_AT_A_TIME,
    "ff-progressive": _FROZEN_LAYERS,
    "ff-layerwise": _FROZEN_LAYERS + " (and on the host, off the device)",
}


@dataclass(frozen=True)
class Phase:
    name: str  # "train" or "eval"
    analytic: Peak | None  # None: no analytic model for this algorithm
    tracked: Peak
    predicted: Peak
    allocated_bytes: int | None  # CUDA max_memory_allocated, on cuda only


@dataclass(frozen=True)
class Slope:
    """Growth of the train peak per added layer (n -> n + 1), in bytes."""

    analytic: dict[str, int] | None
    predicted_bytes: int


@dataclass(frozen=True)
class Explanation:
    spec: CellSpec
    phases: tuple[Phase, Phase]
    slope: Slope


def _tracked_view(phase: PhasePeak) -> Peak:
    # the newest storage alive at the peak is the one that reached it
    at = phase.storages[-1].op if phase.storages else "start of phase"
    return Peak(phase.tracked_bytes, phase.split, at)


def explain(spec: CellSpec) -> Explanation:
    """Run the cell's memory pass (tracked on its device, predicted on meta) and its model."""
    spec = spec.resolved()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    dataset = load_dataset(spec)
    peaks = memory_peaks(spec, dataset)
    model = analytic_model(spec)
    phases = (
        Phase("train", _analytic(model, "train"), _tracked_view(peaks.train),
              _tracked_view(peaks.predicted_train), peaks.train.allocated_bytes),
        Phase("eval", _analytic(model, "eval"), _tracked_view(peaks.eval),
              _tracked_view(peaks.predicted_eval), peaks.eval.allocated_bytes),
    )
    deeper = dataclasses.replace(spec, n_layers=spec.n_layers + 1)
    deeper_predicted, _ = predicted_peaks(deeper, dataset)
    slope = Slope(
        analytic_slope(spec, model) if model else None,
        deeper_predicted.tracked_bytes - peaks.predicted_train.tracked_bytes,
    )
    return Explanation(spec, phases, slope)


def analytic_model(spec: CellSpec) -> CellModel | None:
    """The cell's analytic model, or None where there is none (an algorithm or a goodness
    function not modelled yet): the tables then show tracked and predicted only."""
    try:
        return cell_model(spec)
    except BadInput:
        return None


def _analytic(model: CellModel | None, phase: str) -> Peak | None:
    if model is None:
        return None
    return model.train if phase == "train" else model.eval


def analytic_slope(spec: CellSpec, model: CellModel) -> dict[str, int]:
    """Per-category growth of the analytic train peak from n (`model`) to n + 1 layers."""
    now = model.train
    deeper = cell_model(dataclasses.replace(spec, n_layers=spec.n_layers + 1)).train
    return {name: deeper.split[name] - now.split[name] for name in CATEGORIES}


def published_per_layer_bytes(spec: CellSpec) -> dict[str, int]:
    """The published accounting at this width: weights + gradients + Adam moments."""
    weights = Sizes.of(spec).matrix(spec.hidden, spec.hidden)
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
    """Categories at the phase's peak: analytic, tracked, tracked - analytic, predicted."""
    table = Table(
        title=f"{phase.name} phase, at its peak",
        caption="diff = tracked - analytic; predicted = the same steps on meta; * largest",
        header_style="bold",
    )
    table.add_column("category")
    for column in ("analytic", "tracked", "diff", "predicted"):
        table.add_column(column, justify="right")
    largest = largest_category(phase.tracked)
    for name in CATEGORIES:
        analytic = phase.analytic.split[name] if phase.analytic else None
        tracked = phase.tracked.split.get(name, 0)
        if not (tracked or analytic or phase.predicted.split.get(name, 0)):
            continue
        label = f"{name} *" if name == largest else name
        diff = None if analytic is None else tracked - analytic
        table.add_row(label, mib(analytic), mib(tracked), _difference(diff),
                      mib(phase.predicted.split.get(name, 0)))
    analytic_total = phase.analytic.nbytes if phase.analytic else None
    diff_total = None if analytic_total is None else phase.tracked.nbytes - analytic_total
    table.add_row("PEAK", mib(analytic_total), mib(phase.tracked.nbytes),
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
        if phase.analytic:
            where = f"analytic: at '{phase.analytic.at}'; {where}"
        largest = largest_category(phase.tracked)
        share = phase.tracked.split[largest] / phase.tracked.nbytes
        lines.append(
            f"{phase.name} peak {mib(phase.tracked.nbytes)} ({where}); largest category "
            f"{largest}: {mib(phase.tracked.split[largest])} ({share:.0%} of the peak)"
        )
    top = max(explanation.phases, key=lambda phase: phase.tracked.nbytes)
    lines.append(f"the cell's peak is the {top.name} phase's: {mib(top.tracked.nbytes)}")
    return lines


def cache_lines(explanation: Explanation) -> list[str]:
    """What a whole-training-set cache costs, and what holding two of them would."""
    spec, train = explanation.spec, explanation.phases[0].tracked
    cache = train.split.get("cache", 0)
    if not cache:
        return []
    s = Sizes.of(spec)
    rows = cache // s.matrix(1, spec.hidden)
    return [
        f"cache: {_mb(cache)} = {rows:,} rows (each training image positive and negative) x "
        f"{spec.hidden} units x {s.element_bytes} B, refilled in place layer by layer",
        f"  building the next layer's cache while the old one is alive (as the published code "
        f"did) holds two: about {_mb(train.nbytes + cache)} at this train peak",
    ]


def slope_lines(explanation: Explanation) -> list[str]:
    """What the train peak gains per added layer, and how it relates to the published ~64 MB."""
    spec, slope = explanation.spec, explanation.slope
    lines = [f"per added layer ({spec.n_layers} -> {spec.n_layers + 1}) the train peak grows "
             f"by {_mb(slope.predicted_bytes)} (predicted on meta; MB = 10^6 bytes, as published)"]
    if slope.analytic is None:
        return lines
    train = explanation.phases[0].analytic
    assert train is not None
    major = _major_parts(slope.analytic)
    lines.append(f"analytic: {_mb(sum(slope.analytic.values()))} = {_parts(slope.analytic)}")
    lines += [f"  {name}: {SLOPE_REASONS[name]}" for name, n in major.items() if n > 0]
    if not slope.analytic["gradients"]:
        note = GRADIENT_NOTES.get(spec.algorithm, "")
        lines.append(f"  gradients: none; the added layer's gradients are not alive at the peak "
                     f"(at '{train.at}')" + (f": {note}" if note else ""))
    published = published_per_layer_bytes(spec)
    lines.append(f"published accounting at hidden {spec.hidden} {spec.dtype}: "
                 f"{_mb(sum(published.values()))} = {_parts(published)}")
    difference = {name: slope.analytic[name] - published.get(name, 0) for name in CATEGORIES}
    lines.append(f"ffbench - published: {_parts(difference)}")
    return lines


def _major_parts(per_category: dict[str, int]) -> dict[str, int]:
    """Categories that matter: at least a small fraction of the largest one."""
    largest = max(abs(n) for n in per_category.values())
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
