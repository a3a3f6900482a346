"""Every command the README's "Commands" block shows exists and answers --help.

The integration test `test_cli_commands.py` runs the ones that read or change a database for real.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from services.cli import app
from tests.paths import ROOT

README = ROOT / "README.md"


def readme_commands() -> list[list[str]]:
    """Command paths from the README's Commands block: `stack up | down` gives [stack up], [stack down]."""
    block = re.search(r"## Commands.*?```\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "the README has no Commands block"
    root: Any = get_command(app)
    paths: list[list[str]] = []
    for raw in block.group(1).splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("schoolhealth"):
            continue
        group: str | None = None
        for segment in line.removeprefix("schoolhealth").split(" | "):
            words = segment.split()
            if not words:
                continue
            if words[0] in root.commands:
                group, rest = words[0], words[1:]
            else:
                rest = words
            command = root.commands[group] if group else None
            subcommands = rest[0].split("|") if rest else []
            nested = getattr(command, "commands", {})
            if subcommands and all(s in nested for s in subcommands):
                paths.extend([group, sub] for sub in subcommands if group)
            elif group:
                paths.append([group])
    return paths


def test_the_readme_lists_the_main_commands() -> None:
    shown = {" ".join(path) for path in readme_commands()}
    assert {"student", "import", "users add", "users token", "api", "stack up", "demo"} <= shown


@pytest.mark.parametrize("path", readme_commands(), ids=" ".join)
def test_each_readme_command_exists(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
