-- Graduation-year fitness scores and exempt counts (国家学生体质健康标准, 2014 revision).
--
-- archive.fitness_graduation: one row per student and stage whose final grade (6 primary, 9 junior,
-- 12 senior) has a year's result (archive.fitness_year: the retest rule of rules.csv applied). The
-- graduation score (rules.csv graduation_score, 一、说明 item 8) is 50 % of the final year's total
-- plus 50 % of the mean of the stage's other years' totals; choices where the document is silent
-- (the same as models.fitness.graduation_score, which tests compare with this view):
--   * the other years are the stage's lower grades with a complete result (a total); a year with
--     a missing or exempted item has no total and is left out of the mean;
--   * a repeated grade counts once, with its latest school year;
--   * with no other year on record the final year's total alone is the score;
--   * a final year without a total has no graduation score: status 'exempt' where the student was
--     wholly exempted (their graduation record is marked 免测, rules.csv exemption_disabled), else
--     'incomplete';
--   * bands as for the year total (>= 90 excellent, >= 80 good, >= 60 pass), the score not rounded;
--     senior high graduates below 50 are flagged (rules.csv graduation_minimum).
-- The view reads fitness_year with its caller's rights, so an API user's graduation scores are
-- computed from the results they may see (the school scope of fitness_current); the indicators and
-- `schoolhealth student` read every school's results.
CREATE VIEW archive.fitness_graduation WITH (security_invoker = true) AS
WITH years AS (
    SELECT DISTINCT ON (student_key, grade)
           student_key, school_id, school_year, grade, status, total,
           CASE WHEN grade <= 6 THEN 'primary' WHEN grade <= 9 THEN 'junior' ELSE 'senior' END AS stage
    FROM archive.fitness_year
    ORDER BY student_key, grade, school_year DESC, measured_on DESC
), scored AS (
    SELECT f.student_key, f.school_id, f.school_year, f.stage, f.grade AS final_grade,
           f.status AS final_status, f.total AS final_total,
           o.years AS other_years, o.mean AS other_mean,
           CASE WHEN f.status = 'complete' THEN
                CASE WHEN o.years > 0 THEN f.total / 2 + o.mean / 2 ELSE f.total END END AS graduation_score
    FROM years f
    CROSS JOIN LATERAL (
        SELECT count(*)::integer AS years, avg(y.total) AS mean
        FROM years y
        WHERE y.student_key = f.student_key AND y.stage = f.stage AND y.grade < f.grade AND y.status = 'complete'
    ) o
    WHERE f.grade IN (6, 9, 12)
)
SELECT s.*,
       CASE WHEN s.final_status = 'exempt' THEN 'exempt'
            WHEN s.graduation_score IS NULL THEN 'incomplete' ELSE 'complete' END AS status,
       CASE WHEN s.graduation_score >= 90 THEN 'excellent' WHEN s.graduation_score >= 80 THEN 'good'
            WHEN s.graduation_score >= 60 THEN 'pass' WHEN s.graduation_score IS NOT NULL THEN 'fail' END AS band,
       coalesce(s.stage = 'senior' AND s.graduation_score < 50, false) AS below_minimum
FROM scored s;

-- The fitness rollups of 0061 again, with two more kinds of observation:
--   fitness_exempt                 every student with a year's result; positive when wholly exempted
--                                  (免测): the exempt count and share, suppressed like every rate;
--   fitness_graduation_pass, _good_or_above, _excellent
--                                  students whose final grade of a stage was tested in the year and
--                                  who have a graduation score; positive by its band.
DROP MATERIALIZED VIEW metrics.fitness_cells;
DROP MATERIALIZED VIEW metrics.fitness_observations;

CREATE MATERIALIZED VIEW metrics.fitness_observations AS
WITH tests AS (
    SELECT school_year, student_key, status, band, item_scores FROM archive.fitness_year
), graduates AS (
    SELECT school_year, student_key, band FROM archive.fitness_graduation WHERE status = 'complete'
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
    FROM graduates
WITH NO DATA;
CREATE INDEX fitness_observations_key ON metrics.fitness_observations (school_year, metric_id);

CREATE MATERIALIZED VIEW metrics.fitness_cells AS
SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
       y.left_behind, y.disability,
       count(*)::integer AS denominator,
       count(*) FILTER (WHERE o.positive)::integer AS numerator
FROM metrics.fitness_observations o
JOIN metrics.student_years y USING (school_year, student_key)
GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability
WITH NO DATA;
CREATE INDEX fitness_cells_year ON metrics.fitness_cells (school_year, metric_id);

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT SELECT ON metrics.fitness_observations, metrics.fitness_cells TO %I', app);
    EXECUTE format('GRANT SELECT ON archive.fitness_graduation TO %I, %I', app, api);
END
$grants$;
