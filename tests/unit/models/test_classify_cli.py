"""`schoolhealth classify`: exactly one output line per input line, whatever the line holds."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from models.classify import MAX_LINE_BYTES, LineTooLong, classify_line, read_lines
from tests.paths import ROOT

GOOD = b'{"sex": "male", "age_months": 120, "height_cm": 140, "weight_kg": 33}'


def run_classify(kind: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "services.cli", "classify", kind], input=stdin, env=env,
                          capture_output=True, timeout=300, check=False, cwd=ROOT)


def test_every_hostile_line_gets_exactly_one_answer_with_its_number_and_later_lines_survive() -> None:
    hostile = [
        GOOD,
        b"",                                              # blank line
        b"   \t",                                         # whitespace only
        b"[" * 2000 + b"]" * 2000,                        # 2,000 levels deep
        b'{"a":' * 2000 + b"1" + b"}" * 2000,             # 2,000 nested objects
        b'{"sex": "m\xff\xfeale", "age_months": 120}',    # invalid UTF-8
        b'{"sex": "male", "sex": "female", "age_months": 120, "height_cm": 140}',  # duplicate key
        b'{"sex": "' + b"x" * (50 * 1024 * 1024) + b'"}',  # a 50 MB value
        b'{"sex": "male", "age_months": NaN, "height_cm": 140}',
        b'{"sex": "male", "age_months": 1' + b"0" * 5000 + b', "height_cm": 140}',
        b'{"sex": "\\ud800", "age_months": 120, "height_cm": 140}',  # a lone surrogate
        b"\xef\xbb\xbf" + GOOD,                           # a byte-order mark
        b"[1, 2, 3]",
        b'{"sex": "female", "age_months": 100, "height_cm": 125.0}\r',  # CRLF line, height only
        GOOD,
    ]
    result = run_classify("growth", b"\n".join(hostile) + b"\n")
    assert result.returncode == 1
    lines = result.stdout.decode("utf-8").splitlines()  # strict: the output is valid UTF-8
    assert len(lines) == len(hostile)
    outputs = [json.loads(line) for line in lines]
    assert [output["line"] for output in outputs] == list(range(1, len(hostile) + 1))
    classified = [output["line"] for output in outputs if "error" not in output]
    assert classified == [1, 14, 15]
    errors = {output["line"]: output["error"] for output in outputs if "error" in output}
    assert "blank line" in errors[2] and "blank line" in errors[3]
    assert "nested too deeply" in errors[4] and "nested too deeply" in errors[5]
    assert errors[6] == "not UTF-8: byte 0xff at byte 11 cannot be decoded"
    assert errors[7] == "duplicate key 'sex': a record names each field once"
    assert errors[8].startswith(f"line is {len(hostile[7])} bytes, over the {MAX_LINE_BYTES}-byte limit")
    assert "NaN" in errors[9]
    assert "digits" in errors[10]
    assert "\\ud800" in errors[11]
    assert "not JSON" in errors[12]
    assert "expected a JSON object, got list" in errors[13]
    # No error quotes more than a short prefix of its line.
    assert max(len(line) for line in lines if '"error"' in line) < 600
    assert outputs[13]["height_for_age_z"] is not None and outputs[13]["bmi"] is None
    assert f"{len(hostile) - 3} line(s) rejected" in result.stderr.decode()


def test_a_clean_file_exits_zero() -> None:
    result = run_classify("growth", GOOD + b"\n" + GOOD)  # no newline after the last line
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["line"] for line in result.stdout.splitlines()] == [1, 2]


def test_read_lines_bounds_memory_and_keeps_counting() -> None:
    stream = io.BytesIO(b"a\n" + b"b" * 100 + b"\n\nc")
    items = list(read_lines(stream, limit=10))
    assert items[0] == b"a"
    assert isinstance(items[1], LineTooLong) and items[1].size == 100 and items[1].prefix.startswith(b"bbb")
    assert items[2:] == [b"", b"c"]


def test_a_line_of_exactly_the_limit_is_read() -> None:
    assert list(read_lines(io.BytesIO(b"x" * 10 + b"\n" + b"y" * 10), limit=10)) == [b"x" * 10, b"y" * 10]


@pytest.mark.parametrize("kind", ["growth", "vision", "survey"])
def test_classify_line_never_raises_on_duplicates_or_depth(kind: str) -> None:
    for line in (b'{"a": 1, "a": 1}', b"{" * 5000, b'{"x": ' + b"[" * 3000 + b"]" * 3000 + b"}"):
        output, classified = classify_line(kind, line, 7)  # type: ignore[arg-type]
        assert not classified and output["line"] == 7 and isinstance(output["error"], str)


def test_long_values_inside_an_accepted_line_are_quoted_short() -> None:
    line = b'{"sex": "' + b"q" * 60_000 + b'", "age_months": 120, "height_cm": 140}'
    output, classified = classify_line("growth", line, 1)
    assert not classified
    assert "60000 characters" in str(output["error"]) and len(str(output["error"])) < 200
    output, _ = classify_line("growth", b'{"' + b"k" * 60_000 + b'": 1, "sex": "male"}', 2)
    assert len(str(output["error"])) < 400
