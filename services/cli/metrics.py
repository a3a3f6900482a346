"""Commands for the annual indicators, the report and Grafana: refresh, publish, report, dashboards, grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.output import console, fail, group, load_settings


def refresh(
    full: Annotated[bool, typer.Option("--full", help="recompute every school year, not only the changed")] = False,
) -> None:
    """Refresh the metric rollups and the live (suppressed) indicators Grafana shows.

    By default only the school years changed since the last refresh are recomputed.
    """
    from services.reporting.metrics import refresh_incremental, refresh_rollups

    with console.status("refreshing rollups"):
        result = refresh_rollups(load_settings()) if full else refresh_incremental(load_settings())
    years = ", ".join(str(year) for year in result.live_years) or "none"
    console.print(f"rollups and live indicators refreshed ({result.mode}); school years rewritten: {years}")


def publish(year: Annotated[int, typer.Option(help="school year (2025 = 2025-09-01 .. 2026-08-31)")]) -> None:
    """Freeze a school year's indicators into a new immutable revision."""
    from services.reporting.metrics import headline_indicators, publish_year

    settings = load_settings()
    try:
        with console.status(f"publishing school year {year}"):
            revision = publish_year(settings, year)
    except ValueError as error:
        raise fail(str(error)) from error
    console.print(f"school year {year} published as revision {revision}")
    for metric_id, rate in headline_indicators(settings, year).items():
        typer.echo(f"{metric_id:>22}: {'withheld' if rate is None else f'{100 * rate:.1f}%'}")


def report(
    year: Annotated[int, typer.Option(help="published school year")],
    county: Annotated[str | None, typer.Option(help="county id; the province when omitted")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("reports"),
    language: Annotated[str, typer.Option(help="zh-CN (default) or en")] = "zh-CN",
) -> None:
    """Write the annual HTML report (inline SVG charts) and the CSV of the published indicators."""
    from services.reporting.report import ReportError, write_report

    try:
        path = write_report(load_settings(), year, out, county=county, language=language)
    except ReportError as error:
        raise fail(str(error)) from error
    console.print(f"report: {path}\ndata: {path.with_suffix('.csv')}")


def dashboards_build(
    out: Annotated[Path | None, typer.Option(help="directory; default dashboards/json")] = None,
) -> None:
    """Build the dashboards with grafana-foundation-sdk and write their JSON."""
    from services.reporting.dashboards import JSON_DIR, build_dashboards

    for path in build_dashboards(out or JSON_DIR):
        typer.echo(str(path))


def grafana_push(
    url: Annotated[str, typer.Option(envvar="GRAFANA_URL", help="Grafana base URL")] = "http://127.0.0.1:3000",
    token: Annotated[str | None, typer.Option(envvar="GRAFANA_TOKEN", help="service account token")] = None,
) -> None:
    """Push dashboards, the datasource and publication annotations to a running Grafana."""
    from services.reporting.grafana import GrafanaPushError, push

    try:
        result = push(load_settings(), url, token)
    except GrafanaPushError as error:
        raise fail(str(error)) from error
    console.print(f"{len(result.dashboards)} dashboards pushed; datasource {result.datasource}; "
                  f"annotations added: {', '.join(result.annotations_added) or 'none'}")


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh)
    app.command("publish")(publish)
    app.command("report")(report)
    group(app, "dashboards", "Grafana dashboards as code.").command("build")(dashboards_build)
    group(app, "grafana", "A running Grafana.").command("push")(grafana_push)
