"""Reading uploaded CSV/XLSX files within limits on what they expand to, not only on their size.

A 400 KB XLSX can unpack to gigabytes (a zip bomb), or hold millions of tiny shared strings that
openpyxl keeps in one list. So before openpyxl sees a workbook, `check_xlsx` reads the zip
directory (the number of parts and the sum of their uncompressed sizes: Python's zipfile never
returns more than a part's declared size, and fails the CRC check if the data run longer) and
streams the shared-strings part through expat, counting its strings and characters without
keeping them. Rows are then streamed and capped: data rows, blank rows, columns and characters per
cell. Anything over a limit refuses the whole file with a sentence in Chinese and English, so an
accepted file is never cut short: every row is either published or reported.

openpyxl parses through defusedxml (a dependency of this project), so DTDs and entity expansion
are refused as well.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat

from services.platform.safe_csv import SafeCsvWriter, SafeDictWriter, csv_safe, csv_safe_row, xlsx_safe_row

_SHARED_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLimits:
    """What one file may expand to. `max_rows` None: no cap on data rows (operator's bulk import)."""

    max_rows: int | None
    max_blank_rows: int = 10_000
    max_columns: int = 64
    max_cell_chars: int = 2_000
    max_parts: int = 200
    max_unpacked_bytes: int = 64 * 1024 * 1024
    max_shared_strings: int = 400_000
    max_shared_string_chars: int = 16 * 1024 * 1024


#: The web upload of a screening day (5 MB files): 20,000 rows of a dozen columns fit well inside.
WEB_LIMITS = FileLimits(max_rows=20_000)
#: The operator's command-line import of a province's files.
BULK_LIMITS = FileLimits(max_rows=None, max_blank_rows=1_000_000, max_unpacked_bytes=2 * 1024**3,
                         max_shared_strings=20_000_000, max_shared_string_chars=512 * 1024**2)


class FileRefused(ValueError):
    """The whole file is refused (nothing of it is imported); `zh` and `en` say why."""

    def __init__(self, code: str, *, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.code = code
        self.zh = zh
        self.en = en

    def sentence(self, language: str) -> str:
        return self.zh if language.startswith("zh") else self.en


def _too_many_rows(limit: int) -> FileRefused:
    return FileRefused(
        "too_many_rows",
        zh=f"文件超过 {limit:,} 行数据，整个文件未导入：请拆分成每个不超过 {limit:,} 行的文件后再上传。",
        en=f"The file has more than {limit:,} data rows, so none of it was imported: split it into files "
           f"of at most {limit:,} rows and upload each.")


def _unpacks_too_large(what: str, found: str, limit: str) -> FileRefused:
    return FileRefused(
        "expands_too_large",
        zh=f"该 XLSX 文件解压后过大（{what}：{found}，上限 {limit}），整个文件未导入：请另存为 CSV 或拆分文件。",
        en=f"This XLSX file expands too much ({what}: {found}, limit {limit}), so none of it was imported: "
           "save it as CSV or split it.")


def _mib(value: int) -> str:
    return f"{value / 1024 / 1024:.1f} MB"


def _shared_strings_parts(archive: zipfile.ZipFile, limits: FileLimits) -> set[str]:
    """Parts openpyxl would read as shared strings: by content type, and any part so named."""
    names = {info.filename for info in archive.infolist()}
    parts = {name for name in names if name.lower().endswith("sharedstrings.xml")}
    if "[Content_Types].xml" in names:
        parser = expat.ParserCreate(namespace_separator=" ")

        def start(tag: str, attributes: dict[str, str]) -> None:
            if tag.endswith(" Override") and attributes.get("ContentType") == _SHARED_STRINGS_TYPE:
                parts.add(attributes.get("PartName", "").lstrip("/"))

        parser.StartElementHandler = start
        _feed(parser, archive, "[Content_Types].xml")
    return parts & names


def _refuse_dtd(*_: object) -> None:
    raise FileRefused("not_a_workbook", zh="XLSX 文件含有 DTD 声明，无法读取。",
                      en="The XLSX file contains a DTD declaration and cannot be read.")


def _feed(parser: Any, archive: zipfile.ZipFile, name: str) -> None:
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    with archive.open(name) as part:
        while chunk := part.read(_CHUNK):
            parser.Parse(chunk, False)
    parser.Parse(b"", True)


def check_xlsx(path: Path, limits: FileLimits) -> None:
    """Refuse a workbook whose parts or shared strings expand beyond `limits` (streamed, nothing kept)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise FileRefused("not_a_workbook", zh="无法读取该 XLSX 文件（不是有效的 Excel 工作簿）。",
                          en="The file cannot be read as an XLSX workbook.") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_parts:
            raise _unpacks_too_large("parts", str(len(infos)), str(limits.max_parts))
        unpacked = sum(info.file_size for info in infos)
        if unpacked > limits.max_unpacked_bytes:
            raise _unpacks_too_large("unpacked size", _mib(unpacked), _mib(limits.max_unpacked_bytes))
        for name in _shared_strings_parts(archive, limits):
            strings = 0
            characters = 0

            def start(tag: str, _attributes: dict[str, str]) -> None:
                nonlocal strings
                if tag == f"{_MAIN_NS} si":
                    strings += 1
                    if strings > limits.max_shared_strings:
                        raise _unpacks_too_large("shared strings", f"> {limits.max_shared_strings:,}",
                                                 f"{limits.max_shared_strings:,}")

            def text(data: str) -> None:
                nonlocal characters
                characters += len(data)
                if characters > limits.max_shared_string_chars:
                    raise _unpacks_too_large("shared-string characters", f"> {limits.max_shared_string_chars:,}",
                                             f"{limits.max_shared_string_chars:,}")

            parser = expat.ParserCreate(namespace_separator=" ")
            parser.StartElementHandler = start
            parser.CharacterDataHandler = text
            try:
                _feed(parser, archive, name)
            except (expat.ExpatError, zipfile.BadZipFile, OSError, EOFError):
                raise FileRefused("not_a_workbook", zh="XLSX 文件的共享字符串部分已损坏，无法读取。",
                                  en="The XLSX file's shared-strings part is damaged and cannot be read.") from None


def _cell_text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return cell.date().isoformat() if cell.time() == datetime.min.time() else cell.isoformat()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


class _Counter:
    """Caps shared by both formats: data rows, blank rows, columns, characters per cell."""

    def __init__(self, limits: FileLimits) -> None:
        self._limits = limits
        self.rows = 0
        self.blank = 0

    def header(self, names: list[str]) -> None:
        if len(names) > self._limits.max_columns:
            raise FileRefused(
                "too_many_columns",
                zh=f"表头超过 {self._limits.max_columns} 列，整个文件未导入。",
                en=f"The header has more than {self._limits.max_columns} columns; none of the file was imported.")

    def row(self, cells: list[str]) -> bool:
        """Whether `cells` is a data row (blank rows are skipped, within their own cap)."""
        if not any(cells):
            self.blank += 1
            if self.blank > self._limits.max_blank_rows:
                raise FileRefused(
                    "too_many_blank_rows",
                    zh=f"文件含有超过 {self._limits.max_blank_rows:,} 个空行，整个文件未导入。",
                    en=f"The file has more than {self._limits.max_blank_rows:,} blank rows; none of it was imported.")
            return False
        self.rows += 1
        if self._limits.max_rows is not None and self.rows > self._limits.max_rows:
            raise _too_many_rows(self._limits.max_rows)
        if any(len(cell) > self._limits.max_cell_chars for cell in cells):
            raise FileRefused(
                "cell_too_long",
                zh=f"第 {self.rows} 行有单元格超过 {self._limits.max_cell_chars:,} 个字符，整个文件未导入。",
                en=f"Data row {self.rows} has a cell longer than {self._limits.max_cell_chars:,} characters; "
                   "none of the file was imported.")
        return True


def read_bounded(path: Path, limits: FileLimits, *, encoding: str = "utf-8-sig",
                 rename: Callable[[str], str] | None = None) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and data rows of a CSV (`encoding`) or XLSX (first sheet) file; `rename` maps
    each column heading (e.g. a Chinese heading to the English column name).

    Raises `FileRefused` (at once, or while the rows are iterated) when the file exceeds `limits`.
    """
    counter = _Counter(limits)
    # The header is read on its own, so a file refused for its header leaves nothing open; the rows
    # are read by a generator that opens the file again and closes it however it ends.
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        check_xlsx(path, limits)
        from openpyxl import load_workbook

        def open_sheet() -> tuple[Any, Iterator[tuple[object, ...]]]:
            try:
                workbook = load_workbook(path, read_only=True, data_only=True)
            except Exception as error:  # openpyxl raises many types for a damaged workbook
                raise FileRefused("not_a_workbook", zh="无法读取该 XLSX 文件。",
                                  en=f"The XLSX file cannot be read ({type(error).__name__}).") from None
            try:
                # One more column than allowed, so a wider header is seen and refused.
                return workbook, workbook.worksheets[0].iter_rows(values_only=True, max_col=limits.max_columns + 1)
            except Exception as error:
                workbook.close()
                raise FileRefused("not_a_workbook", zh="无法读取该 XLSX 文件。",
                                  en=f"The XLSX file cannot be read ({type(error).__name__}).") from None

        workbook, values = open_sheet()
        try:
            first = next(values, ())
        except Exception as error:
            raise FileRefused("not_a_workbook", zh="无法读取该 XLSX 文件。",
                              en=f"The XLSX file cannot be read ({type(error).__name__}).") from None
        finally:
            workbook.close()
        header = [str(cell).strip() if cell is not None else "" for cell in first]
        while header and not header[-1]:
            header.pop()
        counter.header(header)
        if rename is not None:
            header = [rename(name) for name in header]
        width = len(header)

        def xlsx_rows() -> Iterator[dict[str, str]]:
            workbook, values = open_sheet()
            try:
                next(values, None)  # the header, read above
                for cells in values:
                    texts = [_cell_text(cell) for cell in cells or ()]
                    if not counter.row(texts):
                        continue
                    row: dict[Any, Any] = dict(zip(header, texts[:width], strict=False))
                    if any(texts[width:]):
                        row[None] = texts[width:]  # as csv.DictReader files cells beyond the header
                    yield row
            finally:
                workbook.close()

        return header, xlsx_rows()

    with path.open(newline="", encoding=encoding) as handle:
        try:
            header = next(csv.reader(handle), [])
        except (UnicodeDecodeError, csv.Error) as error:
            raise _unreadable_csv(error) from None
    counter.header(header)
    if rename is not None:
        header = [rename(name) for name in header]

    def csv_rows() -> Iterator[dict[str, str]]:
        with path.open(newline="", encoding=encoding) as handle:
            reader = csv.reader(handle)
            try:
                next(reader, None)  # the header, read above
                for cells in reader:
                    if not counter.row(cells):
                        continue
                    row: dict[Any, Any] = dict(zip(header, cells, strict=False))
                    if len(cells) > len(header):
                        row[None] = cells[len(header):]
                    elif len(cells) < len(header):
                        row.update({name: None for name in header[len(cells):]})
                    yield row
            except (UnicodeDecodeError, csv.Error) as error:
                raise _unreadable_csv(error) from None

    return header, csv_rows()


def _unreadable_csv(error: Exception) -> FileRefused:
    if isinstance(error, UnicodeDecodeError):
        return FileRefused("not_utf8", zh="CSV 文件不是 UTF-8 编码：请在 Excel 中另存为“CSV UTF-8”。",
                           en="The CSV file is not UTF-8: save it as 'CSV UTF-8' from Excel.")
    return FileRefused("not_csv", zh=f"CSV 文件格式有误（{error}），整个文件未导入。",
                       en=f"The CSV file is malformed ({error}); none of it was imported.")


__all__ = ["BULK_LIMITS", "WEB_LIMITS", "FileLimits", "FileRefused", "SafeCsvWriter", "SafeDictWriter",
           "check_xlsx", "csv_safe", "csv_safe_row", "read_bounded", "xlsx_safe_row"]
