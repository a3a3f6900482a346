"""`schoolhealth api`, `schoolhealth users …`, `schoolhealth alerts …` and `schoolhealth bench alerts`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from services.platform.settings import Settings

users_app = typer.Typer(help="API users and their bearer tokens (stored hashed).", no_args_is_help=True)
alerts_app = typer.Typer(help="The alert queue: consumer, escalation sweep, summary.", no_args_is_help=True)


def _settings() -> Settings:
    return Settings()


def _group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-typer `name`, shared with other areas' modules if one of them registered it first."""
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    group_app = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group_app, name=name)
    return group_app


def api(
    host: Annotated[str | None, typer.Option(help="address to bind (default SCHOOLHEALTH_API_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default SCHOOLHEALTH_API_PORT)")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs; GET /health needs no token)."""
    import uvicorn

    from services.server import create_api

    settings = _settings()
    uvicorn.run(create_api(settings), host=host or settings.api_host, port=port or settings.api_port,
                log_level="warning", access_log=False)


@users_app.command("add")
def users_add(
    user_id: Annotated[str, typer.Argument(help="a code such as c-0012, never a name or e-mail")],
    role: Annotated[str, typer.Option(help="counsellor, school_doctor, county_officer, health_office, admin, device")],
    school: Annotated[list[str] | None, typer.Option(help="a school served (repeatable)")] = None,
    lead: Annotated[list[str] | None, typer.Option(help="a school this user leads: gets its escalations")] = None,
    county: Annotated[list[str] | None, typer.Option(help="a county served (county officers; repeatable)")] = None,
) -> None:
    """Create a user and print its first token (shown once; only its hash is stored)."""
    from services.access.users import UserError, add_user

    try:
        token = add_user(_settings(), user_id, role, schools=school or (), lead_schools=lead or (),
                         counties=county or ())
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(token)


@users_app.command("list")
def users_list() -> None:
    """List users, roles, schools and counties served, and how many live tokens each has."""
    from services.access.users import list_users

    for user in list_users(_settings()):
        scope = ",".join(user.schools) or "-"
        typer.echo(f"{user.user_id}\t{user.role}\t{'disabled' if user.disabled else 'active'}\tschools={scope}"
                   f"\tleads={','.join(user.lead_schools) or '-'}\tcounties={','.join(user.counties) or '-'}"
                   f"\ttokens={user.active_tokens}")


@users_app.command("token")
def users_token(user_id: Annotated[str, typer.Argument()]) -> None:
    """Issue a new token for a user and print it (shown once)."""
    from services.access.users import UserError, issue_token

    try:
        typer.echo(issue_token(_settings(), user_id))
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@users_app.command("disable")
def users_disable(user_id: Annotated[str, typer.Argument()]) -> None:
    """Disable a user and revoke every token they hold."""
    from services.access.users import UserError, disable_user

    try:
        disable_user(_settings(), user_id)
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{user_id} disabled")


@alerts_app.command("serve")
def alerts_serve(
    sweep_interval: Annotated[float, typer.Option(help="seconds between escalation sweeps")] = 30.0,
    fast_lane: Annotated[bool, typer.Option(help="also read psych-surveys directly for the survey rules")] = True,
) -> None:
    """Consume intervention-alerts into the queue and escalate overdue alerts, until SIGTERM."""
    from services.alerts.service import run_alert_service

    run_alert_service(_settings(), sweep_interval=sweep_interval, fast_lane=fast_lane)


@alerts_app.command("escalate")
def alerts_escalate(
    now: Annotated[str | None, typer.Option(help="ISO time with zone to sweep at (default: now)")] = None,
) -> None:
    """Run one escalation sweep and print how many alerts escalated."""
    from services.alerts.service import run_escalation
    from services.platform.clock import utc_now

    at = datetime.fromisoformat(now) if now else utc_now()
    if at.tzinfo is None:
        typer.echo("error: --now needs a time zone, e.g. 2025-10-15T09:00:00+08:00", err=True)
        raise typer.Exit(2)
    typer.echo(f"escalated {len(run_escalation(_settings(), now=at))} alert(s)")


@alerts_app.command("summary")
def alerts_summary() -> None:
    """Open alerts per school by priority, unacknowledged and escalated counts (JSON lines)."""
    from services.alerts.service import queue_summary

    for row in queue_summary(_settings()):
        typer.echo(json.dumps(row))


def bench_alerts(
    seconds: Annotated[float, typer.Option(help="duration of the loaded phase")] = 30.0,
    rate: Annotated[int, typer.Option(help="background events per second")] = 1000,
    probes_per_second: Annotated[float, typer.Option(help="self-harm surveys per second")] = 2.0,
    fast_lane: Annotated[bool, typer.Option(help="run the alert service with its survey fast lane")] = True,
    output: Annotated[Path | None, typer.Option(help="result JSON (default bench/results/alerts_latency.json)")] = None,
) -> None:
    """Latency from a self-harm survey produced to its alert visible in the API, under load."""
    from services.devtools.bench_alerts import run_bench

    result = run_bench(_settings(), seconds=seconds, rate=rate, probes_per_second=probes_per_second,
                       fast_lane=fast_lane, output=output)
    typer.echo(json.dumps(result["summary"], indent=2))


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.add_typer(users_app, name="users")
    app.add_typer(alerts_app, name="alerts")
    _group(app, "bench", "Benchmarks; each writes a JSON result under bench/.").command("alerts")(bench_alerts)
