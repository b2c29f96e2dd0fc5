"""Host memory of this process."""

from __future__ import annotations

from pathlib import Path

KIB = 1024


def peak_rss_bytes() -> int | None:
    """VmHWM: this process's own resident-set high-water mark.

    Not `ru_maxrss`: a spawned child starts with its parent's RSS as a floor there."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KIB
    return None
