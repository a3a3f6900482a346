"""`schoolhealth bench pipeline`: the pipeline's rate against its ceilings, in one run.

On the same machine and the same events it measures:
  1. raw aiokafka consume + json.loads of one event per message (the transport ceiling);
  2. a bare faust-streaming agent that only counts one-event messages (the framework's own rate);
  3. like with like, on the worker's own batch envelopes: raw aiokafka consume + the worker's
     decoder (`decode_message`), and a bare faust agent doing the same (the consume-and-decode
     ceilings the worker is compared with);
  4. raw binary COPY of the same classified rows into PostgreSQL (the database ceiling), with
     the writer's text[] dumper;
  5. end to end: batch envelopes produced to Kafka → worker processes → committed archive rows,
     with CPU seconds per event per worker process and the workers' peak memory, and the CPU
     the Kafka broker, the PostgreSQL cluster, this process and the whole machine used meanwhile
     (so "other" shows anything else that ran during the measurement);
  6. end to end on the single-event path (API, web, devices: one event per message), other
     events of the same kind.
Results go to JSON; ratios are printed, so a run on a noisy machine still says where time goes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from models.codecs import decode_message, encode_batch, encode_event
from models.contracts import BmiScreening
from models.pipeline import ProcessedMessages, classify_event
from models.topics import BMI_SCREENINGS
from services.devtools.stack import Kafka, Postgres
from services.intake.importer import BATCH_EVENTS
from services.pipeline.archive_writer import GROWTH, growth_row
from services.pipeline.text_arrays import use_memoised_text_arrays
from services.platform.database import bootstrap_database
from services.platform.kafka import KafkaAdmin, NewTopicSpec
from services.platform.kafka_limits import MESSAGE_MAX_BYTES, PRODUCER_BATCH_BYTES
from services.platform.kafka_security import client_options
from services.platform.migrate import migrate
from services.platform.processes import spawn_command, stop_processes
from services.platform.settings import Settings
from services.platform.topics import create_topics

SINGLE_TOPIC = "bench-single"
ENVELOPE_TOPIC = "bench-envelopes"
#: Events sent one per message in the single-event measurement (at most `events`).
SINGLE_PATH_EVENTS = 50_000


def make_events(count: int, *, seed: int = 1, schools: int = 64) -> list[BmiScreening]:
    """Plausible synthetic BMI screenings, deterministic for a seed."""
    rng = random.Random(seed)  # noqa: S311 - synthetic benchmark data, not secrets
    now = datetime(2025, 11, 1, 8, 0, tzinfo=UTC)
    events = []
    for n in range(count):
        age = rng.uniform(72, 180)
        height = 70 + age * 0.5 + rng.gauss(0, 6)
        bmi = rng.gauss(17.5, 3)
        data = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "schema": {"family": "bmi-screening", "version": 1},
            "occurred_at": now.isoformat(),
            "school_id": f"B{n % schools:04d}",
            "student_key": f"{rng.getrandbits(256):064x}",
            "submitted_by": "importer",  # the operator's path (migration 0044)
            "measured_on": (date(2025, 10, 31) - timedelta(days=n % 40)).isoformat(),
            "sex": "male" if n % 2 else "female",
            "age_months": round(age, 2),
            "height_cm": round(height, 1),
            "weight_kg": round(max(12.0, bmi * (height / 100) ** 2), 1),
            "screener": "bench-1",
        }
        events.append(BmiScreening.model_validate_json(json.dumps(data)))
    return events


def _proc_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: fields[11] utime, [12] stime, [13] cutime, [14] cstime."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _proc_cpu_seconds(pid: int) -> float:
    fields = _proc_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu_seconds(settings: Settings) -> dict[str, float]:
    """CPU seconds used so far by the Kafka broker, the PostgreSQL cluster and the whole machine.

    PostgreSQL's backends come and go: the postmaster's own time, its reaped children's time
    (cutime/cstime) and its live children's time together count every backend.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    result: dict[str, float] = {}
    kafka_pid = Kafka(settings).pid_file
    if kafka_pid.exists():
        result["kafka"] = _proc_cpu_seconds(int(kafka_pid.read_text().strip()))
    postmaster_file = Postgres(settings).data / "postmaster.pid"
    if postmaster_file.exists():
        postmaster = int(postmaster_file.read_text().split()[0])
        own = _proc_fields(postmaster)
        total = sum(int(own[i]) for i in (11, 12, 13, 14))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = _proc_fields(int(entry.name))
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        result["postgresql"] = total / ticks
    busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal: user to softirq is this machine's work;
    # steal is time the hypervisor gave to others, reported apart.
    result["machine"] = sum(int(v) for i, v in enumerate(busy[:7]) if i not in (3, 4)) / ticks
    result["steal"] = int(busy[7]) / ticks
    return result


def _proc_memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True, slots=True)
class BenchContext:
    settings: Settings
    superuser_dsn: str


def _prepare(base: Settings, tag: str) -> BenchContext:
    settings = base.model_copy(update={"pg_database": f"schoolhealth_bench_{tag}", "topic_prefix": f"bench{tag}."})
    superuser = Postgres(base)._superuser_dsn()
    bootstrap_database(settings, superuser, timescaledb=False)
    migrate(settings)
    create_topics(settings)
    with KafkaAdmin(settings) as admin:
        admin.create_topics([NewTopicSpec(name=settings.topic(name), partitions=settings.topic_partitions, configs={})
                             for name in (SINGLE_TOPIC, ENVELOPE_TOPIC)])
    return BenchContext(settings=settings, superuser_dsn=superuser)


def _cleanup(context: BenchContext) -> None:
    with psycopg.connect(context.superuser_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(context.settings.pg_database)))
    with KafkaAdmin(context.settings) as admin:
        prefix = context.settings.topic_prefix
        admin.delete_topics(sorted(name for name in admin.topics() if name.startswith(prefix)))


async def _produce(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**client_options(settings, "admin", library="aiokafka"), acks="all", linger_ms=10,
                                max_batch_size=PRODUCER_BATCH_BYTES, max_request_size=MESSAGE_MAX_BYTES)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _raw_consume(settings: Settings, count: int, *, decode_family: str | None = None) -> float:
    """Seconds to consume `count` events: one-event messages through json.loads, or (with
    `decode_family`) the batch envelopes through the worker's decoder."""
    from aiokafka import AIOKafkaConsumer

    topic = SINGLE_TOPIC if decode_family is None else ENVELOPE_TOPIC
    consumer = AIOKafkaConsumer(settings.topic(topic), **client_options(settings, "admin", library="aiokafka"),
                                group_id=f"{settings.topic_prefix}raw-{topic}", auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    seen = 0
    started = 0.0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                if not started:
                    started = time.perf_counter()
                for record in records:
                    if decode_family is None:
                        json.loads(record.value or b"null")
                        seen += 1
                    else:
                        seen += len(decode_message(record.value or b"", family=decode_family).events)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def _bare_faust(settings: Settings, count: int, *, decode_family: str | None = None) -> dict[str, float]:
    """Run the bare faust agent in its own process (as a worker would be): counting one-event
    messages, or (with `decode_family`) decoding the batch envelopes as the worker does."""
    result_file = settings.state_dir / f"bench-faust-{uuid.uuid4().hex}.json"
    env = {**os.environ, **settings.as_environment()}
    topic, mode = (SINGLE_TOPIC, ["count"]) if decode_family is None else (ENVELOPE_TOPIC, ["decode", decode_family])
    process = subprocess.Popen([sys.executable, "-m", "services.devtools._bench_faust", settings.topic(topic),
                                str(count), str(result_file), *mode], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 1800
        while not result_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare faust agent did not finish counting")
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one call; give it a moment to be complete
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    result: dict[str, float] = json.loads(result_file.read_text())
    result_file.unlink()
    return result


def _raw_copy(settings: Settings, rows: list[tuple[Any, ...]]) -> float:
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        use_memoised_text_arrays(conn)  # as the archive writer does
        conn.execute(sql.SQL("CREATE TEMP TABLE bench_copy ({})").format(sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in GROWTH.columns)))
        started = time.perf_counter()
        with conn.cursor().copy(sql.SQL("COPY bench_copy ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(sql.Identifier(n) for n in GROWTH.names))) as copy:
            copy.set_types(GROWTH.types)
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def _archive_count(settings: Settings) -> int:
    with psycopg.connect(settings.pg_dsn("app")) as conn:
        row = conn.execute("SELECT count(*) FROM archive.growth_screenings").fetchone()
    return int(row[0]) if row else 0


def _wait_for_group(settings: Settings, members: int, processes: list[subprocess.Popen[bytes]],
                    log_dir: Path) -> None:
    """Until the consumer group is Stable with every worker in it (no rebalance mid-run)."""
    deadline = time.monotonic() + 120
    with KafkaAdmin(settings) as admin:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a worker exited while joining; see {log_dir}")
            group = admin.group_state(settings.consumer_group)
            if group.state == "Stable" and group.members == members:
                return
            time.sleep(0.5)
    raise RuntimeError(f"the consumer group did not settle with {members} member(s); see {log_dir}")


def _envelopes(topic: str, events: list[BmiScreening]) -> list[tuple[str, bytes, bytes]]:
    """The importer's messages: envelopes of up to `BATCH_EVENTS` events, one school each, keyed by school."""
    by_school: dict[str, list[BmiScreening]] = {}
    for event in events:
        by_school.setdefault(event.school_id, []).append(event)
    return [(topic, school.encode(), encode_batch(group[i:i + BATCH_EVENTS]))
            for school, group in by_school.items() for i in range(0, len(group), BATCH_EVENTS)]


def _end_to_end(settings: Settings, events: list[BmiScreening], workers: int, *,
                single: bool = False) -> dict[str, Any]:
    """Events through real workers into the archive: in batch envelopes, or one per message."""
    log_dir = settings.state_dir / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = [spawn_command(settings, ["worker"], log=log_dir / f"worker-{n}.log", new_session=False)
                 for n in range(workers)]
    try:
        _wait_for_group(settings, workers, processes, log_dir)
        # Warm up: wait until a first set of events is stored, so the measurement starts with
        # every worker in the group, its partitions assigned and its connections open.
        stored_before = _archive_count(settings)
        warmup = make_events(256, seed=999 + single)
        asyncio.run(_produce(settings, [(settings.topic(BMI_SCREENINGS), e.school_id.encode(),
                                         encode_event(e)) for e in warmup]))
        deadline = time.monotonic() + 120
        while _archive_count(settings) < stored_before + len(warmup):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"workers did not warm up; see {log_dir}")
            time.sleep(0.2)
        topic = settings.topic(BMI_SCREENINGS)
        messages = ([(topic, e.school_id.encode(), encode_event(e)) for e in events] if single
                    else _envelopes(topic, events))
        target = stored_before + len(warmup) + len(events)
        cpu_before = [_proc_cpu_seconds(p.pid) for p in processes]
        servers_before = _server_cpu_seconds(settings)
        bench_before = time.process_time()
        started = time.perf_counter()
        produce_seconds = asyncio.run(_produce(settings, messages))
        rss_samples: list[list[int]] = []
        while (stored := _archive_count(settings)) < target:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a worker exited during the run; see {log_dir}")
            rss_samples.append([_proc_memory_kib(p.pid, "VmRSS") for p in processes])
            # count(*) scans the table, so it is not free: poll about twice per remaining
            # expected second (rarely while far from the end, every 50 ms close to it).
            so_far = time.perf_counter() - started
            done = stored - stored_before - len(warmup)
            rate = done / so_far if done > 0 else 0.0
            remaining = (target - stored) / rate if rate > 0 else 0.5
            time.sleep(min(1.0, max(0.05, remaining / 2)))
        elapsed = time.perf_counter() - started
        cpu = [_proc_cpu_seconds(p.pid) - before for p, before in zip(processes, cpu_before, strict=True)]
        servers_after = _server_cpu_seconds(settings)
        servers = {name: servers_after[name] - servers_before[name] for name in servers_after if name in servers_before}
        # This process produces the events and polls the archive's row count.
        servers["bench_process"] = time.process_time() - bench_before
        servers["other"] = servers["machine"] - sum(cpu) - sum(
            servers.get(name, 0.0) for name in ("kafka", "postgresql", "bench_process"))
        peak = [_proc_memory_kib(p.pid, "VmHWM") for p in processes]
        return {
            "events": len(events), "messages": len(messages), "workers": workers,
            "seconds": elapsed, "events_per_second": len(events) / elapsed,
            "produce_seconds": produce_seconds, "stored": stored - stored_before - len(warmup),
            "worker_cpu_seconds": cpu, "cpu_microseconds_per_event_per_process":
                [c / len(events) * 1e6 for c in cpu],
            "cpu_seconds": {"workers": sum(cpu), **servers},
            "cpu_microseconds_per_event": {name: seconds / len(events) * 1e6
                                           for name, seconds in {"workers": sum(cpu), **servers}.items()},
            "worker_peak_rss_mib": [k / 1024 for k in peak],
            "worker_rss_mib_first_last": [[s / 1024 for s in rss_samples[0]], [s / 1024 for s in rss_samples[-1]]]
            if rss_samples else None,
        }
    finally:
        stop_processes(processes)


def run_pipeline_bench(base: Settings, *, events: int, workers: int, out: Path) -> dict[str, Any]:
    """Run all four measurements on the same events and write the JSON result to `out`."""
    tag = uuid.uuid4().hex[:8]
    context = _prepare(base, tag)
    settings = context.settings
    try:
        built = time.perf_counter()
        sample = make_events(events)
        build_seconds = time.perf_counter() - built
        singles = [encode_event(e) for e in sample]
        asyncio.run(_produce(settings, [(settings.topic(SINGLE_TOPIC), e.school_id.encode(), v)
                                        for e, v in zip(sample, singles, strict=True)]))
        raw_seconds = asyncio.run(_raw_consume(settings, events))
        faust = _bare_faust(settings, events)
        # Like with like: the same envelopes the workers get, decoded by the same code.
        asyncio.run(_produce(settings, _envelopes(settings.topic(ENVELOPE_TOPIC), sample)))
        raw_decode_seconds = asyncio.run(_raw_consume(settings, events, decode_family="bmi-screening"))
        faust_decode = _bare_faust(settings, events, decode_family="bmi-screening")
        classified = ProcessedMessages()
        started = time.perf_counter()
        for event in sample:
            classify_event(event, classified)
        classify_seconds = time.perf_counter() - started
        copy_seconds = _raw_copy(settings, [growth_row(item) for item in classified.growth])
        end_to_end = _end_to_end(settings, sample, workers)
        single_sample = make_events(min(events, SINGLE_PATH_EVENTS), seed=2)
        single_path = _end_to_end(settings, single_sample, workers, single=True)
    finally:
        _cleanup(context)
    result = {
        "benchmark": "pipeline",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count()},
        "events": events,
        "event_bytes_mean": sum(map(len, singles)) / len(singles),
        "partitions": settings.topic_partitions,
        "batch_envelope_events": BATCH_EVENTS,
        "build_events_seconds": build_seconds,
        "raw_aiokafka_consume": {"seconds": raw_seconds, "events_per_second": events / raw_seconds},
        "bare_faust_count": {"seconds": faust["seconds"], "events_per_second": events / faust["seconds"]},
        "raw_aiokafka_consume_decode_envelopes": {"seconds": raw_decode_seconds,
                                                  "events_per_second": events / raw_decode_seconds},
        "bare_faust_decode_envelopes": {"seconds": faust_decode["seconds"],
                                        "events_per_second": events / faust_decode["seconds"]},
        "classify_in_process": {"seconds": classify_seconds, "events_per_second": events / classify_seconds},
        "raw_binary_copy": {"seconds": copy_seconds, "rows_per_second": events / copy_seconds},
        "end_to_end": end_to_end,
        "end_to_end_single_event_messages": single_path,
    }
    e2e = end_to_end["events_per_second"]
    result["ratios"] = {
        "end_to_end_over_bare_faust": e2e / (events / faust["seconds"]),
        "end_to_end_over_raw_consume": e2e / (events / raw_seconds),
        "end_to_end_over_raw_copy": e2e / (events / copy_seconds),
        "end_to_end_over_raw_consume_decode_envelopes": e2e / (events / raw_decode_seconds),
        "end_to_end_over_bare_faust_decode_envelopes": e2e / (events / faust_decode["seconds"]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
