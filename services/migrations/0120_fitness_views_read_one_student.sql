-- The fitness year and graduation views read one student's tests when asked for one student (issue
-- 18: `schoolhealth student` on an archive with fitness tests).
--
-- archive.fitness_year (0060) applied the retest rule through CTEs that it read several times, so
-- PostgreSQL computed them whole: a condition on the student outside the view could not reach the
-- tests. archive.fitness_graduation (0064) read fitness_year the same way. `schoolhealth student`
-- asks the graduation view for one student, and so computed every student's year results and
-- graduation scores on each lookup: 19-38 ms on the demo's 8,105 fitness tests, growing with the
-- province's (seconds at a million students, every year of whom is tested).
--
-- Both views are restated with the same rules and the same columns, as one query each whose
-- steps are window functions partitioned by the student (and school year, or stage): PostgreSQL
-- pushes a condition on the student into such a subquery, so one student's lookup reads that
-- student's tests through the index. The rules, unchanged:
--   fitness_year, per student and school year: the first attempt (earliest by day, submission time
--     and event id); if it failed, the earliest retest on or after its day replaces it; a retest
--     without any first attempt in that year stands alone (the earliest such).
--   fitness_graduation, per student and final grade (6, 9, 12) with a year's result (each grade's
--     latest school year): 50 % of the final year's total plus 50 % of the mean of the stage's lower
--     grades' complete totals; the final total alone without any; statuses, bands and the senior
--     minimum as 0064 says.
-- tests/integration/services/pipeline/test_fitness_archive.py compares both views with the
-- retest and graduation rules of models.fitness; the fitness rollups' tests compare the indicators.

DO $views$
DECLARE
    columns text;
BEGIN
    -- fitness_year's columns: fitness_current's, then school_year (0060's SELECT *).
    SELECT string_agg(format('%I', attname), ', ' ORDER BY attnum) INTO columns
    FROM pg_attribute WHERE attrelid = 'archive.fitness_current'::regclass AND attnum > 0 AND NOT attisdropped;

    EXECUTE format($sql$
CREATE OR REPLACE VIEW archive.fitness_year WITH (security_invoker = true) AS
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
            FROM archive.fitness_current f
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
$sql$, columns);
END
$views$;

CREATE OR REPLACE VIEW archive.fitness_graduation WITH (security_invoker = true) AS
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
            FROM archive.fitness_year
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
FROM scored s;
