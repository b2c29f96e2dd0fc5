from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from ffbench.cli import main

REPO = Path(__file__).resolve().parent.parent
FFBENCH = [sys.executable, "-m", "ffbench"]


class Ran(NamedTuple):
    """What a command did: (exit code, stdout, stderr), also under CompletedProcess's names."""

    code: int
    out: str
    err: str

    @property
    def returncode(self) -> int:
        return self.code

    @property
    def stdout(self) -> str:
        return self.out

    @property
    def stderr(self) -> str:
        return self.err


def invoke(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Ran:
    """`ffbench ARGS` in this process (the fast way; every test that needs no fresh process
    or signal uses it, through the `cli` fixture or directly)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    code = ended.value.code
    return Ran(code if isinstance(code, int) else 1, out, err)


Cli = Callable[..., Ran]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli("report", folder, ...)`: the command run in this process."""
    return lambda *args: invoke(capsys, *args)


def process_env(plugins: Path | None = None, extra: Mapping[str, str] | None = None,
                ) -> dict[str, str]:
    """The environment of a fresh `python -m ffbench`: this checkout (and a folder of
    installed plugins) on its path."""
    path = [str(REPO)] + ([str(plugins)] if plugins else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **(extra or {})}


def ffbench_process(*args: str | Path, cwd: Path | None = None, timeout_s: float = 300,
                    plugins: Path | None = None, env: Mapping[str, str] | None = None) -> Ran:
    """`python -m ffbench ARGS` in a fresh process, as a user would run it (for what needs
    one: plugins found at start-up, imports, exit codes of the interpreter, CUDA)."""
    done = subprocess.run([*FFBENCH, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=process_env(plugins, env), timeout=timeout_s)
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """One CPU thread: deterministic and comparable; the CI machine has two noisy cores."""
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need a CUDA device: skipped without one (select them with -m gpu)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of small real sweeps (tests/real_sweeps.py), run once per session."""
    from real_sweeps import run_sweeps

    return run_sweeps(tmp_path_factory.mktemp("real_sweeps"))
