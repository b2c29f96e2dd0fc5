"""Named settings: published setups, and this project's reference runs, by name.

A preset sets CellSpec fields (and algorithm options), some of them for one algorithm only;
settings given explicitly on the command line win over it. Pure Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ffbench.spec import BadInput


@dataclass(frozen=True)
class Preset:
    summary: str
    fields: dict[str, Any]  # CellSpec fields, for every algorithm
    # fields for one algorithm, laid over `fields` (options merge name by name)
    per_algorithm: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fields_for(self, algorithm: str) -> dict[str, Any]:
        extra = self.per_algorithm.get(algorithm, {})
        options = {**self.fields.get("options", {}), **extra.get("options", {})}
        merged = {**self.fields, **extra}
        if options:
            merged["options"] = options
        return merged


# Each algorithm's settings that reached the targets on mnist-5k (4,000 training,
# 1,000 test digits) within 3 minutes of one CPU core; how they were found: README, "Accuracy".
_FF_5K = {
    "n_layers": 2, "hidden": 500, "batch_size": 250, "epochs": 60,
    # Hinton's top-k relative: only the most active units count; every layer reads out
    # (the first layer alone is the most accurate on 4,000 images)
    "goodness": "topk_meansq", "options": {"readout_from_layer": 0},
}
MNIST_5K_ACCURACY = Preset(
    "accuracy on the offline 5,000-digit MNIST subset (mnist-5k): each algorithm's settings "
    "that reach bp 94%, ff 90%, rff 85% within 3 CPU-minutes",
    fields={"dataset": "mnist-5k", "seed": 0, "threads": 1},
    per_algorithm={
        "bp": {"n_layers": 2, "hidden": 1000, "batch_size": 100, "epochs": 20, "lr": 1e-3},
        "ff": _FF_5K,
        "ff-progressive": _FF_5K,
        "ff-layerwise": _FF_5K,
        "rff": {
            "n_layers": 2, "hidden": 256, "batch_size": 100, "epochs": 10,
            "goodness": "topk_meansq",
        },
    },
)

PRESETS: dict[str, Preset] = {
    "published": Preset(
        "the published FF-vs-backprop memory benchmark: hidden 2000, Adam lr 0.03; FF "
        "variants 2500 real + 2500 negative rows per step (its 5000-row batch), meansq "
        "goodness, threshold 2; backprop 5000 images per step. It trained 1 epoch on MNIST "
        "(add --dataset mnist --data-dir DIR --epochs 1 for that accuracy)",
        fields={
            "hidden": 2000, "batch_size": 2500, "lr": 0.03, "goodness": "meansq",
            "threshold": 2.0,
        },
        per_algorithm={"bp": {"batch_size": 5000}},
    ),
    "hinton-4x2000": Preset(
        "Hinton (2022), supervised FF on MNIST: 4 hidden layers of 2000 ReLUs, sum of squares "
        "goodness, read out from every layer but the first, 60 epochs, mini-batches of 100 "
        "(as in his released Matlab code); needs --data-dir with MNIST",
        fields={
            "n_layers": 4, "hidden": 2000, "goodness": "sumsq", "batch_size": 100,
            "epochs": 60, "dataset": "mnist",
        },
    ),
    "mnist-5k-accuracy": MNIST_5K_ACCURACY,
}


def preset_fields(name: str, algorithm: str) -> dict[str, Any]:
    """The CellSpec fields preset `name` sets for `algorithm`."""
    if name not in PRESETS:
        raise BadInput(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name].fields_for(algorithm)


def apply_preset(
    name: str | None, algorithm: str, given: dict[str, Any], explicit: set[str]
) -> dict[str, Any]:
    """CellSpec fields: `given` (every field the command line knows, defaults included)
    with preset `name` laid over the ones not in `explicit`; options merge name by name,
    the explicit ones winning."""
    if name is None:
        return given
    preset = preset_fields(name, algorithm)
    merged = {**given, **{k: v for k, v in preset.items() if k not in explicit}}
    merged["options"] = {**preset.get("options", {}), **given.get("options", {})}
    return merged
