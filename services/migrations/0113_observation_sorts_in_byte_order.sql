-- The observation rows' sorts by student in byte order (issue 18).
--
-- Each "latest screening of the school year" in metrics.observation_rows (0112) is a DISTINCT ON
-- over a sort by the 64-character student key. The databases' collation is C.UTF-8 (bootstrap):
-- PostgreSQL compares such text with strcoll and without abbreviated keys, and those sorts were
-- about half of the observations statement of a full refresh (auto_explain on the 300k bench
-- database: the survey sort alone 15 s of 72). The keys are hashes and the order among students
-- means nothing; only the grouping does, and for a deterministic collation equality is byte
-- equality in both. So the sort keys say COLLATE "C" (memcmp, abbreviated keys): the same rows
-- are chosen (the rest of each ORDER BY is a total order: day, submission time, event id).
-- Measured on that database, one process: the survey DISTINCT ON alone 17.8 / 20.4 s before,
-- 8.1 / 9.7 s after.
--
-- The function is 0112's with COLLATE "C" on those keys (and on the survey's instrument).
-- recompute_rollups inlines it and needs no change.

SET LOCAL check_function_bodies = off;

CREATE OR REPLACE FUNCTION metrics.observation_rows(p_all_years boolean, p_by_student boolean, p_years integer[],
                                         p_first_day date, p_last_day date)
    RETURNS SETOF metrics.observations LANGUAGE sql STABLE AS $body$
    WITH vision AS (
        SELECT DISTINCT ON (student_key COLLATE "C", metrics.school_year(measured_on))
               student_key, metrics.school_year(measured_on) AS school_year, screening_myopia, impairment_student
        FROM archive.vision_current v
        WHERE measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = v.student_key
                                         AND p.school_year = metrics.school_year(v.measured_on)))
        ORDER BY student_key COLLATE "C", metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
    ), plausible_growth AS (
        SELECT student_key, metrics.school_year(measured_on) AS school_year, measured_on, occurred_at, event_id,
               wst586, who_category, wst456_wasting
        FROM archive.growth_current g
        WHERE flags = '{}'
          AND measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = g.student_key
                                         AND p.school_year = metrics.school_year(g.measured_on)))
    ), wst586 AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, wst586
        FROM plausible_growth WHERE wst586 <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), who AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, who_category
        FROM plausible_growth WHERE who_category <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), wasting AS (
        SELECT DISTINCT ON (student_key COLLATE "C", school_year) student_key, school_year, wst456_wasting
        FROM plausible_growth WHERE wst456_wasting <> 'not_applicable'
        ORDER BY student_key COLLATE "C", school_year, measured_on DESC, occurred_at DESC, event_id DESC
    ), survey AS (
        SELECT DISTINCT ON (student_key COLLATE "C", instrument COLLATE "C", metrics.school_year(answered_on))
               student_key, instrument, metrics.school_year(answered_on) AS school_year, literate, positive_screen
        FROM archive.survey_current s
        WHERE instrument IN ('hl-student', 'phq-a', 'gad-7')
          AND answered_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(answered_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = s.student_key
                                         AND p.school_year = metrics.school_year(s.answered_on)))
        ORDER BY student_key COLLATE "C", instrument COLLATE "C", metrics.school_year(answered_on), answered_on DESC, occurred_at DESC, event_id DESC
    ), vision_years AS (
        SELECT DISTINCT student_key, metrics.school_year(measured_on) AS school_year
        FROM archive.vision_current v
        WHERE measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = v.student_key
                                         AND p.school_year = metrics.school_year(v.measured_on)))
    ), growth_years AS (
        SELECT DISTINCT student_key, metrics.school_year(measured_on) AS school_year
        FROM archive.growth_current g
        WHERE measured_on BETWEEN p_first_day AND p_last_day
          AND (p_all_years OR metrics.school_year(measured_on) = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = g.student_key
                                         AND p.school_year = metrics.school_year(g.measured_on)))
    ), screened AS (
        -- Both screenings in the school year (1 September to 31 August): joined, not probed per student.
        SELECT y.school_year, y.student_key,
               (v.student_key IS NOT NULL AND g.student_key IS NOT NULL) AS both_screenings
        FROM metrics.student_years y
        LEFT JOIN vision_years v ON v.student_key = y.student_key AND v.school_year = y.school_year
        LEFT JOIN growth_years g ON g.student_key = y.student_key AND g.school_year = y.school_year
        WHERE (p_all_years OR y.school_year = ANY(p_years))
          AND (NOT p_by_student OR EXISTS (SELECT 1 FROM pg_temp.dirty_pairs p WHERE p.student_key = y.student_key
                                         AND p.school_year = y.school_year))
    )
    SELECT school_year, student_key, 'myopia'::text AS metric_id, screening_myopia AS positive
        FROM vision WHERE screening_myopia IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'visual_impairment', impairment_student IN ('mild', 'moderate', 'severe')
        FROM vision WHERE impairment_student <> 'not_applicable'
    UNION ALL
    SELECT school_year, student_key, 'overweight_wst586', wst586 = 'overweight' FROM wst586
    UNION ALL
    SELECT school_year, student_key, 'obesity_wst586', wst586 = 'obesity' FROM wst586
    UNION ALL
    SELECT school_year, student_key, 'overweight_who', who_category = 'overweight' FROM who
    UNION ALL
    SELECT school_year, student_key, 'obesity_who', who_category = 'obesity' FROM who
    UNION ALL
    SELECT school_year, student_key, 'wasting', wst456_wasting IN ('mild', 'moderate_severe') FROM wasting
    UNION ALL
    SELECT school_year, student_key, 'health_literacy', literate FROM survey WHERE instrument = 'hl-student' AND literate IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'depression_positive', positive_screen
        FROM survey WHERE instrument = 'phq-a' AND positive_screen IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'anxiety_positive', positive_screen
        FROM survey WHERE instrument = 'gad-7' AND positive_screen IS NOT NULL
    UNION ALL
    SELECT school_year, student_key, 'screening_coverage', both_screenings FROM screened;
$body$;
