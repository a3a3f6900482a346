"""The tests' one way to run a real child process: a worker, the alert service, the API, a fault worker.

Started by `services.platform.processes.spawn_command` (as the demo and the benchmarks start them),
logging to a file for the failure report, each in a process group of its own so a signal reaches
what the child started too.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.platform.processes import spawn_command
from services.platform.settings import Settings


class ChildProcess:
    """`python -m MODULE ARGS…` (the `schoolhealth` CLI unless told) with `settings` in its environment."""

    def __init__(self, settings: Settings, log: Path, args: Sequence[str], *, module: str = "services.cli",
                 environment: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.process = spawn_command(settings, args, log=log, append=True, module=module, environment=environment)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60) -> int:
        """Send `sig` and wait for the exit (a child still running after `timeout` fails the test)."""
        self.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` (SIGTERM: commit and leave), SIGKILL if the child has not exited after `timeout`."""
        self.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            return self.process.wait(timeout=30)

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit on its own; SIGKILL it and fail if it does not."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"still running after {timeout:.0f}s{self.tail()}") from None

    def tail(self, chars: int = 4000) -> str:
        return f"\n--- {self.log}\n{self.log.read_text(errors='replace')[-chars:]}"
