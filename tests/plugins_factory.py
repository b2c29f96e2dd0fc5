"""Plugins that misbehave, installed for real: a module and a distribution's metadata
(dist-info with an `ffbench.algorithms` entry point) in a folder put on PYTHONPATH, where
importlib.metadata finds them as pip would leave them. Each plugin is backprop under
another name that raises, exits, crashes, blocks or prints at import or in its step."""

from __future__ import annotations

from pathlib import Path

# what a plugin does, as Python statements (at its import, or at the top of its train step)
BEHAVIOURS = {
    "raises": "raise RuntimeError('plugin broke on purpose')",
    "exits": "raise SystemExit(3)",
    "interrupts": "raise KeyboardInterrupt",
    "os-exits": "import os; os._exit(7)",
    "segfaults": "import ctypes; ctypes.string_at(0)",
    "blocks": "import time; time.sleep(3600)",
    "prints": "print('a plugin talking on stdout', flush=True)",
    "behaves": "pass",
}
# only where cells run (a sweep's children carry the parent's pid): the sweep itself, which
# checks the plugin's options, imports it unharmed
IN_CELLS_ONLY = "import os\nif os.environ.get('FFBENCH_PARENT_PID'):\n    {action}\n"


def plugin_name(when: str, behaviour: str) -> str:
    return f"p-{when}-{behaviour}"


def write_plugin(root: Path, when: str, behaviour: str, *, in_cells_only: bool = False) -> str:
    """A plugin that does `behaviour` `when` ("import" or "step"), into `root` (a folder for
    PYTHONPATH); returns its algorithm name."""
    name = plugin_name(when, behaviour)
    module = name.replace("-", "_")
    action = BEHAVIOURS[behaviour]
    at_import = ""
    if when == "import":
        at_import = IN_CELLS_ONLY.format(action=action) if in_cells_only else action + "\n"
    step = action if when == "step" else "pass"
    (root / f"{module}.py").write_text(
        "from ffbench.algorithms.bp import Backprop\n"
        f"{at_import}\n"
        "class Plugin(Backprop):\n"
        f"    name = {name!r}\n"
        f"    display_name = {name!r}\n"
        "    summary = 'a plugin that misbehaves on purpose'\n"
        "    late_options = ()\n"
        "    preset_settings = {}\n"
        "    accuracy_target = None\n\n"
        "    def train_step(self, x, y):\n"
        f"        {step}\n"
        "        return super().train_step(x, y)\n\n\n"
        "ALGORITHM = Plugin\n")
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ffbench.algorithms]\n{name} = {module}:Plugin\n")
    return name


WIDE = {"COLUMNS": "200"}  # tables of a fresh process laid out wide enough to read
