"""Binary COPY of ``text[]`` columns, memoised by value.

Nearly every growth row carries the same one or two reason strings (a pupil over ten years old
has no WHO weight-for-age, and says why), so encoding each list afresh, as psycopg's generic
list dumper does (dimensions, then a dumper call per string), repeats the same work for every
row: about 1 µs per row in the worker, measured. The dumper here encodes a list once per
distinct value and keeps the bytes in a bounded memo.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg.postgres import types as postgres_types

TEXT_OID = postgres_types["text"].oid
TEXT_ARRAY_OID = postgres_types["text"].array_oid
#: Distinct lists kept encoded; the memo starts afresh when full (reasons quoting a value vary).
MEMO_SIZE = 4096

_ONE_DIMENSION = struct.Struct("!iiIii")  # dimensions, has nulls, element type, length, lower bound
_EMPTY = struct.pack("!iiI", 0, 0, TEXT_OID)
_LENGTH = struct.Struct("!i")
_NULL = _LENGTH.pack(-1)


def encode_text_array(values: Sequence[str | None]) -> bytes:
    """PostgreSQL's binary form of a one-dimensional ``text[]`` (``array_send``): header, then
    each element as its byte length and UTF-8 bytes (length -1 for NULL)."""
    if not values:
        return _EMPTY
    parts = [_ONE_DIMENSION.pack(1, any(value is None for value in values), TEXT_OID, len(values), 1)]
    for value in values:
        if value is None:
            parts.append(_NULL)
        else:
            encoded = value.encode()
            parts.append(_LENGTH.pack(len(encoded)))
            parts.append(encoded)
    return b"".join(parts)


class MemoisedTextArrayDumper(Dumper):
    """``text[]`` in binary for COPY after ``set_types``; lists of strings (or None) only."""

    format = pq.Format.BINARY
    oid = TEXT_ARRAY_OID
    _memo: ClassVar[dict[tuple[str | None, ...], bytes]] = {}

    def dump(self, obj: Any) -> bytes:
        key = tuple(obj)
        encoded = self._memo.get(key)
        if encoded is None:
            if any(value is not None and not isinstance(value, str) for value in key):
                raise psycopg.DataError("a text[] column takes strings (or None) only")
            encoded = encode_text_array(key)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = encoded
        return encoded


def use_memoised_text_arrays(connection: psycopg.AsyncConnection[Any] | psycopg.Connection[Any]) -> None:
    """Make binary COPY with ``set_types(["text[]", ...])`` on `connection` use the memo (no other
    statement changes: the dumper is registered by type oid only)."""
    connection.adapters.register_dumper(None, MemoisedTextArrayDumper)
