"""`schoolhealth student KEY`: one student's longitudinal archive, for operators at a terminal.

Reads as the owner role (an operator tool, not the counsellors' API); the read of psychological
results is written to the append-only audit log like any other.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from models.school_year import current_grade, school_year
from services.platform.settings import Settings


class StudentNotFound(LookupError):
    """No archive entry for that key, or a prefix that is not a key's beginning."""


class AmbiguousKey(LookupError):
    """A key prefix that begins more than one student's key."""


#: The shortest prefix accepted: shorter ones match too many keys to be meant.
MIN_PREFIX = 6
_HEX = frozenset("0123456789abcdef")
_MATCHING_KEYS = """
SELECT student_key FROM archive.students WHERE student_key LIKE %(prefix)s
UNION SELECT student_key FROM roster.students WHERE student_key LIKE %(prefix)s
ORDER BY 1 LIMIT 6
"""


def resolve_key(conn: psycopg.Connection[Any], key: str) -> str:
    """The full 64-hex key that ``key`` is, or is the unique beginning of (at least 6 hex digits)."""
    key = key.strip().lower().rstrip("…").rstrip(".")
    if not key or not set(key) <= _HEX:
        raise StudentNotFound(f"{key[:70]!r} is not a student key (64 hexadecimal digits, or their beginning)")
    if len(key) == 64:
        return key
    if len(key) < MIN_PREFIX or len(key) > 64:
        raise StudentNotFound(f"a key prefix needs {MIN_PREFIX} to 63 hexadecimal digits; got {len(key)}")
    keys = [row[0] for row in conn.execute(_MATCHING_KEYS, {"prefix": key + "%"})]
    if not keys:
        raise StudentNotFound(f"no student key begins with {key}")
    if len(keys) > 1:
        shown = ", ".join(k[:16] + "…" for k in keys[:5])
        raise AmbiguousKey(f"{key} begins {'more than 5' if len(keys) > 5 else len(keys)} student keys "
                           f"({shown}); give more digits")
    return str(keys[0])


_TIMELINE = """
SELECT measured_on AS on_date, 'vision' AS kind,
       format('UCVA R %%s L %%s, SE R %%s L %%s; impairment %%s; screening myopia %%s; myopia %%s',
              ucva_right, ucva_left, coalesce(se_right::text, '-'), coalesce(se_left::text, '-'),
              impairment_student, coalesce(screening_myopia::text, 'unknown'), coalesce(myopia_grade, '-')) AS detail,
       supersedes IS NOT NULL AS correction, event_id, school_id
FROM archive.vision_screenings WHERE student_key = %(key)s
UNION ALL
SELECT measured_on, 'growth',
       format('%%s cm, %%s kg, BMI %%s, BMI-for-age z %%s, height-for-age z %%s, weight-for-age z %%s; '
              'WHO %%s; WS/T 586 %%s; WS/T 456 %%s/%%s%%s%%s',
              coalesce(height_cm::text, '-'), coalesce(weight_kg::text, '-'),
              coalesce(bmi_rounded::text, round(bmi::numeric, 1)::text, '-'),
              coalesce(bmi_for_age_z::text, 'n/a'), coalesce(height_for_age_z::text, 'n/a'),
              coalesce(weight_for_age_z::text, 'n/a'), who_category, wst586, wst456_wasting, wst456_stunting,
              CASE WHEN oedema THEN '; bilateral pitting oedema' ELSE '' END,
              CASE WHEN cardinality(flags) > 0 THEN '; flags ' || array_to_string(flags, ',')
                   ELSE '' END),
       supersedes IS NOT NULL, event_id, school_id
FROM archive.growth_screenings WHERE student_key = %(key)s
UNION ALL
SELECT answered_on, instrument,
       format('total %%s/%%s%%s%%s%%s', total, max_total, coalesce(', ' || band, ''),
              CASE WHEN literate IS NULL THEN '' WHEN literate THEN ', literate' ELSE ', not literate' END,
              CASE WHEN cardinality(safety_flags) > 0 THEN '; SAFETY ' || array_to_string(safety_flags, ',')
                   ELSE '' END),
       supersedes IS NOT NULL, event_id, school_id
FROM archive.survey_results WHERE student_key = %(key)s
UNION ALL
SELECT measured_on, 'fitness',
       format('grade %%s %%s: %%s%%s; BMI %%s (%%s); items %%s%%s%%s; %%s',
              grade, attempt,
              CASE status WHEN 'complete' THEN 'total ' || total || ' (standard ' || standard_score || ' + bonus '
                                               || bonus || '), ' || band
                          WHEN 'exempt' THEN 'exempt (免测, ' || coalesce(exemption_reason, '-') || ')'
                          ELSE 'incomplete, no total' END,
              CASE WHEN cardinality(missing_items) > 0 THEN '; missing ' || array_to_string(missing_items, ',')
                   ELSE '' END,
              coalesce(bmi::text, '-'), coalesce(bmi_category, '-'),
              (SELECT coalesce(string_agg(key || ' ' || value, ', ' ORDER BY key), '-')
               FROM jsonb_each_text(item_scores)),
              CASE WHEN cardinality(exempt_items) > 0 THEN '; exempt ' || array_to_string(exempt_items, ',')
                   ELSE '' END,
              CASE WHEN cardinality(failed_items) > 0 THEN '; FAILED ' || array_to_string(failed_items, ',')
                   ELSE '' END,
              table_version),
       supersedes IS NOT NULL, event_id, school_id
FROM archive.fitness_results WHERE student_key = %(key)s
ORDER BY 1, 2
"""


# Each timeline table and its day column, as _TIMELINE reads them.
_TIMELINE_TABLES = (("archive.vision_screenings", "measured_on"), ("archive.growth_screenings", "measured_on"),
                    ("archive.survey_results", "answered_on"), ("archive.fitness_results", "measured_on"))
_NARROWING = """
SELECT format('%%I.%%I', n.nspname, c.relname), b.boundary,
       ARRAY(SELECT school_id FROM archive.columnstore_students WHERE student_key = %s ORDER BY 1)
FROM archive.columnstore_boundaries() b JOIN pg_class c ON c.oid = b.table_name
JOIN pg_namespace n ON n.oid = c.relnamespace
"""


def timeline_query(conn: psycopg.Connection[Any], key: str) -> tuple[str, dict[str, Any]]:
    """_TIMELINE for one student, each table read the cheapest exact way (migration 0106).

    Where a table's closed school years are in the columnstore and listed up to a boundary day, the
    rows before it are read at the schools the student has rows at there (one segment per chunk)
    and the rows from it on through the student index; the boundary is a literal, so that
    TimescaleDB leaves out at planning the chunks each part cannot hold. Elsewhere the table is
    read by student as before.
    """
    params: dict[str, Any] = {"key": key}
    query = _TIMELINE
    found = conn.execute(_NARROWING, (key,)).fetchall()
    boundaries = {str(name): (boundary, list(schools)) for name, boundary, schools in found}
    for number, (name, day) in enumerate(_TIMELINE_TABLES):
        boundary, schools = boundaries.get(name, (None, []))
        if boundary is None:
            continue
        plain = f"FROM {name} WHERE student_key = %(key)s"
        closed = (f"SELECT * FROM {name} WHERE student_key = %(key)s AND {day} < '{boundary.isoformat()}'::date"
                  f" AND school_id = ANY(%(schools{number})s) UNION ALL ") if schools else ""
        narrowed = (f"FROM ({closed}SELECT * FROM {name} WHERE student_key = %(key)s"
                    f" AND {day} >= '{boundary.isoformat()}'::date) AS {name.split('.')[1]} WHERE true")
        assert query.count(plain) == 1
        query = query.replace(plain, narrowed)
        params[f"schools{number}"] = schools
    return query, params


def print_student(settings: Settings, key: str, *, out: Callable[[str], Any] = print) -> None:
    """Print the student's current status, school history and every screening in date order."""
    with psycopg.connect(settings.pg_dsn("admin")) as conn, conn.cursor(row_factory=dict_row) as cursor:
        key = resolve_key(conn, key)
        cursor.execute("SELECT * FROM archive.students WHERE student_key = %s", (key,))
        status = cursor.fetchone()
        cursor.execute("SELECT * FROM archive.student_history WHERE student_key = %s"
                       " ORDER BY effective_on, occurred_at", (key,))
        history = cursor.fetchall()
        cursor.execute(*timeline_query(conn, key))
        timeline = cursor.fetchall()
        cursor.execute("SELECT * FROM archive.fitness_graduation WHERE student_key = %s ORDER BY final_grade", (key,))
        graduations = cursor.fetchall()
        if status is None and not history and not timeline:
            raise StudentNotFound(f"no archive entry for student key {key[:12]}…")
        if any(row["kind"] in ("phq-a", "phq-9", "gad-7") for row in timeline):
            cursor.execute(
                "INSERT INTO audit.psych_reads (user_id, student_key, school_id, what)"
                " VALUES (%s, %s, %s, 'cli student archive')",
                (f"cli:{getpass.getuser()}", key, status["school_id"] if status else timeline[0]["school_id"]),
            )
        conn.commit()
    out(f"student {key}")
    if status:
        today = datetime.now(settings.zone).date()
        stated = [(row["effective_on"], row["grade"]) for row in history if row["action"] != "leave"]
        now = current_grade(stated[-1][1], stated[-1][0], today) if stated else status["grade"]
        grade = f"grade {now} in school year {school_year(today)}/{(school_year(today) + 1) % 100:02d}" if now else (
            f"past grade 9 (grade {status['grade']} when last recorded)")
        out(f"  {status['status']} at school {status['school_id']} (county {status['county_id']}), {grade}, "
            f"{status['sex']}, born {status['birth_date']:%Y-%m}; boarding {status['boarding']}, "
            f"left-behind {status['left_behind']}, disability {status['disability']}")
    for row in history:
        target = f" → {row['to_school_id']}" if row["to_school_id"] else ""
        out(f"  {row['effective_on']}  record   {row['action']} at {row['school_id']}{target} (grade {row['grade']})")
    for row in timeline:
        mark = " (correction)" if row["correction"] else ""
        out(f"  {row['on_date']}  {row['kind']:<8} {row['detail']}{mark}")
    for row in graduations:
        out(graduation_line(row))


def graduation_line(row: dict[str, Any]) -> str:
    """One stage's graduation fitness score and how it was computed (rules.csv graduation_score)."""
    year = f"{row['school_year']}/{(row['school_year'] + 1) % 100:02d}"
    head = f"  graduation {row['stage']} (grade {row['final_grade']}, school year {year}): "
    if row["status"] == "exempt":
        return head + "exempt (免测) in the final year: no graduation score"
    if row["status"] != "complete":
        return head + "final year incomplete (a missing or exempted item): no graduation score"
    score = f"score {row['graduation_score']:.2f}"
    if row["other_years"]:
        how = (f" = 50% × {row['final_total']} (final year) + 50% × {row['other_mean']:.2f}"
               f" (mean of {row['other_years']} other year{'s' if row['other_years'] > 1 else ''})")
    else:
        how = f" = the final year's total {row['final_total']} (no other year of the stage on record)"
    minimum = "; below 50: completion without graduation (结业/肄业)" if row["below_minimum"] else ""
    return head + score + how + f", {row['band']}{minimum}"
