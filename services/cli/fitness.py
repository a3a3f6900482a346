"""`schoolhealth fitness import|export`: the national upload sheet in and out."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from services.cli.output import BAD_INPUT, FAILED, console, fail, group, load_settings


def import_sheet(  # noqa: PLR0917  # typer passes the options positionally
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="upload sheet, CSV or XLSX")],
    school: Annotated[str, typer.Option(help="the school's code (the sheet does not say)")],
    measured_on: Annotated[str, typer.Option(help="test date, YYYY-MM-DD")],
    screener: Annotated[str, typer.Option(help="the PE teacher's or device's code, never a name")],
    retest: Annotated[bool, typer.Option("--retest", help="the sheet holds retests (补测)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only; publish nothing")] = False,
    report: Annotated[Path | None, typer.Option(help="where the per-row error report goes")] = None,
) -> None:
    """Import a school's national upload sheet (国家学生体质健康数据上报表); rejected rows go to a report."""
    from services.intake.fitness_exchange import UploadHeaderRejected, import_upload_sheet
    from services.intake.importer import UnreadableFile

    try:
        day = date.fromisoformat(measured_on)
    except ValueError:
        raise fail(f"--measured-on {measured_on!r} is not a date (YYYY-MM-DD)", BAD_INPUT) from None
    try:
        summary = import_upload_sheet(load_settings(), file, school_id=school, measured_on=day, screener=screener,
                                      attempt="retest" if retest else "first", dry_run=dry_run,
                                      report_path=report)
    except (UploadHeaderRejected, UnreadableFile) as error:
        raise fail(f"{file}: {error}", BAD_INPUT) from error
    verb = "validated" if dry_run else "accepted"
    console.print(f"{summary.rows:,} rows: {summary.accepted:,} {verb}, {len(summary.rejected):,} rejected"
                  f" in {summary.seconds:.1f}s")
    if summary.rejected:
        console.print(f"rejected rows and reasons: {summary.report_path}")
        raise typer.Exit(FAILED)


def export_sheet(
    school: Annotated[str, typer.Option(help="the school's code")],
    year: Annotated[int, typer.Option(help="school year (2025 = 2025-09-01 .. 2026-08-31)")],
    out: Annotated[Path, typer.Option(help="the sheet to write, .csv or .xlsx")],
) -> None:
    """Export a school's year results in the national upload sheet's columns."""
    from services.intake.fitness_exchange import export_school_year

    rows = export_school_year(load_settings(), school_id=school, year=year, path=out)
    console.print(f"{rows:,} students written to {out}")


def register(app: typer.Typer) -> None:
    fitness = group(app, "fitness", "Physical-fitness tests (national standard, 2014 revision).")
    fitness.command("import")(import_sheet)
    fitness.command("export")(export_sheet)
