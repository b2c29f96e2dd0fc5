from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """One CPU thread: deterministic and comparable; the CI machine has two noisy cores."""
    torch.set_num_threads(1)
