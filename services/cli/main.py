"""`schoolhealth`: the one console script, with subcommands.

One registration style: each module of `COMMAND_MODULES` defines its commands as plain functions
and names them in `register(app)`, the only place a command gets its name or group. Settings are
built lazily per command (`output.load_settings`) and passed explicitly; heavy modules are imported
inside the commands, so `schoolhealth --help` is instant and needs nothing running.
"""

from __future__ import annotations

import importlib

import typer

from services.cli.output import BAD_INPUT, fail, help_width

#: The modules whose `register(app)` adds their commands, in the order `--help` lists them.
COMMAND_MODULES = (
    "services.cli.core",
    "services.cli.alerts",
    "services.cli.screening",
    "services.cli.metrics",
    "services.cli.fitness",
    "services.cli.devtools",
)

app = typer.Typer(help="Student health monitoring: screenings through Kafka into the health archive.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  context_settings=help_width())


def register_commands(target: typer.Typer, modules: tuple[str, ...] = COMMAND_MODULES) -> None:
    """Add every module's commands to `target`. A module that fails to import fails the script: a
    broken module never silently drops its commands."""
    for module in modules:
        importlib.import_module(module).register(target)


register_commands(app)


def main() -> None:
    from services.platform.settings import UnsafeSettings

    try:
        app()
    except UnsafeSettings as refused:
        raise SystemExit(fail(str(refused), BAD_INPUT).exit_code) from None
