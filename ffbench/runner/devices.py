"""The host's GPUs, found without importing torch (nor touching CUDA)."""

from __future__ import annotations

import os
import re
import subprocess

# what CUDA takes as a device in CUDA_VISIBLE_DEVICES: an index, or a GPU's (or MIG
# instance's) UUID; it reads the list up to the first entry that is not one ("-1": none)
_DEVICE_ENTRY = re.compile(r"[0-9]+|(GPU|MIG)-[0-9A-Za-z/-]+")


def visible_ids(visible: str) -> list[str]:
    """The devices a CUDA_VISIBLE_DEVICES value leaves visible, as CUDA reads it: the
    entries up to the first invalid one (so "-1", "", "none" or "0,-1,1" hide all but
    what comes before)."""
    ids = []
    for entry in visible.split(","):
        entry = entry.strip()
        if not _DEVICE_ENTRY.fullmatch(entry):
            break
        ids.append(entry)
    return list(dict.fromkeys(ids))


def gpu_ids() -> list[str]:
    """The host's GPUs as CUDA_VISIBLE_DEVICES entries, found without importing torch
    (none when CUDA_VISIBLE_DEVICES hides them all: "-1", or an invalid first entry)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return visible_ids(visible)
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
