-- The data-quality dailies are updated per school by the incremental refresh where they are not
-- continuous aggregates (issue 18).
--
-- metrics.growth_daily and metrics.vision_daily count every measurement received per day, school
-- and screener (the data-quality panels). Where TimescaleDB has its Community part they are
-- continuous aggregates (0025), incremental by TimescaleDB's invalidation log. Elsewhere (plain
-- PostgreSQL, TimescaleDB's Apache edition) they were materialized views and every refresh,
-- incremental or not, refreshed both: REFRESH MATERIALIZED VIEW counts every measurement of every
-- year again (0.83 s at 100,000 students, growing with the archive: about a tenth of a screening
-- day's refresh at a million).
--
-- Now they are tables there, with the same columns, filled from two views that hold their
-- definitions (metrics.growth_daily_counts, metrics.vision_daily_counts, 0020's queries). The
-- archive writer marks, in each batch's transaction, the (daily, school, day) of its vision and
-- growth screenings in metrics.dirty_days, as it marks student-years (0109); then
--   * the full refresh and a whole-year one recount every day (metrics.refresh_dailies);
--   * the incremental refresh takes the marks and recounts only those days of those schools
--     (metrics.refresh_marked_dailies), through the measurement tables' (school_id, measured_on)
--     indexes: a screening day's refresh recounts that day of its schools, whatever the archive's
--     size. The marks are taken the way the student marks are (deleted, then the days recounted
--     from a later snapshot: a batch committed meanwhile is in both or marked for the next round).
-- The dailies count every row received, corrected or not, and rows are never deleted: a day's
-- counts change only with a new row, whose day its batch marked.
-- Where the dailies are continuous aggregates the marks are only taken (TimescaleDB keeps its own
-- invalidation log). When TimescaleDB comes later, archive.apply_timescaledb replaces the tables
-- by continuous aggregates as it replaced the materialized views (the functions below, for either
-- kind).

CREATE TABLE metrics.dirty_days (
    daily      text NOT NULL CHECK (daily IN ('growth', 'vision')),
    school_id  text NOT NULL,
    day        date NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now()
);

-- 0020's definitions, as views: what a daily holds, computed from the archive.
CREATE VIEW metrics.growth_daily_counts AS
SELECT measured_on AS day, school_id, screener,
       count(*) AS measurements,
       count(*) FILTER (WHERE flags <> '{}') AS flagged,
       count(*) FILTER (WHERE wst586 = 'not_applicable') AS not_classified,
       count(*) FILTER (WHERE (height_cm * 10)::integer % 10 = 0) AS height_last_digit_0,
       count(*) FILTER (WHERE (height_cm * 10)::integer % 10 = 5) AS height_last_digit_5,
       count(*) FILTER (WHERE (weight_kg * 10)::integer % 10 = 0) AS weight_last_digit_0,
       count(*) FILTER (WHERE (weight_kg * 10)::integer % 10 = 5) AS weight_last_digit_5
FROM archive.growth_screenings
GROUP BY 1, 2, 3;
CREATE VIEW metrics.vision_daily_counts AS
SELECT measured_on AS day, school_id, screener,
       count(*) AS measurements,
       count(*) FILTER (WHERE impairment_student = 'not_applicable') AS not_classified,
       count(*) FILTER (WHERE se_right IS NULL AND se_left IS NULL) AS without_refraction
FROM archive.vision_screenings
GROUP BY 1, 2, 3;

-- Replace both dailies, whatever they are now (materialized views, tables or continuous
-- aggregates), by tables (`p_continuous` false) or continuous aggregates (true). The views that
-- read them (reporting.dq_measurements) are dropped and made again with their definition, options
-- and grants (0025's way).
CREATE FUNCTION archive.rebuild_dailies(p_continuous boolean) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    dependent record;
    grant_row record;
    saved jsonb := '[]';
    item jsonb;
    daily text;
BEGIN
    FOR dependent IN
        SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS definition,
               v.reloptions, v.relacl, v.relowner
        FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
        WHERE d.classid = 'pg_rewrite'::regclass
          AND d.refobjid IN ('metrics.growth_daily'::regclass, 'metrics.vision_daily'::regclass)
          AND v.oid NOT IN ('metrics.growth_daily'::regclass, 'metrics.vision_daily'::regclass)
    LOOP
        saved := saved || jsonb_build_object(
            'name', dependent.name, 'definition', dependent.definition,
            'options', coalesce(array_to_string(dependent.reloptions, ', '), ''),
            'grants', coalesce((SELECT jsonb_agg(jsonb_build_array(
                                   CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                   a.privilege_type))
                                FROM aclexplode(dependent.relacl) a WHERE a.grantee <> dependent.relowner), '[]'));
        -- A view on top of these views would need the same care: stop rather than cascade.
        EXECUTE format('DROP VIEW %s', dependent.name);
    END LOOP;
    FOREACH daily IN ARRAY ARRAY['metrics.growth_daily', 'metrics.vision_daily'] LOOP
        EXECUTE format('DROP %s %s',
                       CASE (SELECT relkind FROM pg_class WHERE oid = daily::regclass)
                           WHEN 'r' THEN 'TABLE' ELSE 'MATERIALIZED VIEW' END, daily);
    END LOOP;
    IF p_continuous THEN
        -- 0025's continuous aggregates: time_bucket of a day is the day itself.
        CREATE MATERIALIZED VIEW metrics.growth_daily
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket('1 day', measured_on) AS day, school_id, screener,
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
        CREATE MATERIALIZED VIEW metrics.vision_daily
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket('1 day', measured_on) AS day, school_id, screener,
               count(*) AS measurements,
               count(*) FILTER (WHERE impairment_student = 'not_applicable') AS not_classified,
               count(*) FILTER (WHERE se_right IS NULL AND se_left IS NULL) AS without_refraction
        FROM archive.vision_screenings
        GROUP BY 1, 2, 3
        WITH NO DATA;
    ELSE
        CREATE TABLE metrics.growth_daily AS SELECT * FROM metrics.growth_daily_counts;
        CREATE TABLE metrics.vision_daily AS SELECT * FROM metrics.vision_daily_counts;
        -- What the student mode deletes by.
        CREATE INDEX growth_daily_school ON metrics.growth_daily (school_id, day);
        CREATE INDEX vision_daily_school ON metrics.vision_daily (school_id, day);
    END IF;
    -- The app role reads every metrics table (0020's grant covered the views these replace).
    EXECUTE format('GRANT SELECT ON metrics.growth_daily, metrics.vision_daily TO %I',
                   current_setting('schoolhealth.app_role'));
    FOR item IN SELECT * FROM jsonb_array_elements(saved) LOOP
        EXECUTE format('CREATE VIEW %s%s AS %s', item ->> 'name',
                       CASE WHEN item ->> 'options' = '' THEN '' ELSE ' WITH (' || (item ->> 'options') || ')' END,
                       item ->> 'definition');
        FOR grant_row IN SELECT g ->> 0 AS grantee, g ->> 1 AS privilege FROM jsonb_array_elements(item -> 'grants') g LOOP
            EXECUTE format('GRANT %s ON %s TO %s', grant_row.privilege, item ->> 'name', grant_row.grantee);
        END LOOP;
    END LOOP;
END
$fn$;

-- 0025's function, for either kind of daily it replaces.
CREATE OR REPLACE FUNCTION archive.dailies_to_continuous_aggregates() RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM archive.rebuild_dailies(true);
END
$fn$;

-- Whether the dailies are something other than continuous aggregates (which are views, relkind v).
CREATE FUNCTION metrics.dailies_are_tables() RETURNS boolean LANGUAGE sql STABLE AS $body$
    SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = 'metrics.growth_daily'::regclass AND relkind = 'r');
$body$;

-- 0025's function; the dailies are converted when they are materialized views or tables.
CREATE OR REPLACE FUNCTION archive.apply_timescaledb() RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    edition text := archive.timescaledb_edition();
    partitioned record;
    daily text;
BEGIN
    IF edition IS NULL THEN
        RETURN 'plain PostgreSQL';
    END IF;
    IF edition NOT IN ('apache', 'timescale') THEN
        RAISE EXCEPTION 'TimescaleDB is installed with an unknown licence %; expected apache or timescale', edition;
    END IF;
    FOR partitioned IN SELECT table_name, time_column FROM archive.time_partitioned ORDER BY table_name::text LOOP
        PERFORM archive.convert_to_hypertable(partitioned.table_name, partitioned.time_column);
    END LOOP;
    IF edition = 'apache' THEN
        RAISE NOTICE 'TimescaleDB Apache edition: hypertables only; columnstore and continuous aggregates need the Community licence (timescaledb.license = timescale), so the dailies stay tables';
        RETURN 'TimescaleDB (apache): hypertables';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid IN ('metrics.growth_daily'::regclass, 'metrics.vision_daily'::regclass)
                                        AND relkind IN ('m', 'r')) THEN
        PERFORM archive.dailies_to_continuous_aggregates();
    END IF;
    FOREACH daily IN ARRAY ARRAY['metrics.growth_daily', 'metrics.vision_daily'] LOOP
        PERFORM add_continuous_aggregate_policy(daily::regclass, start_offset => NULL,
            end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', if_not_exists => true,
            initial_start => now() + INTERVAL '1 hour');
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs
                   WHERE proc_schema = 'archive' AND proc_name = 'columnstore_closed_school_years') THEN
        PERFORM add_job('archive.columnstore_closed_school_years', INTERVAL '1 day',
                        config => '{"time_zone": "Asia/Shanghai"}', initial_start => now() + INTERVAL '1 hour');
    END IF;
    RETURN 'TimescaleDB (timescale): hypertables, columnstore, continuous aggregates';
END
$fn$;

-- Every day of every school, recounted (the full refresh, a whole-year one); the day marks are
-- taken first. Continuous aggregates are refreshed by their owner (services), as before.
CREATE OR REPLACE FUNCTION metrics.refresh_dailies() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    DELETE FROM metrics.dirty_days;
    IF metrics.dailies_are_tables() THEN
        TRUNCATE metrics.growth_daily, metrics.vision_daily;
        INSERT INTO metrics.growth_daily SELECT * FROM metrics.growth_daily_counts;
        INSERT INTO metrics.vision_daily SELECT * FROM metrics.vision_daily_counts;
    END IF;
END
$fn$;

-- The marked days of the marked schools, recounted (the incremental refresh).
CREATE FUNCTION metrics.refresh_marked_dailies() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS marked_days (daily text NOT NULL, school_id text NOT NULL, day date NOT NULL)
        ON COMMIT DROP;
    TRUNCATE marked_days;
    WITH taken AS (DELETE FROM metrics.dirty_days RETURNING daily, school_id, day)
    INSERT INTO marked_days SELECT DISTINCT daily, school_id, day FROM taken;
    IF NOT metrics.dailies_are_tables() THEN
        RETURN;
    END IF;
    DELETE FROM metrics.growth_daily d USING marked_days m
    WHERE m.daily = 'growth' AND d.school_id = m.school_id AND d.day = m.day;
    INSERT INTO metrics.growth_daily
    SELECT n.* FROM marked_days m
    CROSS JOIN LATERAL (
        SELECT * FROM metrics.growth_daily_counts n WHERE n.school_id = m.school_id AND n.day = m.day OFFSET 0) n
    WHERE m.daily = 'growth';
    DELETE FROM metrics.vision_daily d USING marked_days m
    WHERE m.daily = 'vision' AND d.school_id = m.school_id AND d.day = m.day;
    INSERT INTO metrics.vision_daily
    SELECT n.* FROM marked_days m
    CROSS JOIN LATERAL (
        SELECT * FROM metrics.vision_daily_counts n WHERE n.school_id = m.school_id AND n.day = m.day OFFSET 0) n
    WHERE m.daily = 'vision';
END
$fn$;

-- Here and now: the materialized views become tables (a database whose dailies are continuous
-- aggregates keeps them).
DO $convert$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_matviews WHERE schemaname = 'metrics' AND matviewname = 'growth_daily') THEN
        PERFORM archive.rebuild_dailies(false);
    END IF;
END
$convert$;

REVOKE ALL ON FUNCTION archive.rebuild_dailies(boolean), metrics.refresh_marked_dailies() FROM PUBLIC;
DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
BEGIN
    -- The writer marks, the refresh takes the marks (through the function).
    EXECUTE format('GRANT INSERT ON metrics.dirty_days TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION metrics.refresh_marked_dailies() TO %I', app);
END
$grants$;
