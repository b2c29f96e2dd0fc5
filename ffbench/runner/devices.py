"""The host's GPUs, found without importing torch (nor touching CUDA)."""

from __future__ import annotations

import os
import subprocess


def gpu_ids() -> list[str]:
    """The host's GPUs as CUDA_VISIBLE_DEVICES entries, found without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [entry for entry in visible.split(",") if entry.strip()]
    try:
        import pynvml

        pynvml.nvmlInit()
        return [str(index) for index in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no driver, no library: ask nvidia-smi, else none
        return _nvidia_smi_gpus()


def _nvidia_smi_gpus() -> list[str]:
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]
