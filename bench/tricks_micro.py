"""In-process micro-benchmark of the worker's three speed tricks, each against the plain way, side by side.

Not the verdict: issue 16 keeps a trick only if the end-to-end pipeline benchmark (`schoolhealth bench
pipeline`, run on this tree and on the branch without the tricks) shows at least 5 %. This script
says where each trick could matter at most, on the worker's CPU path without Kafka or PostgreSQL:

* uuid5: `models.identity.event_id_for` (SHA-1 over CPython's private `json.encoder.encode_basestring`
  output) against `uuid.uuid5(namespace, json.dumps(...))`, per id. The worker derives one per alert.
  Since the quiet A/B of 3 December (bench/README.md) `event_id_for` is the standard library's form
  again, so this comparison now times the same code twice; the results of 02:52 and 02:56 UTC are
  the record of the hand-rolled version.
* gc: decoding, classifying, evaluating the alert rules and building archive rows for 500-event
  envelopes of BMI screenings, with the default cyclic-GC thresholds against the worker's
  `gc.freeze()` + `gc.set_threshold(50_000, 20, 20)`, per event.
* mallopt: the same work in two fresh interpreters, one with `mallopt(M_MMAP_THRESHOLD, 128 KiB)`,
  one without: CPU per event and peak RSS (the trick's claim is memory, not speed).

Rounds of the two sides alternate; each figure is the best round (process time), so a busy machine
inflates both sides alike rather than one. Usage (from the repository root, stack not needed):

    PYTHONPATH=. .venv/bin/python bench/tricks_micro.py [--events 20000] [--rounds 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _stdlib_event_id(*parts: str) -> uuid.UUID:
    from models.identity import EVENT_ID_NAMESPACE

    return uuid.uuid5(EVENT_ID_NAMESPACE, json.dumps(parts, ensure_ascii=False, separators=(",", ":")))


def _best(rounds: int, sides: dict[str, tuple[Callable[[], None], Callable[[], int]]]) -> dict[str, float]:
    """Best process-time microseconds per item of each side, the sides' rounds alternating. Each
    side is (set-up, run): only the run is timed (the worker sets its GC up once, at start)."""
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(rounds):
        for name, (set_up, run) in sides.items():
            set_up()
            started = time.process_time()
            items = run()
            best[name] = min(best[name], (time.process_time() - started) / items * 1e6)
    return {name: round(value, 3) for name, value in best.items()}


def _nothing() -> None:
    return None


def bench_uuid5(rounds: int) -> dict[str, Any]:
    from models.identity import event_id_for

    parts = [("alert", str(uuid.UUID(int=n * 7919, version=4)), "phq-a-item9", "1") for n in range(20_000)]
    for one in parts[:1000]:
        assert event_id_for(*one) == _stdlib_event_id(*one)

    def hand_rolled() -> int:
        for one in parts:
            event_id_for(*one)
        return len(parts)

    def stdlib() -> int:
        for one in parts:
            _stdlib_event_id(*one)
        return len(parts)

    figures = _best(rounds, {"hand_rolled_us_per_id": (_nothing, hand_rolled),
                             "stdlib_us_per_id": (_nothing, stdlib)})
    return figures | {"what": "one alert event id (4 parts)"}


def _envelopes(events: int) -> list[bytes]:
    from models.codecs import encode_batch
    from services.devtools.bench_pipeline import make_events
    from services.intake.importer import BATCH_EVENTS

    made = make_events(events)
    return [encode_batch(made[i:i + BATCH_EVENTS]) for i in range(0, len(made), BATCH_EVENTS)]


def _worker_cpu_path(envelopes: list[bytes]) -> int:
    """What the worker's CPU does for a micro-batch, without Kafka and PostgreSQL."""
    from models.contracts import BMI_SCREENING
    from models.pipeline import ProcessedMessages, process_message
    from models.rules import evaluate_batch
    from services.pipeline.archive_writer import growth_row

    out = ProcessedMessages()
    for payload in envelopes:
        process_message(payload, expected_family=BMI_SCREENING, out=out)
    evaluate_batch(out)
    rows = [growth_row(item) for item in out.growth]
    return len(rows)


def bench_gc(events: int, rounds: int) -> dict[str, Any]:
    envelopes = _envelopes(events)
    defaults = gc.get_threshold()

    def default_gc() -> None:
        gc.unfreeze()
        gc.set_threshold(*defaults)

    def worker_gc() -> None:  # as streams.worker.run_worker does before it starts faust
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)

    def run() -> int:
        return _worker_cpu_path(envelopes)

    try:
        figures = _best(rounds, {"default_gc_us_per_event": (default_gc, run),
                                 "worker_gc_us_per_event": (worker_gc, run)})
    finally:
        default_gc()
    from models.contracts import BMI_SCREENING
    from models.pipeline import ProcessedMessages, process_message
    from models.rules import evaluate_batch

    out = ProcessedMessages()
    for payload in envelopes:
        process_message(payload, expected_family=BMI_SCREENING, out=out)
    # Each alert costs one event id: with the uuid5 figures this bounds that trick's share per event.
    alerts_per_event = len(evaluate_batch(out)) / events
    return figures | {"events_per_round": events, "default_thresholds": list(defaults),
                      "alerts_per_event": round(alerts_per_event, 4)}


_CHILD = """
import ctypes, ctypes.util, json, sys, time
if {mallopt!r}:
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 128 * 1024)
sys.path.insert(0, {bench!r})
import tricks_micro
envelopes = tricks_micro._envelopes({events})
best = float("inf")
for _ in range({rounds}):
    fresh = [bytes(bytearray(payload)) for payload in envelopes]  # new buffers, as Kafka delivers them
    started = time.process_time()
    count = tricks_micro._worker_cpu_path(fresh)
    best = min(best, (time.process_time() - started) / count * 1e6)
    del fresh
# VmHWM: this interpreter's own peak (ru_maxrss would carry the parent's over exec).
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"us_per_event": round(best, 3), "peak_rss_kib": peak}}))
"""


def bench_mallopt(events: int, rounds: int) -> dict[str, Any]:
    results: dict[str, list[dict[str, float]]] = {"with_mallopt": [], "without_mallopt": []}
    for _ in range(2):  # two fresh interpreters per side, alternating
        for name, mallopt in (("with_mallopt", True), ("without_mallopt", False)):
            code = _CHILD.format(bench=str(ROOT / "bench"), mallopt=mallopt, events=events, rounds=rounds)
            answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=1800)
            results[name].append(json.loads(answer.stdout.strip().splitlines()[-1]))
    return {name: {"us_per_event": min(r["us_per_event"] for r in runs),
                   "peak_rss_kib": min(int(r["peak_rss_kib"]) for r in runs)}
            for name, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    result = {
        "benchmark": "tricks_micro",
        "started_at": started.isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                                 check=False).stdout.strip(),
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before]},
        "uuid5": bench_uuid5(args.rounds),
        "gc": bench_gc(args.events, args.rounds),
        "mallopt": bench_mallopt(args.events, max(2, args.rounds // 2)),
        "note": "in-process CPU path only; the verdict is the end-to-end pipeline A/B (>= 5 % to keep a trick)",
    }
    result["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
