-- A refresh first gives statistics to the archive's chunks (and tables) that never had any
-- (issue 18, TimescaleDB).
--
-- The incremental refresh reads each marked (student, school year) pair's screenings with a probe
-- per pair: the student's key and the school year's dates. On a chunk that PostgreSQL has never
-- analysed (TimescaleDB creates one when a screening day's rows are the first of its 28 days, and
-- autovacuum analyses it a minute or more later) the planner has no statistics, takes the default
-- selectivity for the date range and combines the student index with the date index in a
-- BitmapAnd: each pair's probe then reads the whole chunk's date index, because every row of the
-- chunk lies in the school year. Measured at 1M students (TimescaleDB 2.28.3, 4 December 2026):
-- the refresh of a screening day whose rows went into fresh chunks was still in those scans after
-- 7.5 minutes, where the day before (its chunks analysed) took 55 s.
--
-- archive.analyze_new_chunks() analyses every rowstore chunk of the archive's hypertables (on
-- plain PostgreSQL: every archive measurement table) whose pg_class.reltuples is still -1, i.e.
-- never analysed or vacuumed, and returns their names. ANALYZE samples at most 30,000 rows
-- (default_statistics_target 100), so a fresh chunk of a screening day costs milliseconds; a
-- chunk analysed once keeps usable statistics as it grows (the date histogram spans the school
-- year, the row count scales with the chunk's pages). The refresh calls it in a short transaction
-- of its own before its locked one, so the ANALYZE's lock is not held through the refresh.
-- Columnstore chunks are left alone: their rows live in the compressed chunk, and TimescaleDB
-- keeps their statistics.

CREATE FUNCTION archive.analyze_new_chunks() RETURNS text[]
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    target regclass;
    analysed text[] := '{}';
BEGIN
    FOR target IN
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.reltuples < 0 AND c.relkind = 'r'
          AND c.oid IN (SELECT t.table_name FROM archive.time_partitioned t
                        UNION ALL SELECT 'archive.fitness_results'::regclass)
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
        ORDER BY 1
    LOOP
        EXECUTE format('ANALYZE %s', target);
        analysed := analysed || target::text;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        FOR target IN EXECUTE
            'SELECT format(''%I.%I'', k.chunk_schema, k.chunk_name)::regclass'
            ' FROM timescaledb_information.chunks k'
            ' JOIN pg_class c ON c.oid = format(''%I.%I'', k.chunk_schema, k.chunk_name)::regclass'
            ' WHERE k.hypertable_schema = ''archive'' AND NOT k.is_compressed AND c.reltuples < 0'
            ' ORDER BY k.hypertable_name, k.range_start'
        LOOP
            EXECUTE format('ANALYZE %s', target);
            analysed := analysed || target::text;
        END LOOP;
    END IF;
    RETURN analysed;
END
$fn$;

REVOKE ALL ON FUNCTION archive.analyze_new_chunks() FROM PUBLIC;
DO $grants$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION archive.analyze_new_chunks() TO %I',
                   current_setting('schoolhealth.app_role'));
END
$grants$;
