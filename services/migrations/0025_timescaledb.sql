-- TimescaleDB for the health archive (issue 13): hypertables, columnstore on closed school years,
-- continuous aggregates for the data-quality dailies. Defined on every backend, acting only where
-- the extension is installed in this database, under the same table and view names everywhere.
--
-- What is used, and what for:
--   hypertables            the measurement tables (vision, growth, surveys), partitioned by the
--                          measurement date in 28-day chunks (see archive.chunk_interval below).
--   columnstore            chunks of closed school years are converted to the columnstore,
--                          segmented by school (every report and school page filters on it) and
--                          ordered by student and date (the archive's lookups: a student's rows
--                          sit in one or two batches, and the min/max of student_key per batch
--                          lets a lookup skip the rest). Closed years are almost never written;
--                          a late correction still inserts (TimescaleDB writes into compressed
--                          chunks), at the price of decompressing one school's batches.
--   continuous aggregates  metrics.growth_daily and metrics.vision_daily (data quality per day,
--                          school and screener), refreshed incrementally, with real-time
--                          aggregation on (materialized_only = false) so the newest rows count
--                          before a refresh. The student-year rollups stay materialized views:
--                          they need DISTINCT ON, NOT EXISTS over corrections and joins to the
--                          health records, none of which a continuous aggregate allows.
--   jobs                   the continuous aggregates' refresh policy (hourly) and a job of our
--                          own, archive.columnstore_closed_school_years (daily), instead of
--                          add_columnstore_policy, whose `after` is a sliding interval: a school
--                          year closes on 1 September (Asia/Shanghai), not N days after its rows.
--                          Background jobs fail on Debian's PostgreSQL 15.20 (upstream bug); the
--                          tests run them with CALL run_job(...), and every rollup refresh
--                          (services.metrics.refresh_rollups) refreshes the continuous
--                          aggregates itself. Each job first runs one interval after it is
--                          created, not while the migration's workers start.
--
-- Chunks: a school year runs from 1 September to 31 August. TimescaleDB stores an interval of
-- '1 year' as 360 days, so year-long chunks drift across school years; and no fixed interval
-- follows the calendar (365 or 366 days). 28-day chunks give 13 or 14 per school year; the
-- columnstore job converts a chunk only when it ends on or before the 1 September that opened
-- the current school year, so every closed year is in the columnstore except, at most, the few
-- summer-holiday days that share a chunk with the next September, which wait one more year.
-- With a province of about 5 million pupils screened mostly in the autumn campaign, a 28-day
-- chunk of one table holds up to about 2 million rows (~0.8 GB with indexes): small enough to
-- stay in memory while it is written, large enough to keep the chunk count low (about 120 per
-- table over nine years of schooling).
--
-- Retention: none automatic. The archive is each pupil's longitudinal health record, kept for
-- the whole of their schooling and as long as the health office decides after it; deleting it
-- is a decision, not a policy. If a retention period is decided, add add_retention_policy to the
-- hypertables AND give the dailies' refresh policy a start_offset shorter than that period:
-- refreshing a window whose raw chunks were dropped deletes the aggregated rows too.
--
-- Editions: the Apache-licensed build has hypertables only; columnstore, continuous aggregates
-- and jobs need the Community licence (timescaledb.license = 'timescale'). The edition is
-- checked, not guessed from errors: with 'apache' the tables become hypertables and the dailies
-- stay materialized views, said in a NOTICE. Anything unexpected raises.
--
-- For migrations 0030 and later (e.g. #19's fitness results): make a measurement table a
-- hypertable with `SELECT archive.make_hypertable('archive.my_table', 'measured_on');` after
-- creating it. Its unique keys must include the time column, it must have school_id and
-- student_key columns, and it must not have row-level security (scope readers with a view, as
-- 0024 explains). The call registers the table in archive.time_partitioned on every backend;
-- where TimescaleDB exists (now or after a later `stack up`), it becomes a hypertable with this
-- chunk interval and columnstore settings, and the closed-school-year job covers it.

CREATE FUNCTION archive.chunk_interval() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN INTERVAL '28 days';

-- The measurement tables that are hypertables where TimescaleDB exists.
CREATE TABLE archive.time_partitioned (
    table_name   regclass PRIMARY KEY,
    time_column  name NOT NULL
);
INSERT INTO archive.time_partitioned VALUES
    ('archive.vision_screenings', 'measured_on'),
    ('archive.growth_screenings', 'measured_on'),
    ('archive.survey_results', 'answered_on');

-- NULL without the extension in this database, else its licence: 'apache' or 'timescale'.
CREATE FUNCTION archive.timescaledb_edition() RETURNS text
    LANGUAGE sql STABLE
    RETURN CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                THEN coalesce(current_setting('timescaledb.license', true), 'unknown') END;

-- Closed school years into the columnstore: every chunk that ends on or before the 1 September
-- that opened the current school year (in the configured time zone).
CREATE PROCEDURE archive.columnstore_closed_school_years(job_id integer, config jsonb)
LANGUAGE plpgsql AS $proc$
DECLARE
    zone text := coalesce(config ->> 'time_zone', 'Asia/Shanghai');
    opened date := make_date(metrics.school_year((now() AT TIME ZONE zone)::date), 9, 1);
    target regclass;
    chunk regclass;
    converted integer := 0;
BEGIN
    FOR target IN
        SELECT p.table_name FROM archive.time_partitioned p
        JOIN pg_class c ON c.oid = p.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN timescaledb_information.hypertables h
          ON h.hypertable_schema = n.nspname AND h.hypertable_name = c.relname
        WHERE h.compression_enabled
    LOOP
        FOR chunk IN SELECT show_chunks(target, older_than => opened) LOOP
            CALL convert_to_columnstore(chunk, if_not_columnstore => true);
            converted := converted + 1;
        END LOOP;
    END LOOP;
    RAISE LOG 'columnstore_closed_school_years: % chunk(s) before % in the columnstore', converted, opened;
END
$proc$;

-- One table into a hypertable with the project's chunks and columnstore settings (idempotent).
CREATE FUNCTION archive.convert_to_hypertable(target regclass, time_column name) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    edition text := archive.timescaledb_edition();
    schema_name name;
    table_name name;
    row_security boolean;
BEGIN
    SELECT n.nspname, c.relname, c.relrowsecurity INTO schema_name, table_name, row_security
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = target;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                   WHERE h.hypertable_schema = schema_name AND h.hypertable_name = table_name) THEN
        IF row_security THEN
            RAISE EXCEPTION '% has row-level security, which TimescaleDB refuses with columnstore and continuous aggregates', target
                USING HINT = 'Scope readers with a security-barrier view whose WHERE clause is archive.school_scope_sql(...) (see migration 0024).';
        END IF;
        PERFORM create_hypertable(target, by_range(time_column, archive.chunk_interval()), migrate_data => true);
    ELSIF (SELECT d.time_interval FROM timescaledb_information.dimensions d
           WHERE d.hypertable_schema = schema_name AND d.hypertable_name = table_name
             AND d.column_name = time_column) IS DISTINCT FROM archive.chunk_interval() THEN
        -- A hypertable made elsewhere (another interval): new chunks follow the project's.
        PERFORM set_chunk_time_interval(target, archive.chunk_interval());
    END IF;
    IF edition = 'timescale' AND NOT (SELECT h.compression_enabled FROM timescaledb_information.hypertables h
                                      WHERE h.hypertable_schema = schema_name AND h.hypertable_name = table_name) THEN
        IF (SELECT count(*) FROM pg_attribute WHERE attrelid = target AND attnum > 0 AND NOT attisdropped
              AND attname IN ('school_id', 'student_key')) <> 2 THEN
            RAISE EXCEPTION '% needs school_id and student_key columns: the columnstore segments by school and orders by student', target;
        END IF;
        EXECUTE format('ALTER TABLE %s SET (timescaledb.enable_columnstore, timescaledb.segmentby = %L, '
                       'timescaledb.orderby = %L)', target, 'school_id', format('student_key, %I', time_column));
    END IF;
END
$fn$;

-- The dailies as continuous aggregates, replacing the materialized views of 0020. Views that read
-- them (reporting.dq_measurements) are dropped and recreated with their definition and grants.
CREATE FUNCTION archive.dailies_to_continuous_aggregates() RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    dependent record;
    grant_row record;
    saved jsonb := '[]';
    item jsonb;
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
    DROP MATERIALIZED VIEW metrics.growth_daily;
    DROP MATERIALIZED VIEW metrics.vision_daily;
    -- Same columns as 0020's materialized views; time_bucket of a day is the day itself.
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
    -- The app role reads every metrics table (0020's grant covered the views it replaces).
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

-- Everything above, idempotently: run by this migration and by `schoolhealth migrate` after
-- every run, so a database whose cluster gains TimescaleDB later is converted with its data.
-- Returns what is in place, in one line.
CREATE FUNCTION archive.apply_timescaledb() RETURNS text
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
        RAISE NOTICE 'TimescaleDB Apache edition: hypertables only; columnstore and continuous aggregates need the Community licence (timescaledb.license = timescale), so the dailies stay materialized views';
        RETURN 'TimescaleDB (apache): hypertables';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_matviews WHERE schemaname = 'metrics' AND matviewname IN ('growth_daily', 'vision_daily')) THEN
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

-- New measurement tables of later migrations (see the header).
CREATE FUNCTION archive.make_hypertable(target regclass, time_column name) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO archive.time_partitioned (table_name, time_column) VALUES (target, time_column)
    ON CONFLICT (table_name) DO UPDATE SET time_column = EXCLUDED.time_column;
    IF archive.timescaledb_edition() IS NOT NULL THEN
        PERFORM archive.apply_timescaledb();
    END IF;
END
$fn$;

REVOKE ALL ON FUNCTION archive.apply_timescaledb(), archive.make_hypertable(regclass, name),
    archive.convert_to_hypertable(regclass, name), archive.dailies_to_continuous_aggregates() FROM PUBLIC;
REVOKE ALL ON PROCEDURE archive.columnstore_closed_school_years(integer, jsonb) FROM PUBLIC;

SELECT archive.apply_timescaledb();
