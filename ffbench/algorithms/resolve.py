"""A cell as its algorithm sees it: the algorithm checked and its options with it, every
default filled in (learning rate, threshold, options, eval batch and chunk), and the
identity its cell id is the hash of.

Loading an algorithm's class imports torch (its facts live in its own module), so checking
or resolving a cell does; a CellSpec itself is torch-free (ffbench.settings.cell).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ffbench.algorithms import registry
from ffbench.errors import BadInput
from ffbench.goodness import GOODNESS
from ffbench.settings.cell import (
    DEFAULT_OPTIMIZER,
    GOODNESS_ONLY,
    PREDICTED_DEVICE,
    CellSpec,
    cell_id_of,
    default_of,
)
from ffbench.settings.gpus import DEFAULT_GPU

# Settings added after cells were stored: left out of the identity at their defaults, so
# those cells keep their ids.
LATE_FIELDS = {"optimizer": DEFAULT_OPTIMIZER, "target_gpu": DEFAULT_GPU}
# What a setting that does not act in an algorithm counts as in its identity: the value
# every such cell had before these settings stopped counting for it (its id holds).
NEUTRAL_EVAL_CHUNK = 0


def check(spec: CellSpec) -> CellSpec:
    """`spec`, its algorithm known and its options valid (BadInput, one line, otherwise):
    of their default's type (true is not a number), those that count layers 0 or more."""
    if spec.algorithm not in registry.ALGORITHMS:
        known = ", ".join(sorted(registry.ALGORITHMS))
        raise BadInput(f"unknown algorithm {spec.algorithm!r} (known: {known})")
    info = registry.load(spec.algorithm)
    for name, value in spec.options.items():
        default = info.options.get(name)
        if isinstance(value, bool) and name in info.options and not isinstance(default, bool):
            raise BadInput(f"option {name}={str(value).lower()} should be a "
                           f"{type(default).__name__}")
        if name in info.layer_options and isinstance(value, int) and value < 0:
            raise BadInput(f"option {name} counts layers: 0 or more, got {value}")
    info.check_options(spec.options)
    return spec


def _acting(options: dict[str, Any], spec: CellSpec, info: type[Any]) -> dict[str, Any]:
    """Options that count layers as they act at this depth: a value beyond the most one can
    act as (`layer_options`) is that most (its default where the default acts so too), so
    that one measurement has one cell id."""
    acting = dict(options)
    for name, offset in info.layer_options.items():
        most = spec.n_layers + offset
        if name in acting and acting[name] > most:
            default = info.options[name]
            acting[name] = default if min(default, most) == most else most
    return acting


def applies(name: str, algorithm: str) -> bool:
    """Whether setting `name` acts in `algorithm` (FF-family settings act only in
    goodness-based algorithms)."""
    return name not in GOODNESS_ONLY or not registry.load(algorithm).baseline


def resolved(spec: CellSpec) -> CellSpec:
    """The same cell with every defaulted setting filled in."""
    info = registry.load(spec.algorithm)
    eval_batch = spec.eval_batch_size or spec.batch_size
    return dataclasses.replace(
        spec,
        eval_batch_size=eval_batch,
        lr=info.default_lr if spec.lr is None else spec.lr,
        threshold=(GOODNESS[spec.goodness].default_threshold(spec.hidden)
                   if spec.threshold is None else spec.threshold),
        eval_chunk=eval_batch if spec.eval_chunk is None else spec.eval_chunk,
        options={**info.options, **spec.options},
    )


def identity(spec: CellSpec, *, legacy: bool = False) -> dict[str, Any]:
    """The resolved fields that decide what is measured (paths excluded). Settings added
    later are left out at their defaults (the optimizer, the target GPU, an algorithm's
    late options), and settings that do not act in the algorithm count as their neutral
    values (the goodness default, its threshold, eval_chunk 0), so that ids made before
    hold; an option that counts layers as it acts (`_acting`). `legacy`: the identity before
    those rules (a setting that does nothing still counted)."""
    info = registry.load(spec.algorithm)
    if info.baseline and not legacy:
        spec = dataclasses.replace(
            spec, goodness=default_of("goodness"), threshold=None,
            eval_chunk=NEUTRAL_EVAL_CHUNK)
    fields = dataclasses.asdict(resolved(spec))
    fields.pop("data_dir")
    if not legacy:
        fields["options"] = _acting(fields["options"], spec, info)
    for name, default in LATE_FIELDS.items():
        if fields[name] == default:
            fields.pop(name)
    fields["options"] = {
        name: value for name, value in fields["options"].items()
        if not (name in info.late_options and value == info.options[name])
    }
    return fields


def cell_id(spec: CellSpec) -> str:
    """A stable 12-hex-digit name: the same cell gives the same id on any machine."""
    return cell_id_of(identity(spec))


def identity_columns(spec: CellSpec, sweep_id: str) -> dict[str, Any]:
    """The identity columns of a result row (results.IDENTITY) for this cell; a setting
    that does not act in the algorithm is null."""
    columns = {
        "sweep_id": sweep_id, "cell_id": cell_id(spec), "optimizer": spec.optimizer,
        **identity(spec),
        "target_gpu": spec.target_gpu if spec.device == PREDICTED_DEVICE else None,
    }
    for name in GOODNESS_ONLY:
        if not applies(name, spec.algorithm):
            columns[name] = None
    return columns
