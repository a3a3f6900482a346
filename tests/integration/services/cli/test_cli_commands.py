"""The README's commands run for real against the test's own database (not only --help).

Left to other tests: `stack up/down` (the shared stack), `worker`, `api`, `alerts serve` (long-running,
run by the pipeline and alert tests), `train/score/refresh/publish/report` (test_training, test_reporting),
`bench` and `demo`.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

import psycopg
import pytest

from services.platform.settings import Settings
from tests.integration.conftest import worker_environment

pytestmark = pytest.mark.integration

FIRST = "abc1231" + "0" * 57
SECOND = "abc1232" + "0" * 57


def schoolhealth(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=worker_environment(settings),
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)


def _archive_two_students(settings: Settings) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(settings.pg_dsn("admin")) as conn:
        for key in (FIRST, SECOND):
            conn.execute(
                "INSERT INTO archive.students (student_key, school_id, county_id, sex, birth_date, grade, boarding,"
                " left_behind, disability, status, as_of, last_event_id)"
                " VALUES (%s, 'S1', 'C1', 'female', '2014-05-01', 5, false, false, false, 'active', %s,"
                " gen_random_uuid())", (key, now))
        conn.execute(
            "INSERT INTO archive.growth_screenings (event_id, measured_on, occurred_at, student_key, school_id, sex,"
            " age_months, height_cm, weight_kg, screener, submitted_by, bmi, bmi_for_age_z, height_for_age_z,"
            " who_category, wst586, wst456_wasting, wst456_stunting, rule_version, reference)"
            " VALUES (gen_random_uuid(), '2025-09-10', %s, %s, 'S1', 'female', 136.3, 140.5, 45.0, 'd1', 'd1',"
            " 22.8, 2.1, 0.3, 'obesity', 'obesity', 'normal', 'normal', 'v1', 'who2007')", (now, FIRST))
        conn.execute(
            "INSERT INTO archive.vision_screenings (event_id, measured_on, occurred_at, student_key, school_id, sex,"
            " age_months, ucva_right, ucva_left, se_right, se_left, wears_glasses, screener, submitted_by,"
            " impairment_right, impairment_left, impairment_student, screening_myopia, myopia_grade,"
            " rule_version, reference)"
            " VALUES (gen_random_uuid(), '2025-09-11', %s, %s, 'S1', 'female', 136.3, 4.8, 4.9, -1.25, -0.75,"
            " false, 'd1', 'd1', 'mild', 'mild', 'mild', true, 'low', 'v1', 'ws/t 663')", (now, FIRST))
        conn.execute(
            "INSERT INTO archive.survey_results (event_id, answered_on, occurred_at, student_key, school_id, sex,"
            " age_months, instrument, instrument_version, total, max_total, band, submitted_by, rule_version,"
            " reference) VALUES (gen_random_uuid(), %s, %s, %s, 'S1', 'female', 136.3, 'phq-a', '1', 3, 27,"
            " 'minimal', 'd1', 'v1', 'phq-a')", (date(2025, 10, 1), now, FIRST))


def test_student_by_full_key_and_by_unique_prefix(isolated: Settings) -> None:
    _archive_two_students(isolated)
    full = schoolhealth(isolated, "student", FIRST)
    assert full.returncode == 0, full.stderr
    assert f"student {FIRST}" in full.stdout
    assert "140.5 cm, 45.0 kg" in full.stdout and "screening myopia true" in full.stdout
    assert "phq-a" in full.stdout and "total 3/27, minimal" in full.stdout

    by_prefix = schoolhealth(isolated, "student", FIRST[:7].upper())
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert by_prefix.stdout == full.stdout

    # Reading psychological results is audited, once per read.
    with psycopg.connect(isolated.pg_dsn("admin")) as conn:
        row = conn.execute("SELECT count(*) FROM audit.psych_reads WHERE student_key = %s", (FIRST,)).fetchone()
    assert row is not None and row[0] == 2


@pytest.mark.parametrize(("key", "said"), [
    ("abc123", "begins 2 student keys"),
    ("abc", "needs 6 to 63"),
    ("fff0000", "no student key begins with fff0000"),
    ("Li Xiaoming", "is not a student key"),
    ("f" * 64, "no archive entry"),
])
def test_student_refuses_what_is_not_one_student_in_one_sentence(isolated: Settings, key: str, said: str) -> None:
    _archive_two_students(isolated)
    result = schoolhealth(isolated, "student", key)
    assert result.returncode == 1
    assert said in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_users_commands_and_stack_status(isolated: Settings) -> None:
    added = schoolhealth(isolated, "users", "add", "c-0001", "--role", "counsellor", "--school", "S1")
    assert added.returncode == 0, added.stderr
    assert len(added.stdout.strip()) >= 32
    listed = schoolhealth(isolated, "users", "list")
    assert "c-0001\tcounsellor\tactive\tschools=S1" in listed.stdout
    token = schoolhealth(isolated, "users", "token", "c-0001")
    assert token.returncode == 0 and token.stdout.strip() != added.stdout.strip()
    assert schoolhealth(isolated, "users", "disable", "c-0001").returncode == 0
    assert "disabled" in schoolhealth(isolated, "users", "list").stdout
    status = schoolhealth(isolated, "stack", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "export SCHOOLHEALTH_" in schoolhealth(isolated, "stack", "env").stdout
    assert schoolhealth(isolated, "migrate").returncode == 0
    assert schoolhealth(isolated, "topics", "create").returncode == 0


def test_classify_growth_from_stdin(isolated: Settings) -> None:
    line = '{"sex": "male", "age_months": 120, "height_cm": 140, "weight_kg": 33}\n'
    result = schoolhealth(isolated, "classify", "growth", stdin=line)
    assert result.returncode == 0, result.stderr
    assert '"wst586"' in result.stdout
