"""What every command shares: the settings, the consoles, command groups and the one error format.

Errors are one sentence on stderr, `error: …`, and the exit status says what kind: `BAD_INPUT` (2)
for input the command refuses (an unknown kind, a date that is not one, a file with the wrong
columns, unsafe settings), `FAILED` (1) for work that did not succeed, `UNREACHABLE` (3) when a
server does not answer. Expected errors never print a traceback.

Output is not wrapped when it does not go to a terminal (a pipe, a log file, a CI run): lines a
script reads stay whole, and tables keep one row per line.
"""

from __future__ import annotations

import sys
from typing import TextIO

import typer
from rich.console import Console
from rich.text import Text

from services.platform.settings import Settings

FAILED = 1
BAD_INPUT = 2
UNREACHABLE = 3

#: Width for output that goes to a file or pipe: wide enough that nothing is wrapped.
_UNWRAPPED_WIDTH = 10_000


def _console(stream: TextIO, *, stderr: bool) -> Console:
    on_terminal = stream.isatty()
    return Console(stderr=stderr, soft_wrap=not on_terminal, width=None if on_terminal else _UNWRAPPED_WIDTH)


#: Progress, summaries and errors (stderr), and tables (stdout).
console = _console(sys.stderr, stderr=True)
out = _console(sys.stdout, stderr=False)


def help_width() -> dict[str, int]:
    """Click's help layout: up to 120 columns on a terminal, unwrapped lines elsewhere."""
    if sys.stdout.isatty():
        return {"max_content_width": 120}
    return {"max_content_width": _UNWRAPPED_WIDTH, "terminal_width": _UNWRAPPED_WIDTH}


def load_settings() -> Settings:
    """The process's settings, built when a command needs them (so `--help` needs nothing)."""
    return Settings()


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print `error: message` on stderr and return the exit to raise (`raise fail(...) from error`)."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False)
    return typer.Exit(code)


def group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """A new command group `name` under `app` (`schoolhealth NAME COMMAND`)."""
    sub = typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(sub, name=name)
    return sub
