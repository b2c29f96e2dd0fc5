"""The ffbench command line: thin commands that parse, validate and call the library.

Heavy modules (torch, pandas, seaborn) are imported inside the commands that need
them, after the input is validated, so bad input is refused in a fraction of a second.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.presets import PRESETS, apply_preset
from ffbench.spec import BadInput, CellSpec

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure what Forward-Forward training costs against backprop.",
)
console = Console()
err_console = Console(stderr=True)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """["iterations=8", "damping=0.3"] -> {"iterations": 8, "damping": 0.3} (JSON values)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise BadInput(f"--option {pair!r}: write NAME=VALUE")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def check_device_available(device: str) -> None:
    """Refuse a CUDA device this machine does not have (imports torch)."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise BadInput(f"--device {device}: CUDA is not available on this machine")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise BadInput(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")


def check_out_path(out: Path | None) -> None:
    if out is not None and out.is_dir():
        raise BadInput(f"--out {out} is a directory; give a file name like result.json")


# command-line parameter -> CellSpec field, where the names differ
_FIELD_OF_PARAMETER = {"layers": "n_layers", "warmup": "warmup_steps", "option": "options"}


def explicit_fields(ctx: typer.Context) -> set[str]:
    """CellSpec fields the user set on the command line (not left at their defaults)."""
    return {
        _FIELD_OF_PARAMETER.get(name, name)
        for name in ctx.params
        if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")  # type: ignore[union-attr]
    }


@app.command()
def run(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Argument(help="Registered algorithm (see `ffbench algorithms`).")],
    *,
    preset: Annotated[
        str | None,
        typer.Option(help="Named settings (see `ffbench presets`); explicit flags win."),
    ] = None,
    layers: Annotated[int, typer.Option(help="Number of hidden layers.")] = 2,
    hidden: Annotated[int, typer.Option(help="Units per hidden layer.")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Real images per train step.")] = 5000,
    eval_batch_size: Annotated[
        int | None, typer.Option(help="Images per eval batch [default: batch size].")
    ] = None,
    steps: Annotated[int, typer.Option(help="Timed train steps.")] = 5,
    warmup: Annotated[int, typer.Option(help="Warm-up train steps before measuring.")] = 2,
    epochs: Annotated[int, typer.Option(help="Epochs of training for test accuracy (real data).")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, or meta (predict only).")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    goodness: Annotated[str, typer.Option(help="FF goodness function.")] = "meansq",
    threshold: Annotated[
        float | None, typer.Option(help="FF goodness threshold [default: per goodness].")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate [default: per algorithm].")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads [default: torch's].")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data, weights and negatives.")] = 0,
    dataset: Annotated[str, typer.Option(help="synthetic, mnist or mnist-5k.")] = "synthetic",
    data_dir: Annotated[Path | None, typer.Option(help="Directory with torchvision's MNIST.")] = None,
    eval_chunk: Annotated[
        int, typer.Option(help="FF eval: replicated rows alive at once (0 = all).")
    ] = 0,
    option: Annotated[
        list[str] | None, typer.Option(help="Algorithm setting NAME=VALUE (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the full result row here (JSON).")] = None,
) -> None:
    """Measure one cell in this process and print a summary."""
    fields: dict[str, Any] = {
        "algorithm": algorithm, "n_layers": layers, "hidden": hidden, "batch_size": batch_size,
        "eval_batch_size": eval_batch_size, "steps": steps, "warmup_steps": warmup,
        "epochs": epochs, "device": device, "dtype": dtype, "goodness": goodness,
        "threshold": threshold, "lr": lr, "threads": threads, "seed": seed, "dataset": dataset,
        "data_dir": str(data_dir) if data_dir else None, "eval_chunk": eval_chunk,
        "options": parse_options(option or []),
    }
    spec = CellSpec(**apply_preset(preset, algorithm, fields, explicit_fields(ctx)))
    check_out_path(out)
    check_device_available(spec.device)
    if spec.device == "meta" and spec.epochs:
        raise BadInput("--device meta predicts memory only; it cannot train for accuracy")

    from ffbench.cell import run_cell_row
    from ffbench.results import write_row_json
    from ffbench.summary import cell_table

    row = run_cell_row(spec)
    console.print(cell_table(row))
    if out is not None:
        write_row_json(row, out)
        console.print(f"wrote {out}")
    if row["status"] != "ok":
        err_console.print(f"cell {row['status']}: {row['error']}")
        raise typer.Exit(1)


@app.command("presets")
def list_presets() -> None:
    """List the named settings `--preset` accepts, one line each."""
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.summary}")


@app.command("algorithms")
def list_algorithms() -> None:
    """List the registered algorithms, one line each."""
    width = max(map(len, ALGORITHMS))
    for name, info in ALGORITHMS.items():
        print(f"{name:<{width}}  {info.summary}")


def fail(message: str, code: int) -> None:
    print(f"ffbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except BadInput as exc:
        fail(str(exc), 2)
    except Exception as exc:
        # click's (or typer's own vendored click's) usage errors: duck-typed, so that
        # any typer version works
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            fail(exc.format_message(), exc.exit_code)
        if type(exc).__name__ == "Abort":
            fail("interrupted", 130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
