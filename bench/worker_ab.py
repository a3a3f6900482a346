"""Benchmark: two ways the worker could spend less CPU per event, measured before adopting either.

Usage: ``.venv/bin/python bench/worker_ab.py [--events 20000] [--extra-site-packages DIR]``

Issue 18 asks for "decoding with a faster library" and "classification vectorised per batch" only
where each measurably pays. On the pipeline benchmark's own events (`make_events`, in the
importer's 500-event envelopes), in one process, CPU time, min of 7 rounds:

1. decoding: pydantic-core parsing and validating the envelope in one pass (what the worker does)
   against a faster JSON parser (orjson, msgspec; give their site-packages with
   ``--extra-site-packages`` if the project does not install them) feeding pydantic's
   validation. The contracts are strict: a parsed dict only validates in lax mode, which would
   also accept what the JSON mode refuses, so the alternatives are timed in lax mode as a bound.
2. the two z-scores every pupil gets (height-for-age and BMI-for-age, restricted beyond +-3 SD),
   one event at a time (`models.growth`) against numpy over the batch (`models.growth_arrays`),
   each rounded the same way; how many rounded z-scores differ is counted.

Writes ``bench/results/worker_ab.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "worker_ab.json"
ROUNDS = 7


def _per_event(work: Callable[[], object], events: int) -> float:
    """Least CPU µs per event over `ROUNDS` runs of `work` (the least disturbed run)."""
    times = []
    for _ in range(ROUNDS):
        started = time.process_time()
        work()
        times.append((time.process_time() - started) / events * 1e6)
    return min(times)


def decoding(payloads: Sequence[bytes], events: int) -> dict[str, float]:
    from models.codecs import _FAMILY_BATCH_ADAPTERS, decode_message

    adapter = _FAMILY_BATCH_ADAPTERS["bmi-screening"]
    ways: dict[str, Callable[[bytes], object]] = {
        "pydantic_validate_json_decode_message": lambda p: decode_message(p, family="bmi-screening"),
        "json_loads_then_validate_python_lax": lambda p: adapter.validate_python(json.loads(p), strict=False),
    }
    try:
        import orjson

        ways["orjson_loads_then_validate_python_lax"] = lambda p: adapter.validate_python(orjson.loads(p),
                                                                                            strict=False)
        ways["orjson_parse_only"] = orjson.loads
    except ImportError:
        pass
    try:
        import msgspec

        decoder = msgspec.json.Decoder()
        ways["msgspec_decode_then_validate_python_lax"] = lambda p: adapter.validate_python(decoder.decode(p),
                                                                                              strict=False)
    except ImportError:
        pass
    return {name: _per_event(lambda way=way: [way(p) for p in payloads], events) for name, way in ways.items()}


def z_scores(events: Sequence[Any]) -> dict[str, float]:
    import numpy as np

    from models.growth import _interpolated_lms, _raw_z, _restricted_z, _round_z
    from models.growth_arrays import lms_zs, who_lms_arrays

    def one_at_a_time() -> list[tuple[float, float]]:
        out = []
        for e in events:
            l, m, s = _interpolated_lms("height", e.sex, e.age_months)  # noqa: E741
            bmi = e.weight_kg / (e.height_cm / 100) ** 2
            height_z = _round_z(_raw_z(l, m, s, e.height_cm))
            out.append((height_z, _round_z(_restricted_z("bmi", e.sex, e.age_months, bmi))))
        return out

    def per_batch(batch: Sequence[Any]) -> list[tuple[float, float]]:
        female = np.array([e.sex == "female" for e in batch])
        age = np.array([e.age_months for e in batch])
        height, weight = np.array([e.height_cm for e in batch]), np.array([e.weight_kg for e in batch])
        height_z = lms_zs(*who_lms_arrays("height", female, age), height)
        bmi_z = lms_zs(*who_lms_arrays("bmi", female, age), weight / (height / 100) ** 2, restricted=True)
        return [(_round_z(h), _round_z(b)) for h, b in zip(height_z.tolist(), bmi_z.tolist(), strict=True)]

    batches = [events[i:i + 500] for i in range(0, len(events), 500)]
    scalar = one_at_a_time()
    vector = [pair for batch in batches for pair in per_batch(batch)]
    differing = sum(a != b for pairs in zip(scalar, vector, strict=True) for a, b in zip(*pairs, strict=True))
    return {
        "one_at_a_time_us_per_event": _per_event(one_at_a_time, len(events)),
        "numpy_per_500_event_batch_us_per_event": _per_event(lambda: [per_batch(b) for b in batches], len(events)),
        "rounded_z_scores_compared": 2 * len(events),
        "rounded_z_scores_differing": differing,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--extra-site-packages", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.extra_site_packages is not None:
        sys.path.append(str(args.extra_site_packages))
    from models.codecs import encode_batch
    from services.devtools.bench_pipeline import make_events
    from services.intake.importer import BATCH_EVENTS

    events = make_events(args.events)
    by_school: dict[str, list[Any]] = {}
    for event in events:
        by_school.setdefault(event.school_id, []).append(event)
    payloads = [encode_batch(group[i:i + BATCH_EVENTS]) for group in by_school.values()
                for i in range(0, len(group), BATCH_EVENTS)]
    # The worker's own collector settings (streams/worker.py), so the figures are the worker's.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    result = {
        "benchmark": "worker_ab", "at": datetime.now(UTC).isoformat(), "events": args.events,
        "load_average_at_start": os.getloadavg(), "rounds": ROUNDS,
        "decode_us_per_event": decoding(payloads, args.events),
        "z_scores": z_scores(events),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
