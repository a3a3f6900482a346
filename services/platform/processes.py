"""Child processes of a command (stream workers, the alert service, the API): starting and stopping them.

The one way to start a `schoolhealth` subcommand as a child (the demo, the benchmarks and the tests'
workers) and the one way to stop children: SIGTERM first, so a worker commits and leaves its consumer
group, SIGKILL only for a child that does not stop in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.platform.settings import Settings


def spawn_command(settings: Settings, args: Sequence[str], *, log: Path, append: bool = False,
                  new_session: bool = True, module: str = "services.cli",
                  environment: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `schoolhealth ARGS…` (`python -m services.cli`) with `settings` in its environment.

    Its stdout and stderr go to `log` (appended to with `append`); `new_session` puts it in a
    process group of its own, so `stop_processes(..., whole_group=True)` reaches its children too.
    `module` runs another entry point the same way (the fault suite's worker with injected faults);
    `environment` adds variables over the settings'.
    """
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen([sys.executable, "-m", module, *args],
                                env={**os.environ, **settings.as_environment(), **(environment or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=new_session)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], *, timeout: float = 60.0,
                   whole_group: bool = False) -> None:
    """SIGTERM worker-like child processes (they commit and leave the group), SIGKILL stragglers.

    With `whole_group` the signals go to each child's process group (children started with
    `new_session`), so what the child itself started stops too.
    """
    def send(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        if whole_group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)

    for process in processes:
        if process.poll() is None:
            send(process, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            send(process, signal.SIGKILL)
            process.wait(timeout=timeout)
