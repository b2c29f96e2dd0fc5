"""Small real sweeps, run once per test session through the command line a user types, for
the tests that draw what users get: the embedded default (measured on the CPU, fewer
depths), the published comparison predicted on meta (what a machine without a GPU gets)
the fair comparison predicted on meta, with Adam and with SGD, and a short accuracy sweep.

Each folder holds what `ffbench sweep` wrote; nothing here is hand-made. The sweeps run
side by side (together about half a minute on two CPU cores).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import FFBENCH, process_env

SWEEP_TIMEOUT_S = 600
META_DEPTHS = "2..47:15"  # 2, 17, 32, 47: the published range, four depths

# folder name -> `ffbench sweep` arguments
SWEEPS: dict[str, tuple[str, ...]] = {
    "embedded-default": ("quick", "--layers", "1,4,16"),
    "published-predicted": ("--layers", META_DEPTHS, "--device", "meta"),
    "fair": ("fair", "--device", "meta", "--layers", META_DEPTHS),  # Adam and SGD
    # the accuracy sweep, shortened: two algorithms, two epochs (three seeds each)
    "accuracy": ("accuracy", "--algorithms", "bp,ff", "--epochs", "2"),
}


def run_sweeps(root: Path) -> dict[str, Path]:
    """Every sweep of SWEEPS into root/<name>, side by side; their folders by name."""
    running = {
        name: subprocess.Popen(
            [*FFBENCH, "sweep", *args, "--out", str(root / name)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=process_env())
        for name, args in SWEEPS.items()
    }
    for name, process in running.items():
        output, _ = process.communicate(timeout=SWEEP_TIMEOUT_S)
        if process.returncode != 0:
            raise RuntimeError(f"ffbench sweep {' '.join(SWEEPS[name])} failed:\n{output}")
    return {name: root / name for name in SWEEPS}
