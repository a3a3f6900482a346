"""`schoolhealth train` and `schoolhealth score`: the screening models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.output import load_settings


def train(
    out: Annotated[Path | None, typer.Option(help="directory for artifacts and model cards "
                                              "(default: <state dir>/models)")] = None,
    truth: Annotated[Path | None, typer.Option(help="the synthetic generator's truth.csv, to compare each "
                                                "model's AUC with the true risk's")] = None,
    activate: Annotated[bool, typer.Option(help="make the new versions the active ones")] = True,
) -> None:
    """Train the myopia, overweight and depression screening models from the archive and register them."""
    from services.screening_models.service import train_all

    settings = load_settings()
    out_dir = out or settings.state_dir / "models"
    cards = train_all(settings, out_dir=out_dir, truth_csv=truth, activate=activate)
    for card in cards:
        gap = card.auc_gap
        typer.echo(
            f"{card.name} {card.version}: test {card.test_year} n={card.test.n} "
            f"ROC AUC {card.test.roc_auc or float('nan'):.3f} PR AUC {card.test.pr_auc or float('nan'):.3f} "
            f"Brier {card.test.brier or float('nan'):.3f}"
            + ("" if gap is None else f" true-risk AUC gap {gap:.3f}")
        )
    typer.echo(f"artifacts and cards in {out_dir}")


def score() -> None:
    """Score every active student once with the active model versions (ranking for review, not diagnosis)."""
    from services.screening_models.service import score_students

    written = score_students(load_settings())
    typer.echo(f"{written} scores written")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("score")(score)
