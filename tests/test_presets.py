"""Presets: named settings on `ffbench run`, explicit flags winning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, Ran, ffbench_process

from ffbench.algorithms.presets import PRESETS, apply_preset, preset_fields
from ffbench.algorithms.registry import ALGORITHMS
from ffbench.errors import BadInput
from ffbench.settings.cell import CellSpec

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> Ran:
    return ffbench_process("run", *args)


def test_published_preset_is_the_published_benchmark() -> None:
    ff = preset_fields("published", "ff")
    assert (ff["hidden"], ff["batch_size"], ff["lr"], ff["goodness"], ff["threshold"]) == (
        2000, 2500, 0.03, "meansq", 2.0
    )
    assert preset_fields("published", "bp")["batch_size"] == 5000  # backprop: all real images


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_preset_makes_a_valid_cell(name: str, algorithm: str) -> None:
    if PRESETS[name].per_algorithm and name not in ALGORITHMS[algorithm].preset_settings:
        with pytest.raises(BadInput, match=f"has no settings for '{algorithm}'"):
            preset_fields(name, algorithm)  # refused, never run at the shared fields alone
        return
    fields = {"n_layers": 2, **preset_fields(name, algorithm)}
    if fields.get("dataset") == "mnist":
        fields["dataset"] = "mnist-5k"  # no MNIST directory here; the rest must still hold
    CellSpec(algorithm=algorithm, **fields)


def test_explicit_settings_win_and_options_merge() -> None:
    given = {"hidden": 64, "batch_size": 5000, "options": {"readout_from_layer": 1}}
    merged = apply_preset("mnist-5k-accuracy", "ff", given, explicit={"hidden", "options"})
    assert merged["hidden"] == 64  # explicit
    assert merged["batch_size"] == preset_fields("mnist-5k-accuracy", "ff")["batch_size"]
    assert merged["options"] == {"readout_from_layer": 1, "normalization": "rms"}  # by name


def test_bp_lean_takes_bps_accuracy_settings() -> None:
    # it trains the same function; every other algorithm's settings are its own class's
    assert preset_fields("mnist-5k-accuracy", "bp-lean") == preset_fields("mnist-5k-accuracy", "bp")


def test_unknown_preset_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown preset"):
        preset_fields("nope", "ff")


@pytest.mark.slow
def test_run_with_a_preset_and_an_override(tmp_path: Path) -> None:
    out = tmp_path / "row.json"
    result = run("ff", "--preset", "published", "--hidden", "64", "--batch-size", "32",
                 "--device", "meta", "--out", str(out))
    assert result.returncode == 0, result.stderr
    row = json.loads(out.read_text())
    assert (row["hidden"], row["batch_size"], row["lr"], row["threshold"]) == (64, 32, 0.03, 2.0)


UNSETTLED = "ff-unsettled"


@pytest.fixture
def unsettled_plugin(tmp_path: Path) -> Path:
    """A directory with an installed plugin's metadata and module: an FF subclass that states
    no preset settings of its own (those of its parent are not inherited)."""
    (tmp_path / "ff_unsettled.py").write_text(
        "from ffbench.algorithms.ff import ForwardForward\n\n\n"
        "class Unsettled(ForwardForward):\n"
        f"    name = {UNSETTLED!r}\n"
        "    display_name = 'unsettled FF'\n"
        "    summary = 'ff under another name, without preset settings'\n")
    info = tmp_path / "ff_unsettled-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ff-unsettled\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[ffbench.algorithms]\n{UNSETTLED} = ff_unsettled:Unsettled\n")
    return tmp_path


@pytest.mark.slow
def test_an_algorithm_without_accuracy_settings_is_refused(unsettled_plugin: Path) -> None:
    out = unsettled_plugin / "row.json"

    def run_plugin(*args: str) -> Ran:
        return ffbench_process("run", UNSETTLED, *args, "--out", out, plugins=unsettled_plugin)

    refused = run_plugin("--preset", "mnist-5k-accuracy")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"preset 'mnist-5k-accuracy' has no settings for '{UNSETTLED}'" in refused.stderr
    assert not out.exists()
    # a preset of the same fields for every algorithm still takes it
    ran = run_plugin("--preset", "published", "--hidden", "16", "--batch-size", "8",
                     "--device", "meta")
    assert ran.returncode == 0, ran.stderr


def test_run_with_an_unknown_preset_fails_in_one_line(tmp_path: Path, cli: Cli) -> None:
    result = cli("run", "ff", "--preset", "nope", "--out", tmp_path / "row.json")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown preset" in result.stderr
    assert not (tmp_path / "row.json").exists()
