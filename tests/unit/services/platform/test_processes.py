"""One way to start a `schoolhealth` child and one way to stop children (`services.platform.processes`)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from services.platform.processes import spawn_command, stop_processes
from services.platform.settings import Settings


def test_spawn_command_runs_the_cli_with_the_settings_in_its_environment(tmp_path: Path) -> None:
    settings = Settings(topic_prefix="spawned.")
    log = tmp_path / "env.log"
    process = spawn_command(settings, ["stack", "env"], log=log)
    assert process.wait(timeout=60) == 0
    assert "export SCHOOLHEALTH_TOPIC_PREFIX=spawned." in log.read_text(encoding="utf-8")
    again = spawn_command(settings, ["stack", "env"], log=log, append=True)
    assert again.wait(timeout=60) == 0
    assert log.read_text(encoding="utf-8").count("SCHOOLHEALTH_TOPIC_PREFIX") == 2



def test_spawn_command_adds_environment_over_the_settings_and_runs_another_module(tmp_path: Path) -> None:
    settings = Settings(topic_prefix="spawned.")
    log = tmp_path / "env.log"
    process = spawn_command(settings, ["stack", "env"], log=log, environment={"SCHOOLHEALTH_TOPIC_PREFIX": "extra."})
    assert process.wait(timeout=60) == 0
    assert "export SCHOOLHEALTH_TOPIC_PREFIX=extra." in log.read_text(encoding="utf-8")
    other = spawn_command(settings, ["2026", "12"], log=tmp_path / "calendar.log", module="calendar")
    assert other.wait(timeout=60) == 0
    assert "December 2026" in (tmp_path / "calendar.log").read_text(encoding="utf-8")

def _sleeper(*, ignore_term: bool = False) -> subprocess.Popen[bytes]:
    code = ("import signal, sys, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    process.stdout.close()
    return process


def test_stop_processes_terminates_first_and_kills_only_stragglers() -> None:
    polite, stubborn = _sleeper(), _sleeper(ignore_term=True)
    stop_processes([polite, stubborn], timeout=2)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


def test_stop_processes_reaches_the_whole_group() -> None:
    process = _sleeper()
    stop_processes([process], timeout=5, whole_group=True)
    assert process.returncode == -signal.SIGTERM
