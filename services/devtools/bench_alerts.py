"""`schoolhealth bench alerts`: how fast a self-harm answer reaches the counsellor's queue.

On a fresh database and topic prefix of the local stack it starts a real worker, the alert
service and the API (each its own process), opens the counsellor's live feed (server-sent events)
and produces PHQ-A surveys with a non-zero item 9. Latency is from the moment the survey is handed
to the Kafka producer to the moment its alert arrives on the feed, i.e. is committed and visible
through the API. Two phases in one run: idle (the floor on this machine), then with `rate`
other events per second flowing through the same worker. The queue is checked through
`GET /alerts` at the end, so no probe is counted that the API would not show.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from models.topics import BMI_SCREENINGS, PSYCH_SURVEYS
from services.access.users import add_user
from services.devtools.stack import Postgres
from services.platform.database import bootstrap_database
from services.platform.kafka import KafkaAdmin
from services.platform.kafka_security import client_options
from services.platform.migrate import migrate
from services.platform.network import free_port
from services.platform.processes import spawn_command, stop_processes
from services.platform.settings import PROJECT_ROOT, Settings
from services.platform.topics import create_topics

PROBE_SCHOOL = "BA01"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _stats(latencies: list[float]) -> dict[str, float | int]:
    if not latencies:
        return {"count": 0}
    return {"count": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p90_ms": round(_percentile(latencies, 0.90) * 1000, 1),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1), "max_ms": round(max(latencies) * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1)}


def _probe(now: datetime) -> tuple[str, bytes]:
    key = secrets.token_hex(32)
    event = {
        "event_id": str(uuid.uuid4()), "schema": {"family": "psych-survey", "version": 1},
        "occurred_at": now.isoformat(), "school_id": PROBE_SCHOOL, "student_key": key, "submitted_by": "importer",
        "answered_on": now.date().isoformat(), "sex": "female", "age_months": 170.0, "instrument": "phq-a",
        "instrument_version": "1", "answers": [0, 1, 0, 0, 0, 0, 0, 0, 1],
    }
    return key, json.dumps(event).encode()


def _background_event(now: str, today: str, n: int) -> tuple[bytes, bytes]:
    school = f"BL{n % 50:03d}"
    # Normal weight for age: no alert, so the load is "other events" only.
    sex = "male" if n % 2 else "female"
    return school.encode(), (
        f'{{"event_id":"{uuid.uuid4()}","schema":{{"family":"bmi-screening","version":1}},"occurred_at":"{now}",'
        f'"school_id":"{school}","student_key":"{secrets.token_hex(32)}","submitted_by":"importer",'
        f'"measured_on":"{today}","sex":"{sex}","age_months":130.0,"height_cm":140.0,"weight_kg":33.0,'
        '"screener":"bench-1"}').encode()


class _Feed(threading.Thread):
    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.arrivals: dict[str, float] = {}
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", f"{self.url}/alerts/feed", headers={"Authorization": f"Bearer {self.token}"},
                          timeout=httpx.Timeout(10.0, read=None)) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data: "):
                    alert = json.loads(line[6:])
                    self.arrivals.setdefault(alert["student_key"], time.monotonic())
                if self.stop.is_set():
                    return


class _Load(threading.Thread):
    """`rate` events per second to the BMI topic, in 10 ms ticks, until stopped."""

    def __init__(self, settings: Settings, rate: int) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaProducer

        self.settings, self.rate = settings, rate
        self.producer = KafkaProducer(**client_options(settings, "admin"), acks="all", linger_ms=5)
        self.stop = threading.Event()
        self.sent = 0
        self.seconds = 0.0

    def run(self) -> None:
        topic = self.settings.topic(BMI_SCREENINGS)
        started = time.monotonic()
        now = datetime.now(UTC)
        stamp, today = now.isoformat(), now.date().isoformat()
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                key, value = _background_event(stamp, today, self.sent)
                self.producer.send(topic, key=key, value=value)
                self.sent += 1
            time.sleep(0.01)
        self.seconds = time.monotonic() - started
        self.producer.flush()
        self.producer.close()




def _send_probes(settings: Settings, feed: _Feed, count: int, interval: float) -> dict[str, float]:
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_options(settings, "admin"), acks="all", linger_ms=0)
    sent: dict[str, float] = {}
    try:
        for _ in range(count):
            key, value = _probe(datetime.now(UTC))
            sent[key] = time.monotonic()
            producer.send(settings.topic(PSYCH_SURVEYS), key=PROBE_SCHOOL.encode(), value=value)
            time.sleep(interval * random.uniform(0.5, 1.5))  # noqa: S311  (jitter, not a secret)
        producer.flush()
    finally:
        producer.close()
    return sent


def _collect(feed: _Feed, sent: dict[str, float], timeout: float = 15.0) -> tuple[list[float], int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(key in feed.arrivals for key in sent):
        time.sleep(0.05)
    latencies = [feed.arrivals[key] - start for key, start in sent.items() if key in feed.arrivals]
    return latencies, len(sent) - len(latencies)


def run_bench(base: Settings, *, seconds: float = 30.0, rate: int = 1000, probes_per_second: float = 2.0,
              fast_lane: bool = True, output: Path | None = None) -> dict[str, Any]:
    """Run both phases and write the result JSON; returns it (with a `summary`)."""
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"pg_database": f"schoolhealth_bench_alerts_{tag}",
                                       "topic_prefix": f"benchalerts{tag}.", "api_port": free_port()})
    superuser = Postgres(base)._superuser_dsn()
    bootstrap_database(settings, superuser, timescaledb=False)
    migrate(settings)
    create_topics(settings)
    token = add_user(settings, "bench-counsellor", "counsellor", schools=[PROBE_SCHOOL])
    logs = settings.state_dir / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    processes = [spawn_command(settings, ["worker"], log=logs / f"alerts-{tag}-worker.log", append=True),
                 spawn_command(settings, ["alerts", "serve", "--fast-lane" if fast_lane else "--no-fast-lane"],
                               log=logs / f"alerts-{tag}-service.log", append=True),
                 spawn_command(settings, ["api", "--port", str(settings.api_port)],
                               log=logs / f"alerts-{tag}-api.log", append=True)]
    url = f"http://{settings.api_host}:{settings.api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {logs}")
            time.sleep(0.2)
        feed = _Feed(url, token)
        feed.start()
        if not feed.connected.wait(30):
            raise RuntimeError("the live feed did not connect")
        # Warm-up: consumer groups join and connections open before anything is measured.
        warm, missing = _collect(feed, _send_probes(settings, feed, 3, 0.3), timeout=90)
        if missing:
            raise RuntimeError(f"warm-up alerts never arrived; see {logs}")
        idle, idle_missing = _collect(feed, _send_probes(settings, feed, 20, 0.25))

        load = _Load(settings, rate)
        load.start()
        time.sleep(3.0)
        probes = max(1, int(seconds * probes_per_second))
        loaded, loaded_missing = _collect(feed, _send_probes(settings, feed, probes, 1.0 / probes_per_second))
        load.stop.set()
        load.join()
        feed.stop.set()

        response = httpx.get(f"{url}/alerts", headers={"Authorization": f"Bearer {token}"},
                             params={"limit": 1000}, timeout=30)
        in_queue = len(response.json())
        with psycopg.connect(settings.pg_dsn("admin")) as conn:
            archived = conn.execute("SELECT count(*) FROM archive.growth_screenings").fetchone()
        result: dict[str, Any] = {
            "benchmark": "alerts: self-harm survey produced -> alert visible on the API's live feed",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
            "settings": {"worker_batch_size": settings.worker_batch_size,
                         "worker_batch_seconds": settings.worker_batch_seconds,
                         "topic_partitions": settings.topic_partitions, "workers": 1,
                         "alert_service_fast_lane": fast_lane},
            "idle": {**_stats(idle), "missing": idle_missing},
            "loaded": {**_stats(loaded), "missing": loaded_missing,
                       "background_events": load.sent,
                       "background_rate_per_s": round(load.sent / max(load.seconds, 1e-9), 1),
                       "background_archived_at_end": int(archived[0]) if archived else 0},
            "alerts_in_queue_via_get": in_queue,
            "alerts_expected": len(warm) + len(idle) + len(loaded) + idle_missing + loaded_missing,
            "goal": "loaded p99 < 1000 ms",
        }
        p99 = result["loaded"].get("p99_ms")
        result["summary"] = {"idle_p50_ms": result["idle"].get("p50_ms"), "idle_p99_ms": result["idle"].get("p99_ms"),
                             "loaded_p50_ms": result["loaded"].get("p50_ms"), "loaded_p99_ms": p99,
                             "background_rate_per_s": result["loaded"]["background_rate_per_s"],
                             "probes": probes, "missing": loaded_missing, "fast_lane": fast_lane,
                             "goal_met": p99 is not None and p99 < 1000 and loaded_missing == 0}
        default = "alerts_latency.json" if fast_lane else "alerts_latency_worker_path.json"
        path = output or PROJECT_ROOT / "bench" / "results" / default
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        return result
    finally:
        for process in processes:  # one at a time, each with what it started
            stop_processes([process], timeout=30, whole_group=True)
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(settings.pg_database)))
        with KafkaAdmin(settings) as admin:
            admin.delete_topics(sorted(name for name in admin.topics() if name.startswith(settings.topic_prefix)))
