"""Does it fit? The deepest network (or the largest batch) whose predicted device memory
fits in a given GPU memory, per algorithm.

A configuration needs its predicted reserved peak (the larger of train and eval, see
allocator_view) plus the CUDA context. Replaying a deep network on meta takes seconds per
hundred layers, so the boundary is found from two shallow probes: reserved memory grows by
the same bytes per layer (and per batch row), so the boundary is extrapolated from them, then
checked with a full prediction where that is cheap (up to VERIFY_MAX_LAYERS layers): the
checked answer is exact for the model (the boundary fits, one more does not).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ffbench.algorithms import registry
from ffbench.algorithms.resolve import check, resolved
from ffbench.cell.allocator_view import event_log, replay
from ffbench.runner.isolated import ANSWER_TIMEOUT_S, run_each
from ffbench.settings.cell import MAX_BATCH_SIZE, CellSpec
from ffbench.settings.gpus import Gpu, cublas_workspace_bytes, gpu, parse_memory
from ffbench.settings.ranges import parse_names

DEPTH_PROBES = (8, 16)  # layers of the two predictions the boundary is extrapolated from
VERIFY_MAX_LAYERS = 48  # deeper boundaries are extrapolated only (replaying them takes long)
BATCH_PROBE_FRACTIONS = (0.25, 0.5)  # of --batch-size, for the largest-batch search
FAR_PROBE_FACTOR = 4  # where the two probes need the same, a third this much further decides
VERIFY_MAX_STEPS = 8  # at most this many full predictions when checking a boundary
SECANT_STEPS = 8  # at most this many predictions moving a largest batch to the boundary
SECANT_TOLERANCE = 0.01  # of the batch: this close to the boundary is the answer (margin: 17%)
# capacity needs every phase's peak, not the steps' repetition: one warm-up step (it creates
# the optimizer state) and one measured step give the same peaks as the cell's defaults
CAPACITY_WARMUP_STEPS = 1
CAPACITY_MEMORY_PASS_STEPS = 1
# How far predicted reserved peaks fell short of measured ones on the H200 (results/gpu) at
# 47 layers, the worst algorithm and phase: rff's train phase, 16.6% (bp 1.6%, ff 8.9%;
# eval within 4%); tests/test_allocator_view.py holds it to the measurements.
CAPACITY_MARGIN = 0.17


@dataclass(frozen=True)
class Fit:
    algorithm: str
    n_layers: int | None  # 0: not even one layer fits; None: depth does not raise the peak
    batch_size: int | None  # None: the batch does not raise the peak
    needed_bytes: int  # predicted reserved peak + CUDA context at the answer
    checked: bool  # the answer (and one more) predicted in full, not extrapolated
    margin: int  # layers (or batch rows): the answer is uncertain by this much (CAPACITY_MARGIN)
    error: str | None = None  # a plugin's failure (one line): no answer for it


@dataclass(frozen=True)
class Need:
    """What a configuration needs: its predicted reserved peak + the CUDA context (what
    must fit), and its predicted allocated peak (what grows, byte by byte, beneath the
    allocator's segments)."""

    reserved: int
    allocated: int


def need_of(spec: CellSpec, target: Gpu) -> Need:
    """Predicted reserved (+ the CUDA context) and allocated peaks over train and eval."""
    spec = dataclasses.replace(spec, device="meta", warmup_steps=CAPACITY_WARMUP_STEPS)
    peaks = replay(event_log(spec, steps=CAPACITY_MEMORY_PASS_STEPS),
                   cublas_workspace_bytes(target))
    return Need(max(peaks.train_reserved_bytes, peaks.eval_reserved_bytes) + target.context_bytes,
                max(peaks.train_allocated_bytes, peaks.eval_allocated_bytes))


def _boundary(
    measure: Callable[[int], Need], limit: int, probes: tuple[int, int], verify_max: int
) -> tuple[int | None, bool, int]:
    """The largest x with need(x) <= limit: (x, checked, need(x)), need(x) extrapolated
    where not checked; x is None when the allocated peak does not grow even up to a far
    probe and fits (no x is too large: layer-wise FF's device peak at any depth). Growth
    hidden by the allocator's segments (a reserved peak that does not move while the
    allocated one does) is extrapolated from the allocated peak's slope."""
    low, high = probes
    first, second = measure(low), measure(high)
    if second.reserved <= first.reserved:  # segments can hide growth between close probes
        high = high * FAR_PROBE_FACTOR
        second = measure(high)
        if second.allocated <= first.allocated and second.reserved <= limit:
            return None, False, second.reserved
    at_low, at_high = first.reserved, second.reserved
    growth = max(at_high - at_low, second.allocated - first.allocated)
    slope = max(growth / (high - low), 1.0)
    x = max(low + int((limit - at_low) // slope), 0)
    if x > verify_max:
        return x, False, int(at_low + slope * (x - low))
    known = {low: at_low, high: at_high}

    def fits(value: int) -> bool:
        if value not in known:
            known[value] = measure(value).reserved
        return known[value] <= limit

    for _ in range(VERIFY_MAX_STEPS):
        if x >= 1 and not fits(x):
            x -= 1
        elif fits(x + 1):
            x += 1
        else:
            return x, True, known.get(x, 0)
    return x, False, int(at_low + slope * (x - low))


def deepest(spec: CellSpec, memory_bytes: int, target: Gpu) -> Fit:
    """The most layers of `spec`'s algorithm, width and batch that fit in `memory_bytes`."""

    def need(layers: int) -> Need:
        return need_of(dataclasses.replace(spec, n_layers=layers), target)

    layers, checked, needed = _boundary(need, memory_bytes, DEPTH_PROBES, VERIFY_MAX_LAYERS)
    margin = 0 if layers is None else int(CAPACITY_MARGIN * layers)
    return Fit(spec.algorithm, layers, spec.batch_size, needed, checked, margin)


def largest_batch(spec: CellSpec, memory_bytes: int, target: Gpu) -> Fit:
    """The largest batch of `spec` (at its depth) that fits: extrapolated from two smaller
    batches, then predicted where it lands and moved by secant steps until the prediction
    at the answer fits and one more row's extrapolation does not. A cell's peak grows with
    the batch only piecewise (an optimizer step's moment does not grow with it, backward's
    does), so two small batches alone can point far past the answer."""

    @functools.cache
    def need(batch: int) -> Need:
        batch = min(batch, MAX_BATCH_SIZE)
        return need_of(dataclasses.replace(spec, batch_size=batch, eval_batch_size=None),
                       target)

    probes = tuple(max(1, int(spec.batch_size * f)) for f in BATCH_PROBE_FRACTIONS)
    low, high = probes[0], max(probes[1], probes[0] + 1)
    batch, _, needed = _boundary(need, memory_bytes, (low, high), verify_max=0)
    if batch is None:
        return Fit(spec.algorithm, spec.n_layers, None, needed, False, 0)

    def reserved(x: int) -> int:
        return need(x).reserved

    batch, needed, checked = _secant(reserved, memory_bytes,
                                     {low: reserved(low), high: reserved(high)},
                                     min(max(batch, 1), MAX_BATCH_SIZE))
    return Fit(spec.algorithm, spec.n_layers, batch, needed, checked,
               int(CAPACITY_MARGIN * batch))


def _secant(need: Callable[[int], int], limit: int, known: dict[int, int],
            x: int) -> tuple[int, int, bool]:
    """(x, need(x), whether x is the boundary): the largest x known to fit, narrowed from a
    first guess by secant steps through the predictions nearest to it (two of different
    needs: the allocator's segments make need flat over short stretches), bisecting where a
    step leaves the bracket of x known to fit and x known not to, until the bracket is within
    SECANT_TOLERANCE of x (or x is the largest batch a cell can have and fits); at most
    SECANT_STEPS predictions."""
    for _ in range(SECANT_STEPS):
        known[x] = need(x)
        fit = max((k for k, v in known.items() if v <= limit), default=0)
        over = min((k for k, v in known.items() if v > limit), default=MAX_BATCH_SIZE + 1)
        if fit == MAX_BATCH_SIZE or (fit and over - fit <= max(1, SECANT_TOLERANCE * fit)):
            return fit, known[fit], True
        nearest = sorted(known, key=lambda k: abs(k - x))
        other = next((k for k in nearest if known[k] != known[x]), None)
        guess = None
        if other is not None:
            slope = (known[x] - known[other]) / (x - other)
            if slope > 0:
                guess = x + int((limit - known[x]) // slope)
        if guess is None or not fit < guess < over:
            guess = (fit + min(over, MAX_BATCH_SIZE + 1)) // 2  # bisect the bracket
        x = max(1, min(guess, MAX_BATCH_SIZE))
    fit = max((k for k, v in known.items() if v <= limit), default=min(known))
    return fit, known[fit], False


FIT_JOB = "ffbench.capacity:fit_of"  # a plugin's answer, in a child process (runner.isolated)


def capacity(
    spec: CellSpec, algorithms: list[str], memory_bytes: int, target: Gpu, *, by_batch: bool,
    timeout_s: float = ANSWER_TIMEOUT_S,
) -> list[Fit]:
    """Per algorithm: the deepest network (or, `by_batch`, the largest batch at the spec's
    depth) that fits in `memory_bytes` of `target`. Built-ins are answered here; plugins
    each in a child process (`runner.isolated`), `timeout_s` each: a plugin that
    raises, exits, crashes, blocks or prints is a Fit with its error, never this command's
    end, and never a line on its stdout."""
    plugins = [name for name in algorithms if name not in registry.BUILTIN]
    requests = [{"spec": dataclasses.replace(spec, algorithm=name).to_json(),
                 "memory_bytes": memory_bytes, "target": target.name, "by_batch": by_batch}
                for name in plugins]
    answers = dict(zip(plugins, run_each(FIT_JOB, requests, timeout_s) if plugins else [],
                       strict=True))
    fits = []
    for name in algorithms:
        if name in answers:
            answer = answers[name]
            fits.append(Fit(**answer.value) if answer.error is None else Fit(
                name, None, None, 0, False, 0, error=answer.error))
        else:
            fits.append(_fit(dataclasses.replace(spec, algorithm=name), memory_bytes, target,
                             by_batch))
    return fits


def _fit(spec: CellSpec, memory_bytes: int, target: Gpu, by_batch: bool) -> Fit:
    answer = largest_batch if by_batch else deepest
    return answer(resolved(check(spec)), memory_bytes, target)


def fit_of(request: dict[str, Any]) -> dict[str, Any]:
    """One algorithm's answer, as a child process gives it (`capacity`)."""
    spec = CellSpec.from_json(request["spec"])
    fit = _fit(spec, request["memory_bytes"], gpu(request["target"]), request["by_batch"])
    return dataclasses.asdict(fit)


def fit_lines(fits: list[Fit], memory_bytes: int, target: Gpu, *, by_batch: bool) -> list[str]:
    """A plain-text table of `capacity`'s answer, with its margin of error."""
    what = "largest batch" if by_batch else "deepest"
    lines = [f"{'algorithm':<16} {what:>14} {'needs GiB':>10}  how"]
    for fit in fits:
        value = fit.batch_size if by_batch else fit.n_layers
        if fit.error is not None:
            lines.append(f"{fit.algorithm:<16} {'failed':>14} {'-':>10}  {fit.error}")
            continue
        if value is None:
            grows_with = "batch size" if by_batch else "depth"
            shown, how = "no limit", f"its device peak does not grow with {grows_with}"
        elif by_batch and value == MAX_BATCH_SIZE:
            shown, how = f">= {value:,}", "fits at the largest batch a cell can have"
        else:
            shown = f"{value:,}"
            how = ("checked" if fit.checked else "extrapolated") + f" (+/- {fit.margin:,})"
        lines.append(f"{fit.algorithm:<16} {shown:>14} {fit.needed_bytes / 2**30:>10.2f}  {how}")
    lines.append(
        f"Fits in {memory_bytes / 2**30:.1f} GiB on {target.name}: predicted reserved peak "
        f"(train or eval) + {target.context_bytes / 2**20:.0f} MiB CUDA context. Margin "
        f"(+/-): predicted reserved peaks were up to {CAPACITY_MARGIN:.0%} under the H200's "
        f"measured ones at 47 layers (docs/gpu.md); leave that much room.")
    return lines


@dataclass(frozen=True)
class Answer:
    """`ffbench capacity`'s answer and what it was asked."""

    memory: str  # as given
    memory_bytes: int
    target: Gpu
    spec: CellSpec  # the settings answered for (resolved; its algorithm the first asked)
    by_batch: bool
    fits: list[Fit]

    def heading(self) -> str:
        """The settings it answered for, in one line."""
        at = (f"{self.spec.n_layers} layers, " if self.by_batch
              else f"batch {self.spec.batch_size}, ")
        return (f"{self.memory} on {self.target.name}: hidden {self.spec.hidden}, {at}"
                f"{self.spec.dtype}, {self.spec.optimizer}")

    def lines(self) -> list[str]:
        return fit_lines(self.fits, self.memory_bytes, self.target, by_batch=self.by_batch)

    def as_json(self) -> str:
        return json.dumps([dataclasses.asdict(fit) for fit in self.fits], indent=2)


def answer(memory: str, given: dict[str, Any], *, algorithms: str | None = None,
           layers: int | None = None, target_gpu: str,
           timeout_s: float = ANSWER_TIMEOUT_S) -> Answer:
    """Per algorithm (all registered unless named, each once), the deepest network, or at
    `layers` the largest batch, whose predicted reserved memory plus the CUDA context fits
    in `memory`. The settings are checked here against the first built-in asked (a plugin
    is never imported in this process: its own answer says what went wrong with it)."""
    memory_bytes, target = parse_memory(memory), gpu(target_gpu)
    names = (parse_names(algorithms, flag="algorithms", known=tuple(registry.ALGORITHMS))
             if algorithms is not None else registry.names())
    spec = CellSpec(names[0], n_layers=layers or 1, device="meta", **given)
    builtin = next((name for name in names if name in registry.BUILTIN), "bp")
    shown = resolved(check(dataclasses.replace(spec, algorithm=builtin)))
    fits = capacity(spec, names, memory_bytes, target, by_batch=layers is not None,
                    timeout_s=timeout_s)
    return Answer(memory, memory_bytes, target, shown, layers is not None, fits)
