"""The installed application: its top-level names are ours alone, and every command has --help."""

from __future__ import annotations

import importlib.metadata

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from services.cli import app


@pytest.mark.parametrize("package", ["models", "streams", "services"])
def test_no_other_distribution_provides_our_top_level_packages(package: str) -> None:
    providers = importlib.metadata.packages_distributions().get(package, [])
    assert set(providers) <= {"schoolhealth"}, f"{package} also comes from {providers}"


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]
    root = get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
