-- Growth screenings as WHO's software and the WS/T standards take them (issue 15):
--  * a screening may carry height without weight, or weight without height;
--  * bmi_rounded: BMI rounded half-up to 0.1 exactly from the recorded decimals (the value the
--    WS/T tables are compared with), where the real `bmi` is the unrounded one WHO's z uses;
--  * WHO 2007 weight-for-age (5-10 years) and its class; bilateral pitting oedema (NULL: not
--    recorded); completed calendar months of age when the birth date was known.
-- A WHO-flagged z now comes with no category ('not_applicable'), so flagged measurements count
-- in the data-quality rollups (flags <> '{}') and never in a prevalence.

ALTER TABLE archive.growth_screenings ALTER COLUMN height_cm DROP NOT NULL;
ALTER TABLE archive.growth_screenings ALTER COLUMN weight_kg DROP NOT NULL;
ALTER TABLE archive.growth_screenings ALTER COLUMN bmi DROP NOT NULL;
ALTER TABLE archive.growth_screenings ADD COLUMN bmi_rounded numeric(4, 1);
ALTER TABLE archive.growth_screenings ADD COLUMN weight_for_age_z real;
ALTER TABLE archive.growth_screenings ADD COLUMN who_weight_for_age text NOT NULL DEFAULT 'not_applicable';
ALTER TABLE archive.growth_screenings ADD COLUMN oedema boolean;
ALTER TABLE archive.growth_screenings ADD COLUMN age_completed_months smallint;

-- Rows stored before: BMI rounded from the measurements as recorded (numeric, exact).
UPDATE archive.growth_screenings
SET bmi_rounded = round(weight_kg * 10000 / (height_cm * height_cm), 1)
WHERE bmi_rounded IS NULL AND weight_kg IS NOT NULL AND height_cm IS NOT NULL;

-- `g.*` was expanded when the view was made: make it again to show the new columns, with the
-- school scope and security barrier of 0024 (the API reads growth screenings only through it).
DO $view$
BEGIN
    EXECUTE format($v$CREATE OR REPLACE VIEW archive.growth_current WITH (security_barrier = true) AS
        SELECT g.* FROM archive.growth_screenings g
        WHERE NOT EXISTS (SELECT 1 FROM archive.growth_screenings c WHERE c.supersedes = g.event_id)
          AND %s$v$, archive.school_scope_sql('g.school_id', 'school_doctor'));
END
$view$;

-- One observation per student, school year and metric. Growth metrics now take the latest
-- current screening that the metric's standard could classify (a later height-only screening, or
-- one whose BMI WHO flags, no longer hides the year's classified one), among screenings with no
-- WHO flag at all, as before.
DROP MATERIALIZED VIEW metrics.indicator_cells;
DROP MATERIALIZED VIEW metrics.observations;

CREATE MATERIALIZED VIEW metrics.observations AS
WITH vision AS (
    SELECT DISTINCT ON (student_key, metrics.school_year(measured_on))
           student_key, metrics.school_year(measured_on) AS school_year, screening_myopia, impairment_student
    FROM archive.vision_current
    ORDER BY student_key, metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
), plausible_growth AS (
    SELECT student_key, metrics.school_year(measured_on) AS school_year, measured_on, occurred_at, event_id,
           wst586, who_category, wst456_wasting
    FROM archive.growth_current
    WHERE flags = '{}'
), wst586 AS (
    SELECT DISTINCT ON (student_key, school_year) student_key, school_year, wst586
    FROM plausible_growth WHERE wst586 <> 'not_applicable'
    ORDER BY student_key, school_year, measured_on DESC, occurred_at DESC, event_id DESC
), who AS (
    SELECT DISTINCT ON (student_key, school_year) student_key, school_year, who_category
    FROM plausible_growth WHERE who_category <> 'not_applicable'
    ORDER BY student_key, school_year, measured_on DESC, occurred_at DESC, event_id DESC
), wasting AS (
    SELECT DISTINCT ON (student_key, school_year) student_key, school_year, wst456_wasting
    FROM plausible_growth WHERE wst456_wasting <> 'not_applicable'
    ORDER BY student_key, school_year, measured_on DESC, occurred_at DESC, event_id DESC
), survey AS (
    SELECT DISTINCT ON (student_key, instrument, metrics.school_year(answered_on))
           student_key, instrument, metrics.school_year(answered_on) AS school_year, literate, positive_screen
    FROM archive.survey_current
    WHERE instrument IN ('hl-student', 'phq-a', 'gad-7')
    ORDER BY student_key, instrument, metrics.school_year(answered_on), answered_on DESC, occurred_at DESC, event_id DESC
), screened AS (
    SELECT y.school_year, y.student_key,
           EXISTS (SELECT 1 FROM archive.vision_current v WHERE v.student_key = y.student_key
                   AND v.measured_on BETWEEN make_date(y.school_year, 9, 1) AND make_date(y.school_year + 1, 8, 31))
       AND EXISTS (SELECT 1 FROM archive.growth_current g WHERE g.student_key = y.student_key
                   AND g.measured_on BETWEEN make_date(y.school_year, 9, 1) AND make_date(y.school_year + 1, 8, 31))
           AS both_screenings
    FROM metrics.student_years y
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
SELECT school_year, student_key, 'screening_coverage', both_screenings FROM screened
WITH NO DATA;
CREATE INDEX observations_key ON metrics.observations (school_year, metric_id);

CREATE MATERIALIZED VIEW metrics.indicator_cells AS
SELECT o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade,
       y.left_behind, y.disability,
       count(*)::integer AS denominator,
       count(*) FILTER (WHERE o.positive)::integer AS numerator
FROM metrics.observations o
JOIN metrics.student_years y USING (school_year, student_key)
GROUP BY o.school_year, o.metric_id, y.school_id, y.county_id, y.urban_rural, y.sex, y.grade, y.left_behind, y.disability
WITH NO DATA;
CREATE INDEX indicator_cells_year ON metrics.indicator_cells (school_year, metric_id);

-- Digit preference counts only the measurements that were taken.
DROP VIEW reporting.digit_preference;
DROP MATERIALIZED VIEW metrics.digit_preference;
CREATE MATERIALIZED VIEW metrics.digit_preference AS
SELECT metrics.school_year(measured_on) AS school_year, school_id, screener, 'height_cm'::text AS quantity,
       ((height_cm * 10)::integer % 10)::smallint AS last_digit, count(*)::integer AS measurements
FROM archive.growth_screenings WHERE height_cm IS NOT NULL GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT metrics.school_year(measured_on), school_id, screener, 'weight_kg',
       ((weight_kg * 10)::integer % 10)::smallint, count(*)::integer
FROM archive.growth_screenings WHERE weight_kg IS NOT NULL GROUP BY 1, 2, 3, 4, 5
WITH NO DATA;

CREATE VIEW reporting.digit_preference AS
SELECT d.school_year, d.school_id, s.county_id, d.screener, d.quantity, d.last_digit, d.measurements,
       d.measurements::double precision
           / sum(d.measurements) OVER (PARTITION BY d.school_year, d.school_id, d.screener, d.quantity) AS share
FROM metrics.digit_preference d LEFT JOIN archive.schools s USING (school_id);

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    grafana text := current_setting('schoolhealth.grafana_role');
BEGIN
    EXECUTE format('GRANT SELECT ON metrics.observations, metrics.indicator_cells, metrics.digit_preference TO %I', app);
    EXECUTE format('GRANT SELECT ON reporting.digit_preference TO %I, %I', grafana, app);
END
$grants$;
