"""GPUs a prediction can target: memory, architecture, cuBLAS workspace, CUDA context.

cuBLAS workspace (aten/src/ATen/cuda/CublasHandlePool.cpp): one per (thread, stream) that
runs a matmul, allocated through the caching allocator and kept; 32 MiB on compute
capability 9.x-12.x (Hopper, Blackwell), else ":4096:2:16:8" (8 MiB + 128 KiB), unless
CUBLAS_WORKSPACE_CONFIG (":KiB:count" pairs) says otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal

from ffbench.errors import BadInput

MIB = 1 << 20
KIB = 1 << 10
LARGE_WORKSPACE_MAJORS = (9, 10, 11, 12)  # "32MiB for Hopper and Blackwell"
LARGE_WORKSPACE_BYTES = 4096 * 8 * KIB  # :4096:8
SMALL_WORKSPACE_BYTES = (4096 * 2 + 16 * 8) * KIB  # :4096:2:16:8
# CUDA context + loaded kernels as NVML sees them: nvml_process_peak_used_bytes -
# max_memory_reserved, the same 742 MiB in every cell of results/gpu/published-reduced
# (H200, driver 580, torch 2.11+cu130, lazy module loading); used for the other GPUs too,
# an estimate there (it varies by a few hundred MiB with driver and torch build).
CUDA_CONTEXT_BYTES = 778_043_392


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int  # what the driver reports as total (nvidia-smi memory.total)
    compute_capability: tuple[int, int]
    context_bytes: int = CUDA_CONTEXT_BYTES

    @property
    def usable_bytes(self) -> int:
        """What the caching allocator can reserve: the total less the CUDA context."""
        return self.memory_bytes - self.context_bytes


GPUS = {
    gpu.name: gpu
    for gpu in (
        Gpu("h200", 143_771 * MIB, (9, 0)),
        Gpu("h100-80gb", 81_559 * MIB, (9, 0)),
        Gpu("b200", 183_359 * MIB, (10, 0)),
        Gpu("a100-80gb", 81_920 * MIB, (8, 0)),
        Gpu("a100-40gb", 40_960 * MIB, (8, 0)),
        Gpu("l40s", 46_068 * MIB, (8, 9)),
        Gpu("a10g", 23_028 * MIB, (8, 6)),
        Gpu("l4", 23_034 * MIB, (8, 9)),
        Gpu("rtx-4090", 24_564 * MIB, (8, 9)),
    )
}
DEFAULT_GPU = "h200"  # the GPU results/gpu was measured on


def gpu(name: str) -> Gpu:
    try:
        return GPUS[name.lower()]
    except KeyError:
        raise BadInput(f"unknown GPU {name!r}; known: {', '.join(GPUS)}") from None


def cublas_workspace_bytes(target: Gpu, config: str | None = None) -> int:
    """One cuBLAS workspace on `target` (config: CUBLAS_WORKSPACE_CONFIG, read if None)."""
    config = os.environ.get("CUBLAS_WORKSPACE_CONFIG") if config is None else config
    if config:
        pairs = re.findall(r":([0-9]+):([0-9]+)", config)
        if pairs:
            return sum(int(size) * int(count) for size, count in pairs) * KIB
    if target.compute_capability[0] in LARGE_WORKSPACE_MAJORS:
        return LARGE_WORKSPACE_BYTES
    return SMALL_WORKSPACE_BYTES


MEMORY_UNITS = {"": 1, "B": 1, "KIB": KIB, "MIB": MIB, "GIB": 1 << 30, "TIB": 1 << 40,
                "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


MAX_MEMORY_BYTES = 1 << 60  # an exbibyte: more than any device holds


def parse_memory(text: str) -> int:
    """'24GiB', '80GB', '40960MiB' or plain bytes -> bytes: more than 0, at most an
    exbibyte (BadInput otherwise, one line)."""
    match = re.fullmatch(r"\s*([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in MEMORY_UNITS:
        raise BadInput(f"not a memory size: {text[:40]!r} (e.g. 24GiB, 80GB, 40960MiB)")
    nbytes = int(Decimal(match.group(1)) * MEMORY_UNITS[unit])
    if not 0 < nbytes <= MAX_MEMORY_BYTES:
        raise BadInput(f"memory {text.strip()}: give more than 0 bytes and at most 1 EiB")
    return nbytes
