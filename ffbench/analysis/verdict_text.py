"""The verdict (`ffbench.analysis.verdict`) in words: a few lines for the end of a sweep and the top
of the report, and a table per phase and optimizer. Every choice that decides a number
(phase, eval rows, which backprop, predicted or measured, size) is said in the lines.
"""

from __future__ import annotations

from typing import Any

from ffbench.algorithms.registry import algorithm_order, display_name
from ffbench.analysis.verdict_records import (
    EVAL_PUBLISHED,
    LARGER,
    PHASES,
    SAME_BYTES,
    SAME_FRACTION,
    STRONGEST,
    Comparison,
    Group,
    Verdict,
)
from ffbench.settings.cell import DEFAULT_OPTIMIZER, MNIST_CLASSES
from ffbench.units import MIB

SHOWN_BACKPROPS = ("bp", "bp-lean")  # named in every line beside the strongest
CHANCE = 1 / MNIST_CLASSES
NEAR_CHANCE = 2 * CHANCE  # an accuracy below this learnt next to nothing
MULTIPLE_FROM = 2  # "needs 4.3 times as much" from this ratio, "needs 48% more" below it


def ratio_text(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def mib_text(value: float) -> str:
    mib = value / MIB
    return f"{mib:,.0f} MiB" if abs(mib) >= 100 else f"{mib:,.1f} MiB"


def outcome_text(c: Comparison) -> str:
    """'saves 9% from depth 14 on', 'needs 48% more', 'about the same (0.4% apart)'."""
    if c.about_same:
        apart = abs(c.difference_bytes)
        rule = (f"{apart / c.baseline_bytes:.1%} apart" if apart < SAME_FRACTION * c.baseline_bytes
                else f"{mib_text(apart)} apart")
        return f"about the same ({rule})"
    share = f"{abs(1 - c.ratio):.0%}"
    if c.ratio >= MULTIPLE_FROM:
        return f"needs {c.ratio:.1f} times as much"
    if c.ratio > 1:
        return f"needs {share} more"
    if c.below_from == c.first_depth:
        return f"saves {share} at every depth"
    if c.below_from == c.deepest:
        return f"saves {share} at the deepest depth only"
    return f"saves {share} from depth {c.below_from} on"


def _baseline_name(c: Comparison, group: Group) -> str:
    if c.baseline == STRONGEST and len(group.backprops) > 1:
        return f"the strongest backprop, {c.backprop}"
    return c.backprop


def _strongest(c: Comparison, group: Group) -> str:
    """'the strongest backprop (bp)', or the only backprop's name."""
    return f"the strongest backprop ({c.backprop})" if len(group.backprops) > 1 else c.backprop


def _only(group: Group) -> str:
    return ", the only backprop run" if len(group.backprops) == 1 else ""


def _against(c: Comparison, group: Group, depth: int) -> str:
    """'0.91x the strongest backprop, bp-lean (2,460 vs 2,712 MiB): saves 9% from depth 14
    on'."""
    at = "" if c.deepest == depth else f" at {c.deepest} layers"
    pair = f"{mib_text(c.bytes).removesuffix(' MiB')} vs {mib_text(c.baseline_bytes)}"
    return (f"{ratio_text(c.ratio)} {_baseline_name(c, group)}{at} ({pair}{_only(group)}): "
            f"{outcome_text(c)}")


def _reach(c: Comparison, group: Group) -> str:
    """Where one side reached deeper than the depth compared, say so."""
    parts = []
    if c.algorithm_deepest > c.deepest:
        parts.append(f"{display_name(c.algorithm)} reached {c.algorithm_deepest}")
    if c.baseline_deepest > c.deepest:
        several = c.baseline == STRONGEST and len(group.backprops) > 1
        name = "the backprops" if several else c.backprop
        parts.append(f"{name} reached {c.baseline_deepest}")
    return f" (the deepest both reached; {', '.join(parts)})" if parts else ""


def _variant_line(v: Verdict, group: Group, algorithm: str) -> str | None:
    """'Base FF, larger of train and fair eval at 47 layers: 0.91x the strongest backprop,
    bp-lean (...): saves 9% from depth 14 on; 0.61x bp (...): saves 39% from depth 7 on.'"""
    phase = v.headline_phase(group)
    strongest = v.find(algorithm, STRONGEST, phase, group)
    if strongest is None:
        return None
    depth = strongest.deepest
    parts = [_against(strongest, group, depth)]
    for name in SHOWN_BACKPROPS:
        c = v.find(algorithm, name, phase, group)
        if c is not None and name != strongest.backprop:
            parts.append(_against(c, group, depth))
    return (f"{display_name(algorithm)}, {phase} at {depth} layers{_reach(strongest, group)}: "
            + "; ".join(parts) + ".")


def _published_line(v: Verdict, group: Group) -> str | None:
    found = [v.find(a, STRONGEST, EVAL_PUBLISHED, group) for a in group.variants]
    text = "; ".join(
        f"{display_name(c.algorithm)} {ratio_text(c.ratio)} {_strongest(c, group)} at "
        f"{c.deepest} layers: {outcome_text(c)}" for c in found if c is not None)
    return text and ("Eval as published (eval_chunk 0: every label of the whole eval batch "
                     f"at once, {MNIST_CLASSES}x its rows): {text}.")


def _shift_line(v: Verdict, group: Group) -> str | None:
    """'With sgd instead of adam (larger of train and fair eval, against the strongest
    backprop, 47 layers): Base FF from 0.91x to 0.81x (bp-lean); ...'."""
    mine = [s for s in v.shifts if (s.source, s.dtype, s.batch_size, s.hidden)
            == (group.source, group.dtype, group.batch_size, group.hidden)
            and s.reference == group.optimizer]
    rank = {name: i for i, name in enumerate(algorithm_order(s.algorithm for s in mine))}
    mine.sort(key=lambda s: rank[s.algorithm])
    sentences = []
    for other, phase in dict.fromkeys((s.other, s.phase) for s in mine):
        moves = [s for s in mine if (s.other, s.phase) == (other, phase)]
        depths = {d for s in moves for d in (s.reference_depth, s.other_depth)}
        at = f", {depths.pop()} layers" if len(depths) == 1 else ""
        items = []
        for s in moves:
            where = (f" ({s.reference_backprop})" if s.reference_backprop == s.other_backprop
                     else f" ({s.reference_backprop} -> {s.other_backprop})")
            if not at:
                where += f" at {s.reference_depth} / {s.other_depth} layers"
            items.append(f"{display_name(s.algorithm)} from {ratio_text(s.reference_ratio)} to "
                         f"{ratio_text(s.other_ratio)}{where}")
        sentences.append(f"With {other} instead of {group.optimizer} ({phase}, against the "
                         f"strongest backprop{at}): " + "; ".join(items) + ".")
    return " ".join(sentences) or None


def _time_line(v: Verdict, group: Group) -> str | None:
    """'Time per train step (adam, median, measured on cpu, 8 layers): Base FF 1.21x bp's,
    1.10x bp-lean's.' Against bp, bp-lean and the strongest backprop by memory."""
    mine = [t for t in v.times if t.key == group.key]
    per_variant = []
    for algorithm in group.variants:
        timed = [t for t in mine if t.algorithm == algorithm]
        shown = [t for t in timed if t.baseline in SHOWN_BACKPROPS]
        named = {t.backprop for t in shown}
        shown += [t for t in timed if t.baseline == STRONGEST and t.backprop not in named]
        if shown:
            per_variant.append(display_name(algorithm) + " " + ", ".join(
                f"{ratio_text(t.ratio)} {t.backprop}'s"
                + (" (the strongest by memory)" if t.baseline == STRONGEST else "")
                + ("" if t.depth == mine[0].depth else f" at {t.depth} layers")
                for t in shown))
    if not per_variant:
        return None
    return (f"Time per train step ({group.optimizer}, median, measured on "
            f"{mine[0].measured_on}, {mine[0].depth} layers): " + "; ".join(per_variant) + ".")


def _spread(accuracy: float, low: float, high: float, runs: int) -> str:
    """'93.8% (93.1-94.0, 3 seeds)', or '93.8%' for one cell."""
    return (f"{accuracy:.1%}" if runs < 2
            else f"{accuracy:.1%} ({low:.1%}-{high:.1%}, median of {runs})")


def _accuracy_line(v: Verdict, group: Group) -> str | None:
    """'Test accuracy (adam, mnist-5k, 20 epoch(s)): Base FF 91.0% (90.2%-91.5%, median of 3)
    vs bp's 95.0% (...) (-4.0 points) at 2 layers.'"""
    mine = [a for a in v.accuracies if a.key == group.key]
    if not mine:
        return None
    text = "; ".join(
        f"{display_name(a.algorithm)} {_spread(a.accuracy, a.low, a.high, a.runs)} vs bp's "
        f"{_spread(a.baseline_accuracy, a.baseline_low, a.baseline_high, a.baseline_runs)} "
        f"({a.points:+.1f} points) at {a.depth} layers" for a in mine)
    near = any(min(a.accuracy, a.baseline_accuracy) < NEAR_CHANCE for a in mine)
    chance = (f"; near chance ({CHANCE:.0%}) is trained too little to judge" if near else "")
    return (f"Test accuracy ({group.optimizer}, {mine[0].dataset}, {mine[0].epochs} "
            f"epoch(s)): {text}{chance}.")


def accuracy_lines(v: Verdict) -> list[str]:
    """Each group's test accuracy line (the README's accuracy answer)."""
    return [line for group in v.groups if (line := _accuracy_line(v, group)) is not None]


def _by_size(v: Verdict) -> dict[tuple[Any, ...], list[Group]]:
    """Groups by everything but the optimizer, the reference optimizer's first."""
    sized: dict[tuple[Any, ...], list[Group]] = {}
    for group in v.groups:
        sized.setdefault((group.source, group.dtype, group.batch_size, group.hidden),
                         []).append(group)
    for members in sized.values():
        members.sort(key=lambda g: (g.optimizer != DEFAULT_OPTIMIZER, g.optimizer))
    return sized


def _rules(v: Verdict) -> str:
    backprops = algorithm_order({name for g in v.groups for name in g.backprops})
    strongest = (f"the strongest backprop: at each depth the lowest of {', '.join(backprops)}; "
                 if len(backprops) > 1 else "")
    return (f"Peaks over backprop's at the deepest depth both reached; {strongest}fair eval: "
            f"FF's replicated eval rows never exceed the eval batch; about the same: under "
            f"{SAME_FRACTION:.0%} or {SAME_BYTES // MIB} MiB apart.")


def _header(group: Group, others: list[str]) -> str:
    eval_batch = ("" if group.eval_batch_size == group.batch_size
                  else f", eval batch {group.eval_batch_size}")
    more = f" ({', '.join(others)} below)" if others else ""
    return (f"Verdict, {group.source}: {group.measure}; batch {group.batch_size}{eval_batch}, "
            f"hidden {group.hidden}, {group.dtype}, {group.optimizer}{more}.")


def verdict_lines(v: Verdict) -> list[str]:
    """The rules once, then per results folder, dtype, batch size and width: each FF
    variant's headline phase against the strongest backprop (named), bp and bp-lean, under
    the reference optimizer; eval as published; how the answer moves with the optimizer;
    time and accuracy where measured; what these results cannot say."""
    if not v.groups:
        return ["Verdict: no successful cells to compare."]
    lines = [_rules(v)]
    for members in _by_size(v).values():
        group = members[0]
        lines.append(_header(group, [g.optimizer for g in members[1:]]))
        lines += [line for a in group.variants if (line := _variant_line(v, group, a))]
        lines += [line for line in (_published_line(v, group), _shift_line(v, group)) if line]
        lines += [line for g in members for line in (_time_line(v, g), _accuracy_line(v, g))
                  if line]
        notes = list(dict.fromkeys(note for g in members for note in g.notes))
        if notes:
            lines.append("; ".join(notes).capitalize() + ".")
    return lines


def _cell(c: Comparison | None, depth: int, named: bool) -> str:
    """'0.91x, from 14' (the depth from which it is below), '1.48x, never', '1.00x, about
    the same'; `named`: the backprop it was, in brackets."""
    if c is None:
        return "-"
    if c.about_same:
        since = "about the same"
    elif c.below_from is None:
        since = "never"
    else:
        since = f"from {c.below_from}"
    at = "" if c.deepest == depth else f" at {c.deepest}"
    return f"{ratio_text(c.ratio)}{at}, {since}" + (f" ({c.backprop})" if named else "")


def verdict_table(v: Verdict) -> tuple[list[str], list[list[str]]]:
    """(columns, rows): per FF variant, phase and optimizer, against each backprop present
    and the strongest (when several): the ratio at the deepest depth both reached and the
    depth from which the variant is below ("never": not below at the deepest depth)."""
    backprops = algorithm_order({name for g in v.groups for name in g.backprops})
    strongest = len(backprops) > 1
    settings = {"results": "source", "dtype": "dtype", "batch": "batch_size",
                "hidden": "hidden"}
    varying = [title for title, field in settings.items()
               if len({getattr(g, field) for g in v.groups}) > 1]
    columns = (varying + ["FF variant", "phase", "optimizer", "layers"]
               + [f"vs {name}" for name in backprops]
               + (["vs the strongest backprop"] if strongest else []))
    rows = []
    for members in _by_size(v).values():
        for algorithm in algorithm_order({a for g in members for a in g.variants}):
            for phase in PHASES:
                for group in members:
                    reference = v.find(algorithm, STRONGEST, phase, group)
                    if reference is None:
                        continue
                    depth = reference.deepest
                    rows.append(
                        [str(getattr(group, settings[title])) for title in varying]
                        + [display_name(algorithm), phase, group.optimizer, str(depth)]
                        + [_cell(v.find(algorithm, name, phase, group), depth, False)
                           for name in backprops]
                        + ([_cell(reference, depth, True)] if strongest else []))
    return columns, rows


ANSWER_PHASES = (LARGER, EVAL_PUBLISHED)  # what the answer at a glance shows


def answer_table(v: Verdict) -> tuple[list[str], list[list[str]]]:
    """The verdict at a glance for the first size in it (the README's table): per FF variant
    and phase (the larger of train and fair eval; eval as published), per optimizer, its
    ratio to bp, to bp-lean and to the strongest backprop (named), with the depth from
    which it stays below."""
    members = next(iter(_by_size(v).values()))
    columns = ["FF variant, phase"]
    for group in members:
        columns += [f"{group.optimizer}: vs bp", "vs bp-lean", "vs the strongest"]
    rows = []
    for phase in ANSWER_PHASES:
        for algorithm in algorithm_order({a for g in members for a in g.variants}):
            found = [v.find(algorithm, STRONGEST, phase, g) for g in members]
            if all(c is None for c in found):
                continue
            row = [f"{display_name(algorithm)}, {phase}"]
            for group, strongest in zip(members, found, strict=True):
                depth = strongest.deepest if strongest else 0
                row += [_cell(v.find(algorithm, name, phase, group), depth, False)
                        for name in SHOWN_BACKPROPS]
                row.append(_cell(strongest, depth, True))
            rows.append(row)
    return columns, rows


def answer_lines(v: Verdict) -> list[str]:
    """The answer at a glance as markdown (the README opens with it): what was compared, the
    table, and which FF variants need less memory than the strongest backprop."""
    members = next(iter(_by_size(v).values()))
    group = members[0]
    depths = {c.deepest for c in v.comparisons if c.phase == LARGER}
    backprops = algorithm_order({name for g in members for name in g.backprops})
    columns, rows = answer_table(v)
    saving = []
    for g in members:
        below = [c for a in g.variants if (c := v.find(a, STRONGEST, LARGER, g))
                 and c.ratio < 1 and not c.about_same]
        named = ", ".join(f"{display_name(c.algorithm)} ({ratio_text(c.ratio)})" for c in below)
        saving.append(f"with {g.optimizer}: {named or 'none'}")
    return [
        f"{group.measure.capitalize()}: hidden {group.hidden}, batch {group.batch_size}, "
        f"{group.dtype}, at {max(depths)} layers. Each cell: the FF variant's peak over the "
        f"backprop's, and the depth from which it stays below. The strongest backprop is, at "
        f"each depth, the lowest of {', '.join(backprops)}; the larger phase is the larger of "
        "train and eval, FF's eval holding no more rows than the eval batch.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Below the strongest backprop in the larger phase: " + "; ".join(saving) + ".",
    ]
