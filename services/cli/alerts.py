"""`schoolhealth api`, `schoolhealth users …` and `schoolhealth alerts …`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from services.cli.output import BAD_INPUT, fail, group, load_settings


def api(
    host: Annotated[str | None, typer.Option(help="address to bind (default SCHOOLHEALTH_API_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default SCHOOLHEALTH_API_PORT)")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs; GET /health needs no token)."""
    import uvicorn

    from services.server import create_api

    settings = load_settings()
    uvicorn.run(create_api(settings), host=host or settings.api_host, port=port or settings.api_port,
                log_level="warning", access_log=False)


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
        token = add_user(load_settings(), user_id, role, schools=school or (), lead_schools=lead or (),
                         counties=county or ())
    except UserError as error:
        raise fail(str(error), BAD_INPUT) from error
    typer.echo(token)


def users_list() -> None:
    """List users, roles, schools and counties served, and how many live tokens each has."""
    from services.access.users import list_users

    for user in list_users(load_settings()):
        scope = ",".join(user.schools) or "-"
        typer.echo(f"{user.user_id}\t{user.role}\t{'disabled' if user.disabled else 'active'}\tschools={scope}"
                   f"\tleads={','.join(user.lead_schools) or '-'}\tcounties={','.join(user.counties) or '-'}"
                   f"\ttokens={user.active_tokens}")


def users_token(user_id: Annotated[str, typer.Argument()]) -> None:
    """Issue a new token for a user and print it (shown once)."""
    from services.access.users import UserError, issue_token

    try:
        typer.echo(issue_token(load_settings(), user_id))
    except UserError as error:
        raise fail(str(error), BAD_INPUT) from error


def users_disable(user_id: Annotated[str, typer.Argument()]) -> None:
    """Disable a user and revoke every token they hold."""
    from services.access.users import UserError, disable_user

    try:
        disable_user(load_settings(), user_id)
    except UserError as error:
        raise fail(str(error), BAD_INPUT) from error
    typer.echo(f"{user_id} disabled")


def alerts_serve(
    sweep_interval: Annotated[float, typer.Option(help="seconds between escalation sweeps")] = 30.0,
    fast_lane: Annotated[bool, typer.Option(help="also read psych-surveys directly for the survey rules")] = True,
) -> None:
    """Consume intervention-alerts into the queue and escalate overdue alerts, until SIGTERM."""
    from services.alerts.service import run_alert_service

    run_alert_service(load_settings(), sweep_interval=sweep_interval, fast_lane=fast_lane)


def alerts_escalate(
    now: Annotated[str | None, typer.Option(help="ISO time with zone to sweep at (default: now)")] = None,
) -> None:
    """Run one escalation sweep and print how many alerts escalated."""
    from services.alerts.service import run_escalation
    from services.platform.clock import utc_now

    at = datetime.fromisoformat(now) if now else utc_now()
    if at.tzinfo is None:
        raise fail("--now needs a time zone, e.g. 2025-10-15T09:00:00+08:00", BAD_INPUT)
    typer.echo(f"escalated {len(run_escalation(load_settings(), now=at))} alert(s)")


def alerts_summary() -> None:
    """Open alerts per school by priority, unacknowledged and escalated counts (JSON lines)."""
    from services.alerts.service import queue_summary

    for row in queue_summary(load_settings()):
        typer.echo(json.dumps(row))


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    users = group(app, "users", "API users and their bearer tokens (stored hashed).")
    users.command("add")(users_add)
    users.command("list")(users_list)
    users.command("token")(users_token)
    users.command("disable")(users_disable)
    alerts = group(app, "alerts", "The alert queue: consumer, escalation sweep, summary.")
    alerts.command("serve")(alerts_serve)
    alerts.command("escalate")(alerts_escalate)
    alerts.command("summary")(alerts_summary)
