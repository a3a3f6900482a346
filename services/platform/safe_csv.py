"""Files the project writes for people to open in a spreadsheet: no cell runs as a formula.

A value that came from outside (a school's name, a pupil's name, a rejected cell) and starts with
=, +, -, @, a tab or a carriage return would run as a formula in Excel or WPS (CSV injection):
`csv_safe` gives it a leading apostrophe, which spreadsheets show as text. Every CSV the project
writes goes through `SafeCsvWriter` / `SafeDictWriter` (tests/unit/services/platform/test_csv_outputs.py checks that
no module calls csv.writer itself), and XLSX rows through `xlsx_safe_row`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Characters a spreadsheet treats as the start of a formula (OWASP CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell for a CSV the project writes: text a spreadsheet would run as a formula gets a leading '."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_PREFIXES):
        # A plain negative number stays a number.
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def csv_safe_row(values: list[Any] | tuple[Any, ...]) -> list[str]:
    return [csv_safe(value) for value in values]


class SafeCsvWriter:
    """`csv.writer` whose every cell goes through `csv_safe`: the only way the project writes CSV
    (tests/unit/services/platform/test_csv_outputs.py checks that no module calls csv.writer itself)."""

    def __init__(self, handle: Any, **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow(csv_safe_row(list(row)))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter:
    """`csv.DictWriter` whose every cell goes through `csv_safe`."""

    def __init__(self, handle: Any, fieldnames: Sequence[str], **options: Any) -> None:
        self.fieldnames = list(fieldnames)
        self._writer = SafeCsvWriter(handle, **options)

    def writeheader(self) -> None:
        self._writer.writerow(self.fieldnames)

    def writerow(self, row: Mapping[str, Any]) -> None:
        unknown = set(row) - set(self.fieldnames)
        if unknown:
            raise ValueError(f"dict contains fields not in fieldnames: {sorted(unknown)}")
        self._writer.writerow(row.get(name, "") for name in self.fieldnames)

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)


def xlsx_safe_row(values: Iterable[Any]) -> list[Any]:
    """Cells for openpyxl's `append`: text that openpyxl would store as a formula (a leading =) is
    neutralised like a CSV cell; numbers, dates and other text are kept as they are."""
    return [csv_safe(value) if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) else value
            for value in values]
