"""Child processes of a command (stream workers, the alert service, the API): stopping them cleanly."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], *, timeout: float = 60.0) -> None:
    """SIGTERM worker-like child processes (they commit and leave the group), SIGKILL stragglers."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
