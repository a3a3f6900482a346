"""The console script's conventions: one registration style, one error format, no swallowed import
errors, help without a `<bool>` after flags, and output that is not wrapped when it is not a terminal."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from services.cli.main import COMMAND_MODULES, app, register_commands
from tests.paths import ROOT


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "commands", None):
            found += _commands(sub, (*path, name))
        else:
            found.append(((*path, name), sub))
    return found


def _schoolhealth(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], input=stdin, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_every_command_is_a_module_level_function_of_a_registered_module() -> None:
    commands = _commands(get_command(app))
    assert len(commands) > 30
    for path, command in commands:
        callback = command.callback
        assert callback.__module__ in COMMAND_MODULES, (path, callback.__module__)
        # Not a closure defined inside register(): the name is given only in register(app).
        assert "<locals>" not in callback.__qualname__, (path, callback.__qualname__)
        assert callable(getattr(importlib.import_module(callback.__module__), callback.__name__, None)), path


def test_a_module_that_cannot_be_imported_fails_the_script_instead_of_dropping_its_commands() -> None:
    with pytest.raises(ModuleNotFoundError):
        register_commands(typer.Typer(), ("services.cli.no_such_module",))


@pytest.mark.parametrize("path", [(), ("import",), ("users", "add"), ("audit", "delivery"), ("fitness", "import")],
                         ids=lambda p: " ".join(p) or "root")
def test_help_shows_no_type_after_flags(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help  " in result.output or "--help " in result.output


def test_bad_input_is_one_sentence_on_stderr_with_status_2_and_no_traceback() -> None:
    result = _schoolhealth("classify", "nope")
    assert result.returncode == 2
    assert result.stderr == "error: unknown kind 'nope': expected growth, vision or survey\n"
    assert result.stdout == ""


def test_errors_of_every_area_share_the_format(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("x\n", encoding="utf-8")
    cases = [
        ("fitness", "import", str(sheet), "--school", "1", "--measured-on", "yesterday", "--screener", "s"),
        ("alerts", "escalate", "--now", "2025-10-15T09:00:00"),
        ("audit", "delivery", "--since", "last week"),
    ]
    for args in cases:
        result = _schoolhealth(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: "), (args, result.stderr)
        assert result.stderr.count("\n") == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_output_that_is_not_a_terminal_is_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    file = tmp_path / "rows.csv"
    file.write_text("a\n", encoding="utf-8")
    refused = _schoolhealth("import", "nope", str(file))
    assert refused.returncode == 2
    line = "error: unknown kind 'nope': expected one of schools, roster, records, vision, bmi, survey"
    assert len(line) > 80 and refused.stderr == line + "\n"
    helped = _schoolhealth("classify", "--help")
    assert any(len(line) > 80 for line in helped.stdout.splitlines())
    assert "each with its input line number" in helped.stdout
