"""The cell settings' options come from one table: every command that takes a setting spells
it with the same flag and the same help, and a sweep file takes the same names."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from ffbench.cli import app
from ffbench.cli.options import option_help
from ffbench.settings.cell import SETTINGS, flag_of
from ffbench.sweep.spec import CELL_KEYS, GRID_KEYS, flag_of_key

COMMANDS = {"run": {}, "explain": {}, "sweep": {"grid": True}, "capacity": {"capacity": True}}


def options_of(command: str) -> dict[str, Any]:
    """--flag -> click parameter of one command."""
    group = typer.main.get_command(app)
    params = group.commands[command].params  # type: ignore[attr-defined]
    return {opt: param for param in params for opt in param.opts}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_takes_the_tables_settings_with_the_tables_help(command: str) -> None:
    shown = options_of(command)
    how = COMMANDS[command]
    expected = 0
    for name, setting in SETTINGS.items():
        if how.get("capacity") and not setting.capacity:
            assert f"--{flag_of(name)}" not in shown or name == "n_layers", name
            continue
        if command == "capacity" and name == "target_gpu":
            continue  # capacity's own: the GPU answered for, not a meta cell's setting
        grid = bool(how.get("grid") and setting.grid)
        flag = f"--{setting.grid.replace('_', '-')}" if grid else f"--{flag_of(name)}"
        assert flag in shown, f"{command} lacks {flag}"
        assert shown[flag].help == option_help(name, setting, grid=grid), (command, flag)
        expected += 1
    assert expected >= (7 if how.get("capacity") else 20)


def test_sweep_files_take_the_same_names_as_the_fields() -> None:
    assert set(CELL_KEYS) | {"layers", "batch_sizes", "hidden"} >= {
        name for name in SETTINGS if name not in ("n_layers", "batch_size")}
    assert set(GRID_KEYS) == {"algorithms", "layers", "batch_sizes", "hidden"}
    assert {key: flag_of_key(key) for key in ("warmup_steps", "options", "timeout_s")} == {
        "warmup_steps": "warmup", "options": "option", "timeout_s": "timeout"}
