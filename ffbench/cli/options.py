"""The cell settings' command-line options, generated from the settings table
(ffbench.settings.cell): one mechanism for run, sweep, explain and capacity, so every command
spells a setting the same way, with the same help.

`with_settings` adds the table's options to a command after its own parameters. Each
defaults to None, "not given" (a preset's value, else CellSpec's default, shown in the help);
the command receives the ones given as one dict, `settings` (CellSpec field -> value).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

import typer

from ffbench.settings.cell import SETTINGS, CellSpec, Setting, default_of, flag_of, value_of

Command = TypeVar("Command", bound=Callable[..., Any])
SETTINGS_PARAMETER = "settings"  # what a command receives the given settings as


def option_help(name: str, setting: Setting, *, grid: bool = False) -> str:
    """The help of a setting's option: the table's text, and its default where it has one."""
    if grid:
        return setting.grid_help
    default = default_of(name)
    if default in (None, {}):
        return setting.help
    shown = str(default).lower() if isinstance(default, bool) else default
    return f"{setting.help} (default: {shown})"


def _value_type(name: str) -> Any:
    """The Python type of a field's value as typed on the command line."""
    hint = get_type_hints(CellSpec)[name]
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    return hint


def option_parameter(name: str, setting: Setting, *, grid: bool = False) -> inspect.Parameter:
    """The keyword-only parameter (default None: not given) a command takes a setting as."""
    help_text = option_help(name, setting, grid=grid)
    kind = _value_type(name)
    annotation: Any
    if grid:
        parameter, flags, annotation = setting.grid, [f"--{setting.grid.replace('_', '-')}"], str
    elif kind is dict:
        parameter, flags, annotation = name, [f"--{flag_of(name)}"], list[str]
    elif kind is bool:
        flag = flag_of(name)
        parameter, flags, annotation = name, [f"--{flag}/--no-{flag}"], bool
    elif setting.text is not None:
        parameter, flags, annotation = name, [f"--{flag_of(name)}"], str
    elif name == "data_dir":
        parameter, flags, annotation = name, [f"--{flag_of(name)}"], Path
    else:
        parameter, flags, annotation = name, [f"--{flag_of(name)}"], kind
    option = typer.Option(*flags, help=help_text, show_default=False)
    return inspect.Parameter(parameter, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[annotation | None, option])


def given_value(name: str, value: Any) -> Any:
    """A field's value from what typer parsed (a path as text; a setting's own text rule)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        value = list(value)
    return value_of(name, value)


def with_settings(*, grid: bool = False, capacity: bool = False,
                  skip: tuple[str, ...] = ()) -> Callable[[Command], Command]:
    """Give a command the table's options. `grid`: the settings a sweep grid sets per cell
    take their grid key (`--layers 2..47`, `--batch-sizes`, `--hidden`), given as text for
    the sweep to expand, under the key's name; `capacity`: only the settings that change what
    memory a cell needs; `skip`: fields the command has as parameters of its own."""
    chosen = {name: setting for name, setting in SETTINGS.items()
              if name not in skip and (setting.capacity or not capacity)}

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        kept = [p for p in own.parameters.values() if p.name != SETTINGS_PARAMETER]
        on_grid = {name: grid and bool(setting.grid) for name, setting in chosen.items()}
        added = {name: option_parameter(name, setting, grid=on_grid[name])
                 for name, setting in chosen.items()}

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given: dict[str, Any] = {}
            for name, parameter in added.items():
                value = kwargs.pop(parameter.name, None)
                if value is None or value in ((), []):  # not given (or repeated 0 times)
                    continue
                if on_grid[name]:  # a range's text, under the grid key, for the sweep
                    given[parameter.name] = value
                else:
                    given[name] = given_value(name, value)
            return command(*args, **kwargs, **{SETTINGS_PARAMETER: given})

        parameters = [*kept, *added.values()]
        wrapper.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        if own.return_annotation is not inspect.Signature.empty:
            wrapper.__annotations__["return"] = own.return_annotation
        return wrapper  # type: ignore[return-value]

    return decorate
