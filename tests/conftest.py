from __future__ import annotations

from pathlib import Path

import pytest
import torch


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
