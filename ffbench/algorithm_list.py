"""`ffbench algorithms`: every algorithm with its summary, and each plugin that cannot be
used with why. Plugins are loaded in child processes (runner.isolated), each given a time
limit: what one does as it loads (print, exit, crash, block) is its line, never this
command's end."""

from __future__ import annotations

from typing import Any

from ffbench.algorithms.registry import BUILTIN, clashing_plugins, load, plugin_entry_points
from ffbench.runner.isolated import LOAD_TIMEOUT_S, run_each

FACTS_JOB = "ffbench.algorithms.registry:facts"


def plugin_facts(timeout_s: float) -> dict[str, dict[str, Any] | str]:
    """Each plugin's facts (`registry.facts`), or why it cannot be used."""
    plugins = sorted(plugin_entry_points())
    answers = run_each(FACTS_JOB, plugins, timeout_s) if plugins else []
    return {name: answer.value if answer.error is None else answer.error
            for name, answer in zip(plugins, answers, strict=True)}


def algorithm_lines(timeout_s: float = LOAD_TIMEOUT_S) -> list[str]:
    """"name  summary" per usable algorithm, then "name  unusable: why" per bad plugin."""
    facts = plugin_facts(timeout_s)
    usable = [(name, load(name).summary) for name in BUILTIN] + [
        (name, fact["summary"]) for name, fact in facts.items() if not isinstance(fact, str)]
    bad = [(name, reason) for name, reason in facts.items() if isinstance(reason, str)]
    bad += [(plugin.name, plugin.reason) for plugin in clashing_plugins()]
    width = max(len(name) for name, _ in usable + bad)
    return [f"{name:<{width}}  {' '.join(str(summary).split())}" for name, summary in usable] + [
        f"{name:<{width}}  unusable: {reason}" for name, reason in bad]
