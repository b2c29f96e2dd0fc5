"""Device memory as the driver sees it (NVML), polled in a thread; None without NVML."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.010


def nvml_index(cuda_index: int) -> int:
    """The NVML index of CUDA device `cuda_index`, honouring CUDA_VISIBLE_DEVICES."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v]
    if cuda_index < len(visible) and visible[cuda_index].isdigit():
        return int(visible[cuda_index])
    return cuda_index


class NvmlPoller:
    """Peak device-used and process-used bytes during a block, minus a baseline taken
    before this process initialized CUDA. Every reading is None where NVML is missing."""

    def __init__(self, cuda_index: int) -> None:
        self.handle: Any = None
        self.baseline_bytes = 0
        self.peak_used_bytes: int | None = None
        self.peak_process_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.pynvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index(cuda_index))
            self.baseline_bytes = self._used()
        except Exception as exc:  # NVML absent or refusing: a None, never a crash
            log.info("NVML unavailable: %s", exc)
            self.handle = None

    def _used(self) -> int:
        return int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def _process_used(self) -> int | None:
        try:
            processes = self.pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except Exception:
            return None
        mine = [p.usedGpuMemory for p in processes if p.pid == os.getpid() and p.usedGpuMemory]
        return int(mine[0]) if mine else None

    def _poll_once(self) -> None:
        used = self._used() - self.baseline_bytes
        self.peak_used_bytes = max(used, self.peak_used_bytes or 0)
        process = self._process_used()
        if process is not None:
            self.peak_process_bytes = max(process, self.peak_process_bytes or 0)

    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            self._poll_once()

    def start(self) -> None:
        if self.handle is None:
            return
        self._thread = threading.Thread(target=self._run, name="nvml-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._poll_once()
