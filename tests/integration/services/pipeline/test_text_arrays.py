"""The memoised ``text[]`` dumper writes what PostgreSQL's own array encoding writes.

Binary COPY trusts the client's bytes: a wrong header or length would store another array, or
fail the whole batch. Each value goes through COPY with the dumper into a real table and is read
back, and its bytes are compared with the server's own ``array_send`` of the same array.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from services.pipeline.text_arrays import (
    MEMO_SIZE,
    MemoisedTextArrayDumper,
    encode_text_array,
    use_memoised_text_arrays,
)
from services.platform.settings import Settings

pytestmark = pytest.mark.integration

VALUES: list[list[str | None]] = [
    [],
    ["WHO 2007 weight-for-age: given for ages 61..<121 months only (WHO: up to 10 years)"],
    ["", "a"],
    ["近视筛查阳性", "WS/T 586-2018: 年龄 4.50 岁超出 6.0..<18.0", "emoji 🧒"],
    ["NULL", None, "{braces}", 'quote " and \\ backslash', "comma, inside"],
    [None],
    ["x" * 70_000],
]


def test_copy_with_the_memo_stores_each_array_as_postgresql_encodes_it(stack: Settings) -> None:
    with psycopg.connect(stack.pg_dsn("admin")) as connection:
        use_memoised_text_arrays(connection)
        connection.execute("CREATE TEMP TABLE arrays (n int, a text[])")
        # Twice each: the second write of a value comes from the memo.
        rows = [(n, value) for _ in range(2) for n, value in enumerate(VALUES)]
        with connection.cursor().copy("COPY arrays (n, a) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text[]"])
            for row in rows:
                copy.write_row(row)
        assert tuple(VALUES[3]) in MemoisedTextArrayDumper._memo  # the COPY went through the dumper
        stored = connection.execute("SELECT n, a FROM arrays").fetchall()
        assert sorted(stored, key=lambda r: r[0]) == sorted(rows, key=lambda r: r[0])
        for value in VALUES:
            server = connection.execute("SELECT array_send(%s::text[])", (value,)).fetchone()
            assert server is not None
            assert encode_text_array(value) == bytes(server[0]), value


def test_the_memo_is_bounded_and_refuses_what_is_not_text(stack: Settings) -> None:
    with psycopg.connect(stack.pg_dsn("admin")) as connection:
        use_memoised_text_arrays(connection)
        connection.execute("CREATE TEMP TABLE arrays (a text[])")
        with connection.cursor().copy("COPY arrays (a) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text[]"])
            for number in range(MEMO_SIZE + 10):
                copy.write_row(([f"reason {number}"],))
        assert len(MemoisedTextArrayDumper._memo) <= MEMO_SIZE
        count = connection.execute(sql.SQL("SELECT count(DISTINCT a) FROM arrays")).fetchone()
        assert count == (MEMO_SIZE + 10,)
        with pytest.raises(psycopg.DataError, match="strings"), \
                connection.cursor().copy("COPY arrays (a) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text[]"])
            copy.write_row(([1, 2],))
