"""The registry: built-ins and entry-point plugins by name, bad plugins one line each, and
the example plugin installed, listed and swept next to bp (real pip, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import ffbench_process

from ffbench.algorithms import registry
from ffbench.algorithms.resolve import check
from ffbench.errors import BadInput
from ffbench.settings.cell import CellSpec

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "plugin"
PLUGIN_NAME = "ff-symba"
# entry points of a distribution that breaks the contract in every way the registry checks
BAD_ENTRY_POINTS = {
    "broken": "no_such_module_anywhere:Algo",  # does not import
    "not-a-class": "json:dumps",  # not an Algorithm subclass
    "misnamed": "ffbench.algorithms.ff:ForwardForward",  # its class says it is "ff"
    "bp": "ffbench.algorithms.ff:ForwardForward",  # clashes with a built-in
}


@pytest.fixture
def bad_plugins(tmp_path: Path) -> Path:
    """A directory holding an installed distribution's metadata (found by importlib.metadata
    on sys.path, as pip would leave it) declaring the bad entry points."""
    info = tmp_path / "ffbench_bad_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ffbench-bad-plugins\n"
                                   "Version: 0.1\n")
    lines = [f"{name} = {target}" for name, target in BAD_ENTRY_POINTS.items()]
    (info / "entry_points.txt").write_text("[ffbench.algorithms]\n" + "\n".join(lines) + "\n")
    return tmp_path


def test_builtins_are_listed_in_registry_order_without_torch() -> None:
    code = ("import sys; from ffbench.algorithms import registry; "
            "print(registry.names()[:len(registry.BUILTIN)], 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.stdout.split("] ")[1].strip() == "False", done.stderr
    assert list(registry.BUILTIN) == registry.names()[:len(registry.BUILTIN)]


def test_display_names() -> None:
    assert [registry.display_name(name) for name in registry.BUILTIN] == [
        "backprop", "lean backprop", "offloading backprop", "Base FF", "Recurrent FF",
        "progressive FF", "layer-wise FF"]
    assert registry.display_name("no-such-algorithm") == "no-such-algorithm"


def test_unknown_algorithm_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown algorithm 'nope'"):
        check(CellSpec("nope", n_layers=1))


@pytest.mark.slow
def test_bad_plugins_are_one_line_each_and_break_nothing(bad_plugins: Path) -> None:
    listed = ffbench_process("algorithms", plugins=bad_plugins)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:len(registry.BUILTIN)]] == list(registry.BUILTIN)
    unusable = {line.split()[0]: line for line in lines if "unusable:" in line}
    assert set(unusable) == set(BAD_ENTRY_POINTS)
    assert "ModuleNotFoundError" in unusable["broken"]
    assert "not an Algorithm subclass" in unusable["not-a-class"]
    assert "named 'ff'" in unusable["misnamed"]
    assert "clashes with a built-in" in unusable["bp"]
    # the built-in bp is untouched by the clashing plugin; a bad plugin is refused in one line
    ran = ffbench_process("run", "bp", "--layers", "1", "--hidden", "16", "--batch-size", "8",
                          "--device", "meta", "--out", str(bad_plugins / "bp.json"),
                          plugins=bad_plugins)
    assert ran.returncode == 0, ran.stderr
    refused = ffbench_process("run", "broken", "--out", str(bad_plugins / "x.json"),
                              plugins=bad_plugins)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "does not load" in refused.stderr and not (bad_plugins / "x.json").exists()


@pytest.fixture(scope="module")
def installed_plugin() -> Iterator[None]:
    """examples/plugin installed into this test environment (editable, offline), and
    uninstalled afterwards unless it was installed before."""
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    was_installed = PLUGIN_NAME in ffbench_process("algorithms").stdout
    subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", "-e", str(PLUGIN)],
                   check=True, capture_output=True, timeout=300)
    yield
    if not was_installed:
        subprocess.run([*pip, "uninstall", "-y", "ffbench-symba"], check=True,
                       capture_output=True, timeout=300)


@pytest.mark.slow
def test_the_example_plugin_is_swept_next_to_bp(installed_plugin: None, tmp_path: Path) -> None:
    # adding it touched no file of ffbench: nothing there names it
    for path in (REPO / "ffbench").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml"):
            assert PLUGIN_NAME not in path.read_text(), path
    listed = ffbench_process("algorithms")
    assert any(line.startswith(PLUGIN_NAME + " ") for line in listed.stdout.splitlines())
    out = tmp_path / "sweep"
    swept = ffbench_process("sweep", "--algorithms", f"bp,{PLUGIN_NAME}", "--layers", "1,2",
                            "--hidden", "32", "--batch-sizes", "16", "--steps", "1",
                            "--warmup", "1", "--threads", "1", "--device", "cpu", "--out", out)
    assert swept.returncode == 0, swept.stderr
    rows = pd.read_parquet(out / "results.parquet")
    # the published grid's FF eval both ways (at equal rows: 16, the eval batch; as published:
    # 0) for the plugin, an FF variant; backprop's eval has one setting
    assert sorted(zip(rows.algorithm, rows.n_layers, rows.eval_chunk.fillna(-1),
                      strict=True)) == [
        ("bp", 1, -1), ("bp", 2, -1), (PLUGIN_NAME, 1, 0), (PLUGIN_NAME, 1, 16),
        (PLUGIN_NAME, 2, 0), (PLUGIN_NAME, 2, 16)]
    assert (rows.status == "ok").all()
    # the generated tests (contract, smoke, closed form, oracle, FLOPs) take it in, no list
    # edited
    files = [str(REPO / "tests" / name) for name in ("test_algorithm_contract.py",
                                                      "test_flops.py")]

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
             "-k", PLUGIN_NAME, *args],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
        )

    collected = pytest_run("--collect-only").stdout.count(f"[{PLUGIN_NAME}")
    generated = pytest_run()
    assert generated.returncode == 0, generated.stdout[-3000:]
    assert collected > 0 and f"{collected} passed" in generated.stdout, generated.stdout[-500:]
