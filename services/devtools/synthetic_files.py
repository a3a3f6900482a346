"""Write a synthetic province (`models.synthetic`) as the import CSV files plus ``truth.csv``.

One file per kind, UTF-8, with a header row, streamed as the generator produces rows, so memory
stays constant whatever the province's size. Each file is written under a temporary name and
renamed when complete: a failed run never leaves a truncated ``bmi.csv`` that looks finished.

With ``workers > 1`` counties are generated in separate processes, each into its own part
files, and the parts are appended in county order: the files are byte for byte those of one
process.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import TextIO

from models.synthetic import HEADERS, KINDS, GeneratorStats, ProvinceSpec, county_count, generate_blocks

__all__ = ["file_name", "write_province"]

_BUFFER_BYTES = 1 << 20


def file_name(kind: str) -> str:
    """The file a kind of row goes to: ``schools.csv``, ``roster.csv``, ..., ``truth.csv``."""
    if kind not in HEADERS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"{kind}.csv"


def write_province(spec: ProvinceSpec, out_dir: Path, *, workers: int = 1) -> GeneratorStats:
    """Generate `spec` into ``out_dir/<kind>.csv`` (created if missing); return the counts.

    Existing files of the same names are replaced only once every file is complete. `workers`
    processes generate counties in parallel; the output does not depend on it.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = {kind: out_dir / f".{file_name(kind)}.partial" for kind in KINDS}
    try:
        with _open_all(partial) as handles:
            for kind, handle in handles.items():
                _write_rows(handle, len(HEADERS[kind]), [HEADERS[kind]])
            n_counties = county_count(spec)
            if workers == 1 or n_counties == 1:
                stats = _write_blocks(spec, range(n_counties), handles)
            else:
                stats = _write_in_parallel(spec, n_counties, workers, out_dir, handles)
        for kind, path in partial.items():
            os.replace(path, out_dir / file_name(kind))
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)
    return stats


@contextmanager
def _open_all(paths: dict[str, Path]) -> Iterator[dict[str, TextIO]]:
    with ExitStack() as stack:
        yield {
            kind: stack.enter_context(path.open("w", encoding="utf-8", newline="", buffering=_BUFFER_BYTES))
            for kind, path in paths.items()
        }


def _write_blocks(spec: ProvinceSpec, counties: range, handles: dict[str, TextIO]) -> GeneratorStats:
    stats = GeneratorStats()
    for kind, rows in generate_blocks(spec, stats, counties=counties):
        _write_rows(handles[kind], len(HEADERS[kind]), rows)
    return stats


def _write_county_parts(spec: ProvinceSpec, county: int, part_dir: Path) -> GeneratorStats:
    """Worker: one county's rows into ``part_dir/<kind>.csv``, without headers."""
    part_dir.mkdir(parents=True, exist_ok=True)
    with _open_all({kind: part_dir / file_name(kind) for kind in KINDS}) as handles:
        return _write_blocks(spec, range(county, county + 1), handles)


def _write_in_parallel(
    spec: ProvinceSpec, n_counties: int, workers: int, out_dir: Path, handles: dict[str, TextIO]
) -> GeneratorStats:
    stats = GeneratorStats()
    parts_root = out_dir / ".parts"
    # Spawned workers share nothing with this process but the spec; each runs ahead by at most
    # one county per worker, so at most `2 * workers` counties' parts are on disk at a time.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: deque[tuple[Path, Future[GeneratorStats]]] = deque()
        next_county = 0
        try:
            while pending or next_county < n_counties:
                while next_county < n_counties and len(pending) < 2 * workers:
                    part_dir = parts_root / f"{next_county:04d}"
                    pending.append((part_dir, pool.submit(_write_county_parts, spec, next_county, part_dir)))
                    next_county += 1
                part_dir, future = pending.popleft()
                stats.merge(future.result())
                for kind, handle in handles.items():
                    with (part_dir / file_name(kind)).open(encoding="utf-8", newline="") as part:
                        shutil.copyfileobj(part, handle, _BUFFER_BYTES)
                shutil.rmtree(part_dir)
        finally:
            for _, future in pending:
                future.cancel()
    shutil.rmtree(parts_root, ignore_errors=True)
    return stats


def _write_rows(handle: TextIO, columns: int, rows: Iterable[Sequence[str]]) -> None:
    """Write rows as CSV lines, joined in C unless some cell needs quoting.

    A block goes out as plain joined text only if the text has exactly the commas and line
    breaks that the joins put there and no quote or carriage return: then no cell holds a
    delimiter, quote or newline, and the text is byte for byte what `csv.writer` would write.
    Any other block is written by `csv.writer`, which quotes.
    """
    block = rows if isinstance(rows, list) else list(rows)
    if not block:
        return
    text = "\n".join(map(",".join, block))
    if (
        text.count(",") == len(block) * (columns - 1)
        and text.count("\n") == len(block) - 1
        and '"' not in text
        and "\r" not in text
    ):
        handle.write(text)
        handle.write("\n")
    else:
        csv.writer(handle, lineterminator="\n").writerows(block)
