-- The incremental refresh reads the fitness tests of the marked students alone (issue 18).
--
-- metrics.fitness_observation_rows (0112) selects, in student mode, the year results and graduation
-- scores of the marked (student, school year) pairs with EXISTS over pg_temp.dirty_pairs. A join
-- condition does not reach into the views' window subqueries, so every incremental refresh computed
-- archive.fitness_year and archive.fitness_graduation for every student of the archive, then kept
-- the marked pairs: 86-143 ms on the demo's 8,105 tests whether 20 or 3,000 pairs were marked,
-- about 13 µs per fitness test in the archive, that is tens of seconds per refresh at a million
-- students tested every year, whatever the day brought.
--
-- Both views are restated from one template each (the rules and columns of 0120, unchanged) with
-- the tests they read as a parameter of the template: the views read archive.fitness_current; the
-- new functions archive.fitness_year_of_marked() and archive.fitness_graduation_of_marked() read
-- the tests of the students in pg_temp.dirty_pairs (every school year of theirs: a graduation score
-- takes the stage's earlier years), so they cannot drift apart from the views. The student mode
-- reads those functions; the whole and year modes read the views as before. Measured on the demo
-- archive (TimescaleDB, closed years in the columnstore), the same rows either way: 20 marked
-- students 23-36 ms (before 86-131), 500 students 33-72 ms (109-212), 3,000 students (40 % of the
-- tested) 104-133 ms (134-147). test_incremental_rollups compares incremental and full refreshes
-- after random batches that include fitness tests; test_fitness_views compares the functions with
-- the views.

-- The functions name pg_temp.dirty_pairs, which exists only inside a refresh (as in 0112).
SET LOCAL check_function_bodies = off;

DO $views$
DECLARE
    columns text;
    marked_tests CONSTANT text := '(SELECT * FROM archive.fitness_current c '
        'WHERE c.student_key IN (SELECT d.student_key FROM pg_temp.dirty_pairs d))';
    -- %1$s: fitness_current's columns; %2$s: the tests read.
    year_query CONSTANT text := $sql$
SELECT %1$s, school_year FROM (
    SELECT t.*,
           row_number() OVER (PARTITION BY student_key, school_year
                              ORDER BY attempt = 'retest' DESC, measured_on, occurred_at, event_id) AS chosen
    FROM (
        SELECT t.*,
               bool_or(attempt = 'first') OVER pair AS has_first,
               first_value(event_id) OVER first_in_pair AS first_id,
               first_value(band) OVER first_in_pair AS first_band,
               first_value(measured_on) OVER first_in_pair AS first_on
        FROM (
            SELECT f.*, CASE WHEN extract(month FROM measured_on) >= 9 THEN extract(year FROM measured_on)
                             ELSE extract(year FROM measured_on) - 1 END::int AS school_year
            FROM %2$s f
        ) t
        WINDOW pair AS (PARTITION BY student_key, school_year),
               first_in_pair AS (PARTITION BY student_key, school_year
                                 ORDER BY attempt <> 'first', measured_on, occurred_at, event_id)
    ) t
    -- The candidates: the pair's first attempt; the retests that may replace it (it failed, and they
    -- are on or after its day); every retest of a pair without a first attempt.
    WHERE (attempt = 'first' AND event_id = first_id)
       OR (attempt = 'retest' AND (NOT has_first OR (first_band = 'fail' AND measured_on >= first_on)))
) t
WHERE chosen = 1
$sql$;
    -- %1$s: the year results read.
    graduation_query CONSTANT text := $sql$
WITH scored AS (
    SELECT f.student_key, f.school_id, f.school_year, f.stage, f.grade AS final_grade,
           f.status AS final_status, f.total AS final_total,
           f.other_years, f.other_mean,
           CASE WHEN f.status = 'complete' THEN
                CASE WHEN f.other_years > 0 THEN f.total / 2 + f.other_mean / 2 ELSE f.total END END AS graduation_score
    FROM (
        SELECT y.*,
               (count(*) FILTER (WHERE y.status = 'complete') OVER lower_grades)::integer AS other_years,
               avg(y.total) FILTER (WHERE y.status = 'complete') OVER lower_grades AS other_mean
        FROM (
            SELECT DISTINCT ON (student_key, grade)
                   student_key, school_id, school_year, grade, status, total,
                   CASE WHEN grade <= 6 THEN 'primary' WHEN grade <= 9 THEN 'junior' ELSE 'senior' END AS stage
            FROM %1$s
            ORDER BY student_key, grade, school_year DESC, measured_on DESC
        ) y
        -- One row per student and grade: the rows before a grade in its stage are its lower grades.
        WINDOW lower_grades AS (PARTITION BY student_key, stage ORDER BY grade
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ) f
    WHERE f.grade IN (6, 9, 12)
)
SELECT s.*,
       CASE WHEN s.final_status = 'exempt' THEN 'exempt'
            WHEN s.graduation_score IS NULL THEN 'incomplete' ELSE 'complete' END AS status,
       CASE WHEN s.graduation_score >= 90 THEN 'excellent' WHEN s.graduation_score >= 80 THEN 'good'
            WHEN s.graduation_score >= 60 THEN 'pass' WHEN s.graduation_score IS NOT NULL THEN 'fail' END AS band,
       coalesce(s.stage = 'senior' AND s.graduation_score < 50, false) AS below_minimum
FROM scored s
$sql$;
BEGIN
    -- fitness_year's columns: fitness_current's, then school_year (0060's SELECT *).
    SELECT string_agg(format('%I', attname), ', ' ORDER BY attnum) INTO columns
    FROM pg_attribute WHERE attrelid = 'archive.fitness_current'::regclass AND attnum > 0 AND NOT attisdropped;

    EXECUTE 'CREATE OR REPLACE VIEW archive.fitness_year WITH (security_invoker = true) AS '
        || format(year_query, columns, 'archive.fitness_current');
    EXECUTE 'CREATE OR REPLACE VIEW archive.fitness_graduation WITH (security_invoker = true) AS '
        || format(graduation_query, 'archive.fitness_year');
    EXECUTE format('CREATE FUNCTION archive.fitness_year_of_marked() RETURNS SETOF archive.fitness_year '
                   'LANGUAGE sql STABLE AS %L', format(year_query, columns, marked_tests));
    EXECUTE format('CREATE FUNCTION archive.fitness_graduation_of_marked() RETURNS SETOF archive.fitness_graduation '
                   'LANGUAGE sql STABLE AS %L', format(graduation_query, 'archive.fitness_year_of_marked()'));
END
$views$;

COMMENT ON FUNCTION archive.fitness_year_of_marked() IS
    'archive.fitness_year for the students in pg_temp.dirty_pairs only (the incremental refresh; 0121)';
COMMENT ON FUNCTION archive.fitness_graduation_of_marked() IS
    'archive.fitness_graduation for the students in pg_temp.dirty_pairs only (the incremental refresh; 0121)';

CREATE OR REPLACE FUNCTION metrics.fitness_observation_rows(p_all_years boolean, p_by_student boolean, p_years integer[])
    RETURNS SETOF metrics.fitness_observations LANGUAGE sql STABLE AS $body$
    WITH tests AS (
        SELECT f.school_year, f.student_key, f.status, f.band, f.item_scores FROM archive.fitness_year f
        WHERE NOT p_by_student AND (p_all_years OR f.school_year = ANY(p_years))
        UNION ALL
        SELECT f.school_year, f.student_key, f.status, f.band, f.item_scores FROM archive.fitness_year_of_marked() f
        WHERE p_by_student AND (p_all_years OR f.school_year = ANY(p_years))
          AND EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = f.student_key
                      AND p.school_year = f.school_year)
    ), graduates AS (
        SELECT f.school_year, f.student_key, f.band FROM archive.fitness_graduation f
        WHERE NOT p_by_student AND f.status = 'complete' AND (p_all_years OR f.school_year = ANY(p_years))
        UNION ALL
        SELECT f.school_year, f.student_key, f.band FROM archive.fitness_graduation_of_marked() f
        WHERE p_by_student AND f.status = 'complete' AND (p_all_years OR f.school_year = ANY(p_years))
          AND EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = f.student_key
                      AND p.school_year = f.school_year)
    )
    SELECT school_year, student_key, 'fitness_pass'::text AS metric_id, band IN ('pass', 'good', 'excellent') AS positive
        FROM tests WHERE status = 'complete'
    UNION ALL
    SELECT school_year, student_key, 'fitness_good_or_above', band IN ('good', 'excellent')
        FROM tests WHERE status = 'complete'
    UNION ALL
    SELECT school_year, student_key, 'fitness_excellent', band = 'excellent'
        FROM tests WHERE status = 'complete'
    UNION ALL
    SELECT t.school_year, t.student_key, 'fitness_item_' || s.key, s.value::integer >= 60
        FROM tests t CROSS JOIN LATERAL jsonb_each_text(t.item_scores) s
    UNION ALL
    SELECT school_year, student_key, 'fitness_exempt', status = 'exempt'
        FROM tests
    UNION ALL
    SELECT school_year, student_key, 'fitness_graduation_pass', band IN ('pass', 'good', 'excellent')
        FROM graduates
    UNION ALL
    SELECT school_year, student_key, 'fitness_graduation_good_or_above', band IN ('good', 'excellent')
        FROM graduates
    UNION ALL
    SELECT school_year, student_key, 'fitness_graduation_excellent', band = 'excellent'
        FROM graduates;
$body$;

-- Reached only through the refreshes (SECURITY DEFINER), as fitness_observation_rows is (0112).
REVOKE ALL ON FUNCTION archive.fitness_year_of_marked(), archive.fitness_graduation_of_marked() FROM PUBLIC;
