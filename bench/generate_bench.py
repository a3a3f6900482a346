"""Benchmark: generate a synthetic province into CSV files through `write_province`.

Usage: ``.venv/bin/python bench/generate_bench.py [--students 1000000] [--workers 1]``

Writes ``bench/results/generate.json``: students, wall and CPU seconds, rows per kind, bytes per
file and peak RSS. It also measures two ceilings in the same run, so the result can be read as
ratios that hold on a noisy, shared machine: the generator alone (rows consumed, no files) on a
sample of the province, and writing the same number of bytes of ready-made text to disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from models.synthetic import KINDS, ProvinceSpec, generate_blocks
from services.devtools.synthetic_files import file_name, write_province

RESULTS = Path(__file__).parent / "results" / "generate.json"
_CHUNK = b"x" * (1 << 20)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mib() -> dict[str, float]:
    # Linux reports ru_maxrss in KiB.
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _generate_only(spec: ProvinceSpec) -> dict[str, float]:
    """Ceiling: the generator's own speed, rows produced and dropped."""
    started = time.perf_counter()
    rows = 0
    for _, block in generate_blocks(spec):
        for _ in block:
            rows += 1
    seconds = time.perf_counter() - started
    return {"students": spec.students, "seconds": round(seconds, 3), "rows": rows,
            "students_per_second": round(spec.students / seconds)}


def _raw_write(directory: Path, total_bytes: int) -> dict[str, float]:
    """Ceiling: writing as many bytes as the province's files, with nothing to compute."""
    path = directory / "raw.bin"
    started = time.perf_counter()
    with path.open("wb") as handle:
        remaining = total_bytes
        while remaining > 0:
            remaining -= handle.write(_CHUNK[: min(remaining, len(_CHUNK))])
        handle.flush()
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - started
    path.unlink()
    return {"bytes": total_bytes, "seconds": round(seconds, 3), "mib_per_second": round(total_bytes / 2**20 / seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20251)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ceiling-students", type=int, default=100_000,
                        help="province size for the generator-only ceiling")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    spec = ProvinceSpec(students=args.students, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="schoolhealth-generate-") as temporary:
        directory = Path(temporary)
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        stats = write_province(spec, directory / "province", workers=args.workers)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        sizes = {file_name(kind): (directory / "province" / file_name(kind)).stat().st_size for kind in KINDS}
        peak = _peak_rss_mib()
        raw = _raw_write(directory, sum(sizes.values()))
    ceiling = _generate_only(ProvinceSpec(students=min(args.students, args.ceiling_students), seed=args.seed))

    total_rows = sum(stats.rows.values())
    result = {
        "students": args.students,
        "students_incl_later_intakes": stats.students,
        "workers": args.workers,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "students_per_second": round(args.students / seconds),
        "rows_per_second": round(total_rows / seconds),
        "rows": stats.rows,
        "rows_total": total_rows,
        "bad_records": stats.bad_records,
        "bytes": sizes,
        "bytes_total": sum(sizes.values()),
        "peak_rss_mib": peak,
        "ceilings": {"generate_only": ceiling, "raw_write": raw},
        "stats": stats.as_dict(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({key: result[key] for key in ("students", "seconds", "cpu_seconds", "students_per_second",
                                                   "bytes_total", "peak_rss_mib")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
