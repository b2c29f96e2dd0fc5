"""The algorithms ffbench knows, by name: built-in modules and installed plugins.

A built-in algorithm is one module in this package exporting `ALGORITHM` (its `Algorithm`
subclass) and one line in BUILTIN. A plugin is an installed package declaring an entry
point in the group `ffbench.algorithms`: name = the algorithm's name, object = its class.

Names are known without importing torch (BUILTIN, and the entry points' metadata), so a
misspelt name is refused at once. Everything else about an algorithm (display name,
options, default learning rate, memory account) is on its class, and loading the class
imports torch: the facts have one home, the algorithm's own module.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from ffbench.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd

    from ffbench.algorithms.base import Algorithm

ENTRY_POINT_GROUP = "ffbench.algorithms"
BUILTIN: dict[str, str] = {
    "bp": "ffbench.algorithms.bp",
    "bp-lean": "ffbench.algorithms.bp_lean",
    "bp-offload": "ffbench.algorithms.bp_offload",
    "ff": "ffbench.algorithms.ff",
    "rff": "ffbench.algorithms.rff",
    "ff-progressive": "ffbench.algorithms.ff_progressive",
    "ff-layerwise": "ffbench.algorithms.ff_layerwise",
}
# What a class must define (the rest of the contract has defaults in Algorithm).
REQUIRED = ("name", "display_name", "summary", "default_lr")


class BadAlgorithm(BadInput):
    """An algorithm that cannot be used: its module does not import, or its class breaks
    the contract."""


@dataclass(frozen=True)
class BadPlugin:
    name: str
    reason: str  # one line


@functools.cache
def plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed plugins by name, those clashing with a built-in left out (clashing_plugins)."""
    found = entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep for ep in found if ep.name not in BUILTIN}


def clashing_plugins() -> list[BadPlugin]:
    return [
        BadPlugin(ep.name, f"{ep.value}: the name clashes with a built-in algorithm")
        for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name in BUILTIN
    ]


def names() -> list[str]:
    """Built-ins in registry order, then plugins sorted (torch-free)."""
    return [*BUILTIN, *sorted(plugin_entry_points())]


@functools.cache
def load(name: str) -> type[Algorithm]:
    """The algorithm's class; BadAlgorithm (one line) if it cannot be used."""
    from ffbench.algorithms.base import Algorithm

    if name not in BUILTIN and name not in plugin_entry_points():
        raise BadInput(f"unknown algorithm {name!r} (known: {', '.join(sorted(names()))})")
    try:
        if name in BUILTIN:
            cls = importlib.import_module(BUILTIN[name]).ALGORITHM
        else:
            cls = plugin_entry_points()[name].load()
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        # a plugin's import may fail in any way, exiting included; one line says how
        reason = " ".join(f"{type(exc).__name__}: {exc}".split()).rstrip(":")
        raise BadAlgorithm(f"algorithm {name!r} does not load: {reason}") from exc
    if not (inspect.isclass(cls) and issubclass(cls, Algorithm)):
        raise BadAlgorithm(f"algorithm {name!r}: {cls!r} is not an Algorithm subclass")
    missing = [attribute for attribute in REQUIRED if not hasattr(cls, attribute)]
    if missing:
        raise BadAlgorithm(f"algorithm {name!r}: its class lacks {', '.join(missing)}")
    if inspect.isabstract(cls):
        undefined = ", ".join(sorted(cls.__abstractmethods__))
        raise BadAlgorithm(f"algorithm {name!r}: its class does not define {undefined}")
    if cls.name != name:
        raise BadAlgorithm(f"algorithm {name!r}: its class is named {cls.name!r}")
    return cls  # type: ignore[no-any-return]


def usable() -> list[type[Algorithm]]:
    """The classes of every algorithm that loads, in `names()` order."""
    classes = []
    for name in names():
        try:
            classes.append(load(name))
        except BadAlgorithm:
            continue
    return classes


def load_failure(name: str) -> BadInput | None:
    """Why `name`'s class does not load here (not installed, or a plugin that fails to
    load: BadAlgorithm), or None where it does."""
    try:
        load(name)
    except BadInput as exc:
        return exc
    return None


def facts(name: str) -> dict[str, Any]:
    """What `ffbench algorithms` shows of an algorithm (asked of plugins in a child process:
    ffbench.algorithm_list)."""
    return {"summary": load(name).summary}


def display_name(name: str) -> str:
    """How figures and reports call the algorithm ("Base FF"); the name itself when unknown."""
    try:
        return load(name).display_name
    except BadInput:
        return name


def is_backprop(name: str) -> bool:
    """Whether the algorithm is a backprop baseline (its class's `baseline`); a name the
    registry cannot load is not one."""
    try:
        return load(name).baseline
    except BadInput:
        return False


class _Registry(Mapping[str, "type[Algorithm]"]):
    """Name -> class, loading a class on first access; iterating lists names (torch-free)."""

    def __getitem__(self, name: str) -> type[Algorithm]:
        return load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in BUILTIN or name in plugin_entry_points())


ALGORITHMS: Mapping[str, type[Algorithm]] = _Registry()


def algorithm_order(names: Iterable[str]) -> list[str]:
    """Registered algorithms in registry order, then unknown names sorted."""
    present = set(names)
    return [n for n in ALGORITHMS if n in present] + sorted(present - set(ALGORITHMS))


def algorithm_rank(names: Iterable[str]) -> dict[str, int]:
    """Each name's position in `algorithm_order`."""
    return {name: i for i, name in enumerate(algorithm_order(names))}


def by_algorithm_order(column: pd.Series) -> pd.Series:
    """A `sort_values` key: the `algorithm` column by registry order, others as they are."""
    return column.map(algorithm_rank(column)) if column.name == "algorithm" else column

