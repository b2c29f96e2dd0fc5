"""Peak memory of PyTorch's CUDA caching allocator (None on other devices)."""

from __future__ import annotations

import gc

import torch


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
