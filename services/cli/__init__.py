"""`schoolhealth`, the one console script: `main` runs it, `app` is its typer application.

`main.py` holds the core commands; each area with several commands keeps them in its own module
here (`alerts`, `screening`, `metrics`, `fitness`) with `register(app)`. `python -m services.cli`
runs the same script.
"""

from services.cli.main import app, main

__all__ = ["app", "main"]
