"""Named settings: published setups, and this project's reference runs, by name.

A preset sets CellSpec fields (and algorithm options); an algorithm's own settings for a
preset are on its class (`preset_settings`), so reading them loads it (and torch). Settings
given explicitly on the command line win over both.

An algorithm's settings are read from its own class, never inherited: settings found for
one algorithm are not silently another's (a subclass that trains the same function says so,
`preset_settings = Parent.preset_settings`). A preset made of per-algorithm settings
(`per_algorithm`) refuses an algorithm that has none, rather than run it at the preset's
bare fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ffbench.algorithms import registry
from ffbench.algorithms.resolve import check
from ffbench.errors import BadInput
from ffbench.settings.cell import CellSpec, check_data


@dataclass(frozen=True)
class Preset:
    summary: str
    fields: dict[str, Any]  # CellSpec fields, for every algorithm
    per_algorithm: bool = False  # only algorithms with their own settings for it can use it

    def fields_for(self, name: str, algorithm: str) -> dict[str, Any]:
        """The preset's fields with the algorithm's own settings for it (its class's
        `preset_settings`) laid over them, options merging name by name."""
        extra = own_settings(algorithm).get(name)
        if extra is None and self.per_algorithm:
            raise BadInput(
                f"preset {name!r} has no settings for {algorithm!r} (its class's "
                f"preset_settings has no {name!r} entry); run it without --preset")
        extra = extra or {}
        options = {**self.fields.get("options", {}), **extra.get("options", {})}
        merged = {**self.fields, **extra}
        if options:
            merged["options"] = options
        return merged


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
    "mnist-5k-accuracy": Preset(
        "accuracy on the offline 5,000-digit MNIST subset (mnist-5k): each algorithm's own "
        "best settings found (its `preset_settings`; refused for an algorithm without them), "
        "reaching its `accuracy_target` within 3 CPU-minutes",
        fields={"dataset": "mnist-5k", "seed": 0, "threads": 1},
        per_algorithm=True,
    ),
}


def preset_lines() -> list[str]:
    """`ffbench presets`: each preset's name and summary, one line each."""
    width = max(map(len, PRESETS))
    return [f"{name:<{width}}  {preset.summary}" for name, preset in PRESETS.items()]


def own_settings(algorithm: str) -> Mapping[str, Mapping[str, Any]]:
    """The algorithm's preset settings as its own class states them (not inherited)."""
    cls = registry.load(algorithm)
    settings: Mapping[str, Mapping[str, Any]] = vars(cls).get("preset_settings", {})
    return settings


def preset_fields(name: str, algorithm: str) -> dict[str, Any]:
    """The CellSpec fields preset `name` sets for `algorithm`."""
    if name not in PRESETS:
        raise BadInput(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name].fields_for(name, algorithm)


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


def cell_spec(algorithm: str, given: dict[str, Any], preset: str | None = None) -> CellSpec:
    """The cell a command describes: the settings `given` (field -> value, only those the user
    gave), preset `preset` under them, CellSpec's defaults for the rest; its algorithm and
    options checked, and this host's data and device for it (BadInput, one line,
    otherwise)."""
    fields = apply_preset(preset, algorithm, {"algorithm": algorithm, **given}, set(given))
    spec = check(CellSpec(**fields))
    check_data(spec)
    if spec.device.startswith("cuda"):
        from ffbench.measure.cuda import check_device_available  # imports torch

        check_device_available(spec.device)
    return spec
