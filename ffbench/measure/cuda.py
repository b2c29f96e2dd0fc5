"""Peak memory of PyTorch's CUDA caching allocator (None on other devices)."""

from __future__ import annotations

import gc

import torch

from ffbench.errors import BadInput


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peaks(device: torch.device) -> None:
    """Start a phase: drop garbage and cached blocks, then zero the peak counters."""
    synchronize(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def read_peaks(device: torch.device) -> tuple[int | None, int | None]:
    """(max_memory_allocated, max_memory_reserved) in bytes since `reset_peaks`."""
    if device.type != "cuda":
        return None, None
    synchronize(device)
    return torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)


def check_device_available(device: str) -> None:
    """Refuse (BadInput) a CUDA device this host does not have."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise BadInput(f"--device {device}: CUDA is not available on this host")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise BadInput(f"--device {device}: this host has {torch.cuda.device_count()} GPU(s)")
