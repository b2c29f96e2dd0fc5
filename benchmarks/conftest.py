from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """One CPU thread: the figures these benchmarks compare are single-thread figures."""
    torch.set_num_threads(1)
