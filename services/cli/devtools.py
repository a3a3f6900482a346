"""Development commands (`services.devtools`): the local stack, the demo and the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from services.cli.output import UNREACHABLE, console, fail, group, load_settings


def stack_up() -> None:
    """Start Kafka and PostgreSQL (installing what is missing); idempotent."""
    import time

    from services.devtools.stack import Stack, StackError

    started = time.monotonic()
    stack = Stack(load_settings())
    try:
        with console.status("starting PostgreSQL and Kafka"):
            stack.up()
    except StackError as error:
        raise fail(str(error)) from error
    for component in stack.status():
        console.print(f"[green]up[/green] {component.name}: {component.detail}")
    console.print(f"stack up in {time.monotonic() - started:.1f}s")


def stack_down() -> None:
    """Stop Kafka (controlled shutdown) and PostgreSQL (fast shutdown)."""
    from services.devtools.stack import Stack, StackError

    try:
        Stack(load_settings()).down()
    except StackError as error:
        raise fail(str(error)) from error
    console.print("stack down")


def stack_status() -> None:
    """Say whether Kafka and PostgreSQL answer, their versions, and whether TimescaleDB is there."""
    from services.devtools.stack import Stack

    statuses = Stack(load_settings()).status()
    for component in statuses:
        typer.echo(f"{component.name}: {'running' if component.running else 'stopped'} - {component.detail}")
    if not all(component.running for component in statuses):
        raise typer.Exit(UNREACHABLE)


def stack_env() -> None:
    """Print the settings as `export SCHOOLHEALTH_...` lines for a shell."""
    import shlex

    for name, value in load_settings().as_environment().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


def demo(
    students: Annotated[int, typer.Option(help="size of the synthetic province")] = 4000,
    workers: Annotated[int, typer.Option(help="stream worker processes")] = 2,
    out: Annotated[Path, typer.Option(help="where the province, report, models and logs go")] = Path("out/demo"),
    reset: Annotated[bool, typer.Option(help="recreate the local database first (synthetic data only)")] = True,
) -> None:
    """Run the whole platform on a synthetic province: stack, import, stream, train, publish, report."""
    from services.devtools.demo import run_demo

    run_demo(load_settings(), students=students, workers=workers, out_dir=out, reset=reset, console=console)


def bench_pipeline(
    events: Annotated[int, typer.Option(help="events in the run")] = 100_000,
    workers: Annotated[int, typer.Option(help="worker processes in the consumer group")] = 2,
    out: Annotated[Path, typer.Option(help="JSON result file")] = Path("bench/results/pipeline.json"),
) -> None:
    """Raw aiokafka, bare faust (counting; decoding envelopes), raw COPY, end to end (envelopes; single events)."""
    from services.devtools.bench_pipeline import run_pipeline_bench

    with console.status(f"benchmarking {events:,} events with {workers} worker(s)"):
        result = run_pipeline_bench(load_settings(), events=events, workers=workers, out=out)
    e2e = result["end_to_end"]
    for name in ("raw_aiokafka_consume", "bare_faust_count", "raw_aiokafka_consume_decode_envelopes",
                 "bare_faust_decode_envelopes", "classify_in_process"):
        typer.echo(f"{name:>38}: {result[name]['events_per_second']:>10,.0f} events/s")
    typer.echo(f"{'raw_binary_copy':>38}: {result['raw_binary_copy']['rows_per_second']:>10,.0f} rows/s")
    cpu = ", ".join(f"{c:.0f}" for c in e2e["cpu_microseconds_per_event_per_process"])
    rss = ", ".join(f"{m:.0f}" for m in e2e["worker_peak_rss_mib"])
    typer.echo(f"{'end_to_end':>38}: {e2e['events_per_second']:>10,.0f} events/s "
               f"({workers} workers, CPU µs/event/process {cpu}, peak RSS MiB {rss})")
    single = result["end_to_end_single_event_messages"]
    typer.echo(f"{'end_to_end_single_event':>38}: {single['events_per_second']:>10,.0f} events/s "
               f"({single['events']:,} events, one per message)")
    for name, ratio in result["ratios"].items():
        typer.echo(f"{name:>44}: {ratio:.2f}")
    typer.echo(f"result: {out}")


def bench_alerts(
    seconds: Annotated[float, typer.Option(help="duration of the loaded phase")] = 30.0,
    rate: Annotated[int, typer.Option(help="background events per second")] = 1000,
    probes_per_second: Annotated[float, typer.Option(help="self-harm surveys per second")] = 2.0,
    fast_lane: Annotated[bool, typer.Option(help="run the alert service with its survey fast lane")] = True,
    output: Annotated[Path | None, typer.Option(help="result JSON (default bench/results/alerts_latency.json)")] = None,
) -> None:
    """Latency from a self-harm survey produced to its alert visible in the API, under load."""
    from services.devtools.bench_alerts import run_bench

    result = run_bench(load_settings(), seconds=seconds, rate=rate, probes_per_second=probes_per_second,
                       fast_lane=fast_lane, output=output)
    typer.echo(json.dumps(result["summary"], indent=2))

def bench_scale(  # noqa: PLR0917  # typer passes the options positionally
    students: Annotated[int, typer.Option(help="students in the seeded province (four school years)")] = 10_000,
    out: Annotated[Path | None, typer.Option(help="JSON result file (default bench/results/scale_N.json)")] = None,
    timescaledb: Annotated[bool, typer.Option(help="a TimescaleDB database (the extension must be installed)")] = False,
    keep: Annotated[bool, typer.Option(help="keep the benchmark database afterwards")] = False,
    label: Annotated[str, typer.Option(help="what this run is (machine, load), stored in the JSON")] = "",
    phase: Annotated[str, typer.Option(help="all; seed (seed and keep the database); measure (a kept seed, "
                                            "with today's code and migrations)")] = "all",
) -> None:
    """Seed N students into a fresh database; time refreshes, publication, report, reads; bytes per event."""
    from services.devtools.bench_scale import run_scale_bench

    path = out or Path(f"bench/results/scale_{students}{'_timescaledb' if timescaledb else ''}.json")
    with console.status(f"benchmarking a province of {students:,} students"):
        result = run_scale_bench(load_settings(), students=students, out=path, timescaledb=timescaledb, keep=keep,
                                 label=label, phase=phase)
    typer.echo(f"seed: {result['seed']['events_per_second']:,.0f} events/s ({result['seed']['events']:,} events)")
    if phase == "seed":
        typer.echo(f"seeded and kept; measure it with --phase measure (results in {path})")
        return
    for name in ("full_refresh", "incremental_refresh", "publish"):
        typer.echo(f"{name}: {result[name]['seconds']:.2f} s")
    typer.echo(f"report (province): {result['report']['province']['seconds']:.2f} s")
    worst = max(result["panels"].values(), key=lambda p: p["p95_ms"])
    typer.echo(f"panels: {len(result['panels'])}, worst p95 {worst['p95_ms']:.1f} ms")
    typer.echo(f"student lookup p95: {result['student_lookup']['p95_ms']:.1f} ms; counsellor queue p95: "
               f"{result['counsellor']['queue']['p95_ms']:.1f} ms, risk list p95: "
               f"{result['counsellor']['risk_list']['p95_ms']:.1f} ms")
    typer.echo(f"bytes per event: {result['storage']['bytes_per_event']} "
               f"(measurement tables by school year: {result['storage']['by_school_year_state']})")
    typer.echo(f"result: {path}")


def register(app: typer.Typer) -> None:
    stack = group(app, "stack", "The local stack (Apache Kafka and PostgreSQL) without Docker.")
    stack.command("up")(stack_up)
    stack.command("down")(stack_down)
    stack.command("status")(stack_status)
    stack.command("env")(stack_env)
    app.command("demo")(demo)
    bench = group(app, "bench", "Benchmarks (results as JSON under bench/results/).")
    bench.command("pipeline")(bench_pipeline)
    bench.command("alerts")(bench_alerts)
    bench.command("scale")(bench_scale)
