-- The incremental refresh's probes per marked student read only the chunks of the marked school
-- years (issue 18, TimescaleDB).
--
-- Since 0114 the student mode reads each marked (student, school year) pair's screenings and
-- surveys with a probe per pair: the student's key and `measured_on BETWEEN make_date(p.school_year,
-- 9, 1) AND ...`. Those bounds come from the pair's row, and TimescaleDB's ChunkAppend excluded no
-- chunk for them: each pair's probe went through every chunk of the hypertable, and on a
-- columnstore chunk (closed school years: segmented by school, no index by student) a probe
-- decompresses batches to find the student. Measured at 1M students (TimescaleDB 2.28.3, the bench
-- database of 4 December 2026): 260 ms per pair for the vision probe alone, about 118,000 pairs a
-- screening day, so an incremental refresh that did not end in 19 minutes. Plain PostgreSQL
-- (indexes by student on every table) was not affected.
--
-- Each such probe now also takes the span of all the marked pairs' school years, as uncorrelated
-- subqueries over pg_temp.dirty_pairs: PostgreSQL evaluates them once, and ChunkAppend excludes at
-- run time every chunk outside the span (on the same 5 pairs: 5 of 8 chunks never executed, the
-- compressed ones of closed years among them). The rows are the same: each pair's own bounds lie
-- inside the span. The functions' other text is unchanged; it is edited here rather than restated,
-- and the migration fails if the probes are not found where 0117 wrote them.

-- The bodies name pg_temp.dirty_pairs, which exists only inside a refresh (as in 0117).
SET LOCAL check_function_bodies = off;

DO $edit$
DECLARE
    span CONSTANT text := ' AND \1.\2 BETWEEN (SELECT make_date(min(x.school_year), 9, 1) FROM pg_temp.dirty_pairs x)'
        ' AND (SELECT make_date(max(x.school_year) + 1, 8, 31) FROM pg_temp.dirty_pairs x)';
    probe CONSTANT text := '\m([a-z])\.(measured_on|answered_on) BETWEEN make_date\(([a-z])\.school_year, 9, 1\)'
        ' AND make_date\(\3\.school_year \+ 1, 8, 31\)';
    target record;
    definition text;
    found integer;
BEGIN
    FOR target IN
        SELECT * FROM (VALUES
            ('metrics.student_year_rows(boolean, integer[], date, date)'::regprocedure, 3),
            ('metrics.recompute_students(integer[])'::regprocedure, 2)) t(fn, probes)
    LOOP
        definition := pg_get_functiondef(target.fn);
        found := (SELECT count(*) FROM regexp_matches(definition, probe, 'g'));
        IF found <> target.probes THEN
            RAISE EXCEPTION '0122: % has % per-pair probes, expected %', target.fn, found, target.probes;
        END IF;
        definition := regexp_replace(definition, probe, '\&' || span, 'g');
        IF (SELECT count(*) FROM regexp_matches(definition, 'FROM pg_temp\.dirty_pairs x\)', 'g')) <> 2 * target.probes THEN
            RAISE EXCEPTION '0122: the span was not added to the probes of %', target.fn;
        END IF;
        EXECUTE definition;
    END LOOP;
END
$edit$;
