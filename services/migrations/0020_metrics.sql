-- Annual indicators: rollups, the live (suppressed) indicator table and the published revisions.
--
-- metrics.*    rollups and tables only the owner and the app role (worker, `schoolhealth publish`) see.
-- reporting.*  views (0022) that are all Grafana and exports read; the Grafana role sees nothing else.
--
-- Rollups over measurements per day (data quality) are TimescaleDB continuous aggregates where the
-- extension exists (0025) and plain materialized views otherwise, under the same names and columns. The
-- student-year rollups ("latest screening of each student in each school year", joined to the
-- health record at the census date) need DISTINCT ON and joins that continuous aggregates do not
-- support, so they are materialized views in both cases. `metrics.refresh_rollups()` refreshes
-- the materialized views; continuous aggregates refresh by their policy and by
-- `services.metrics.refresh_rollups` (as the owner: TimescaleDB lets only the owner refresh them).

CREATE SCHEMA IF NOT EXISTS metrics;
CREATE SCHEMA IF NOT EXISTS reporting;

CREATE FUNCTION metrics.school_year(day date) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN extract(month FROM day) >= 9 THEN extract(year FROM day)::integer
                ELSE extract(year FROM day)::integer - 1 END;

-- Each student enrolled at the census date (30 September) of each school year, as the health
-- records say: the latest record effective on or before that day, unless it is a leaving record.
-- Records carry the grade of the school year they are effective in; later years add one a year.
CREATE MATERIALIZED VIEW metrics.student_years AS
WITH years AS (
    SELECT generate_series(min(metrics.school_year(effective_on)), max(metrics.school_year(effective_on))) AS school_year
    FROM archive.student_history
), latest AS (
    SELECT y.school_year, h.*
    FROM years y
    CROSS JOIN LATERAL (
        SELECT DISTINCT ON (r.student_key)
               r.student_key, r.action, r.grade AS record_grade, r.effective_on,
               COALESCE(r.to_school_id, r.school_id) AS school_id, r.left_behind, r.disability
        FROM archive.student_history r
        WHERE r.effective_on <= make_date(y.school_year, 9, 30)
          AND NOT EXISTS (SELECT 1 FROM archive.student_history c WHERE c.supersedes = r.event_id)
        ORDER BY r.student_key, r.effective_on DESC, r.occurred_at DESC, r.event_id DESC
    ) h
)
SELECT l.school_year, l.student_key, l.school_id, s.county_id, s.urban_rural, st.sex,
       (l.record_grade + l.school_year - metrics.school_year(l.effective_on))::smallint AS grade,
       l.left_behind, l.disability
FROM latest l
JOIN archive.schools s ON s.school_id = l.school_id
JOIN archive.students st ON st.student_key = l.student_key
WHERE l.action <> 'leave'
  AND l.record_grade + l.school_year - metrics.school_year(l.effective_on) BETWEEN 1 AND 9
WITH NO DATA;
CREATE UNIQUE INDEX student_years_key ON metrics.student_years (school_year, student_key);

-- One observation per student, school year and metric: the latest current screening's verdict.
CREATE MATERIALIZED VIEW metrics.observations AS
WITH vision AS (
    SELECT DISTINCT ON (student_key, metrics.school_year(measured_on))
           student_key, metrics.school_year(measured_on) AS school_year, screening_myopia, impairment_student
    FROM archive.vision_current
    ORDER BY student_key, metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
), growth AS (
    SELECT DISTINCT ON (student_key, metrics.school_year(measured_on))
           student_key, metrics.school_year(measured_on) AS school_year, wst586, who_category, wst456_wasting
    FROM archive.growth_current
    WHERE flags = '{}'
    ORDER BY student_key, metrics.school_year(measured_on), measured_on DESC, occurred_at DESC, event_id DESC
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
SELECT school_year, student_key, 'overweight_wst586', wst586 = 'overweight' FROM growth WHERE wst586 <> 'not_applicable'
UNION ALL
SELECT school_year, student_key, 'obesity_wst586', wst586 = 'obesity' FROM growth WHERE wst586 <> 'not_applicable'
UNION ALL
SELECT school_year, student_key, 'overweight_who', who_category = 'overweight'
    FROM growth WHERE who_category <> 'not_applicable'
UNION ALL
SELECT school_year, student_key, 'obesity_who', who_category = 'obesity' FROM growth WHERE who_category <> 'not_applicable'
UNION ALL
SELECT school_year, student_key, 'wasting', wst456_wasting IN ('mild', 'moderate_severe')
    FROM growth WHERE wst456_wasting <> 'not_applicable'
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

-- The finest rollup: students and positives per school year, metric, school and characteristics.
-- Everything published is a sum of these cells (models/metrics.py aggregates and suppresses).
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

-- Data-quality rollups per day, school and screener (superseded rows included: they were received).
-- Plain materialized views here; where TimescaleDB has its Community part, 0025
-- (`archive.apply_timescaledb()`) replaces them by continuous aggregates of the same names and columns.
CREATE MATERIALIZED VIEW metrics.growth_daily AS
SELECT measured_on AS day, school_id, screener,
       count(*) AS measurements,
       count(*) FILTER (WHERE flags <> '{}') AS flagged,
       count(*) FILTER (WHERE wst586 = 'not_applicable') AS not_classified,
       count(*) FILTER (WHERE (height_cm * 10)::integer % 10 = 0) AS height_last_digit_0,
       count(*) FILTER (WHERE (height_cm * 10)::integer % 10 = 5) AS height_last_digit_5,
       count(*) FILTER (WHERE (weight_kg * 10)::integer % 10 = 0) AS weight_last_digit_0,
       count(*) FILTER (WHERE (weight_kg * 10)::integer % 10 = 5) AS weight_last_digit_5
FROM archive.growth_screenings
GROUP BY 1, 2, 3
WITH NO DATA;
CREATE MATERIALIZED VIEW metrics.vision_daily AS
SELECT measured_on AS day, school_id, screener,
       count(*) AS measurements,
       count(*) FILTER (WHERE impairment_student = 'not_applicable') AS not_classified,
       count(*) FILTER (WHERE se_right IS NULL AND se_left IS NULL) AS without_refraction
FROM archive.vision_screenings
GROUP BY 1, 2, 3
WITH NO DATA;

-- Digit preference needs the full distribution of last digits, per school year and screener.
CREATE MATERIALIZED VIEW metrics.digit_preference AS
SELECT metrics.school_year(measured_on) AS school_year, school_id, screener, 'height_cm'::text AS quantity,
       ((height_cm * 10)::integer % 10)::smallint AS last_digit, count(*)::integer AS measurements
FROM archive.growth_screenings GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT metrics.school_year(measured_on), school_id, screener, 'weight_kg',
       ((weight_kg * 10)::integer % 10)::smallint, count(*)::integer
FROM archive.growth_screenings GROUP BY 1, 2, 3, 4, 5
WITH NO DATA;

-- Refreshes every plain materialized view in `metrics` (dependency order); continuous aggregates
-- (which pg_matviews does not list) refresh by their policies.
CREATE FUNCTION metrics.refresh_rollups() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    name text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('schoolhealth.metrics.refresh'));
    FOREACH name IN ARRAY ARRAY['student_years', 'observations', 'indicator_cells', 'growth_daily',
                                'vision_daily', 'digit_preference'] LOOP
        IF EXISTS (SELECT 1 FROM pg_matviews WHERE schemaname = 'metrics' AND matviewname = name) THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW metrics.%I', name);
        END IF;
    END LOOP;
END
$fn$;

-- The live indicators: every school year's cells as `services.metrics.refresh_rollups` last
-- computed them, already suppressed (withheld cells keep only their key and the reason).
CREATE TABLE metrics.live_indicators (
    school_year     integer NOT NULL,
    metric_id       text NOT NULL,
    metric_version  integer NOT NULL,
    level           text NOT NULL CHECK (level IN ('province', 'county', 'school')),
    area_id         text NOT NULL,
    area_name       text NOT NULL,
    county_id       text,
    breakdown       text NOT NULL,
    category        text NOT NULL,
    denominator     integer,
    numerator       integer,
    rate            double precision,
    ci_low          double precision,
    ci_high         double precision,
    previous_rate   double precision,
    change          double precision,
    change_ci_low   double precision,
    change_ci_high  double precision,
    suppressed      text CHECK (suppressed IN ('primary', 'complementary')),
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_year, metric_id, level, area_id, breakdown, category),
    CHECK (suppressed IS NULL OR (denominator IS NULL AND numerator IS NULL AND rate IS NULL
                                  AND ci_low IS NULL AND ci_high IS NULL AND change IS NULL))
);

-- Publication: each `schoolhealth publish --year` adds a revision; nothing is ever changed.
CREATE TABLE metrics.publications (
    school_year   integer NOT NULL,
    revision      integer NOT NULL CHECK (revision >= 1),
    published_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_by  text NOT NULL DEFAULT current_user,
    definitions   jsonb NOT NULL,
    cells         integer NOT NULL,
    PRIMARY KEY (school_year, revision)
);

CREATE TABLE metrics.published_indicators (
    school_year     integer NOT NULL,
    revision        integer NOT NULL,
    metric_id       text NOT NULL,
    metric_version  integer NOT NULL,
    level           text NOT NULL,
    area_id         text NOT NULL,
    area_name       text NOT NULL,
    county_id       text,
    breakdown       text NOT NULL,
    category        text NOT NULL,
    denominator     integer,
    numerator       integer,
    rate            double precision,
    ci_low          double precision,
    ci_high         double precision,
    previous_rate   double precision,
    change          double precision,
    change_ci_low   double precision,
    change_ci_high  double precision,
    suppressed      text CHECK (suppressed IN ('primary', 'complementary')),
    PRIMARY KEY (school_year, revision, metric_id, level, area_id, breakdown, category),
    FOREIGN KEY (school_year, revision) REFERENCES metrics.publications,
    CHECK (suppressed IS NULL OR (denominator IS NULL AND numerator IS NULL AND rate IS NULL
                                  AND ci_low IS NULL AND ci_high IS NULL AND change IS NULL))
);

CREATE FUNCTION metrics.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'published metrics are immutable: publish again to add a revision'
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER publications_immutable BEFORE UPDATE OR DELETE ON metrics.publications
    FOR EACH ROW EXECUTE FUNCTION metrics.refuse_change();
CREATE TRIGGER publications_no_truncate BEFORE TRUNCATE ON metrics.publications
    FOR EACH STATEMENT EXECUTE FUNCTION metrics.refuse_change();
CREATE TRIGGER published_immutable BEFORE UPDATE OR DELETE ON metrics.published_indicators
    FOR EACH ROW EXECUTE FUNCTION metrics.refuse_change();
CREATE TRIGGER published_no_truncate BEFORE TRUNCATE ON metrics.published_indicators
    FOR EACH STATEMENT EXECUTE FUNCTION metrics.refuse_change();

DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA metrics TO %I', app);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA metrics TO %I', app);
    EXECUTE format('GRANT INSERT, DELETE ON metrics.live_indicators TO %I', app);
    EXECUTE format('GRANT INSERT ON metrics.publications, metrics.published_indicators TO %I', app);
    EXECUTE format('REVOKE ALL ON FUNCTION metrics.refresh_rollups() FROM PUBLIC');
    EXECUTE format('GRANT EXECUTE ON FUNCTION metrics.refresh_rollups() TO %I', app);
END
$grants$;
