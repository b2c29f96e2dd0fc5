"""Where a cell ran: enough to keep results from two machines apart."""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ffbench

if TYPE_CHECKING:  # torch is imported where needed: the sweep parent writes rows without it
    import torch


GIT_SHA_VARIABLE = "FFBENCH_GIT_SHA"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@cache
def git_sha() -> str | None:
    """The commit of the ffbench checkout this code runs from, if it runs from one; else
    $FFBENCH_GIT_SHA (for a copy of a checkout without its .git, e.g. on a cluster node)."""
    source = Path(ffbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return os.environ.get(GIT_SHA_VARIABLE) or None
    return out.stdout.strip() or os.environ.get(GIT_SHA_VARIABLE) or None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None


def host_columns() -> dict[str, Any]:
    """The environment columns known without importing torch."""
    return {
        "host": socket.gethostname(),
        "ffbench_version": ffbench.__version__,
        "git_sha": git_sha(),
        "python_version": platform.python_version(),
        "cpu_model": cpu_model(),
    }


def environment(device: torch.device) -> dict[str, Any]:
    """Environment columns of a result row (call after the device is initialized)."""
    import torch

    on_gpu = device.type == "cuda"
    return {
        **host_columns(),
        "gpu_name": torch.cuda.get_device_name(device) if on_gpu else None,
        "driver_version": driver_version() if on_gpu else None,
        "cuda_version": torch.version.cuda,
        "torch_version": torch.__version__,
    }
