-- `schoolhealth student` on the columnstore (issue 18): the schools each student has rows at in the
-- closed school years, so that one student's lookup reads one school's batch per compressed chunk.
--
-- The columnstore segments by school and orders by student within each school (0025). A lookup by
-- student_key alone can only use the batches' student_key ranges, and every school's batch of a
-- chunk spans nearly the whole key range: EXPLAIN (ANALYZE, BUFFERS) at 100,000 students showed 59
-- of 66 batches per chunk decompressed (about 22,000 rows) to find 0 or 1 row, in every chunk of
-- every closed year, a cost that grows with the number of schools. With `school_id = ANY(schools)`
-- TimescaleDB reads only those schools' segments.
--
-- archive.columnstore_students holds (student, school) for every row of every chunk listed in
-- archive.columnstore_chunks, filled when the chunk goes into the columnstore
-- (`archive.index_columnstore_chunk`, called by archive.columnstore_closed_school_years).
-- `archive.columnstore_boundaries()` says, per table, up to which day the narrowed read is exact: the end of
-- the newest chunk in the columnstore, provided every chunk before it is in the columnstore, is
-- listed with the compressed chunk it has now, and received no row since (TimescaleDB marks such a
-- chunk partial); otherwise NULL, and the lookup reads as before. Rows on or after the boundary are
-- in the rowstore and found through the student index, as before. On plain PostgreSQL, or with no
-- chunk in the columnstore, the boundary is NULL. The answers are the same rows either way
-- (tests/integration/services/students/test_student_lookup.py compares them on both backends).

CREATE TABLE archive.columnstore_students (
    student_key  text NOT NULL,
    school_id    text NOT NULL,
    PRIMARY KEY (student_key, school_id)
);

CREATE TABLE archive.columnstore_chunks (
    chunk_id             integer PRIMARY KEY,
    compressed_chunk_id  integer NOT NULL,
    indexed_at           timestamptz NOT NULL DEFAULT now()
);

-- Lists the (student, school) pairs of a chunk in the columnstore, and the chunk as indexed.
CREATE FUNCTION archive.index_columnstore_chunk(chunk regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    found record;
BEGIN
    SELECT c.id, c.compressed_chunk_id INTO found
    FROM _timescaledb_catalog.chunk c JOIN pg_class r ON r.relname = c.table_name
    JOIN pg_namespace n ON n.oid = r.relnamespace AND n.nspname = c.schema_name
    WHERE r.oid = chunk;
    IF found.compressed_chunk_id IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('INSERT INTO archive.columnstore_students (student_key, school_id)'
                   ' SELECT DISTINCT student_key, school_id FROM %s ON CONFLICT DO NOTHING', chunk);
    INSERT INTO archive.columnstore_chunks (chunk_id, compressed_chunk_id) VALUES (found.id, found.compressed_chunk_id)
    ON CONFLICT (chunk_id) DO UPDATE SET compressed_chunk_id = EXCLUDED.compressed_chunk_id, indexed_at = now();
END
$fn$;

-- For each table of archive.time_partitioned, the day before which its rows are all in listed
-- columnstore chunks (NULL: no such day). One statement for every table: the lookup runs it on a
-- fresh connection, where each further catalog query costs planning.
CREATE FUNCTION archive.columnstore_boundaries() RETURNS TABLE (table_name regclass, boundary date)
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN QUERY SELECT p.table_name, NULL::date FROM archive.time_partitioned p;
        RETURN;
    END IF;
    RETURN QUERY
    WITH chunks AS (
        SELECT p.table_name, c.compressed_chunk_id, c.status, i.compressed_chunk_id AS indexed_as,
               (_timescaledb_functions.to_timestamp_without_timezone(s.range_end))::date AS ends
        FROM archive.time_partitioned p
        JOIN pg_class r ON r.oid = p.table_name
        JOIN pg_namespace n ON n.oid = r.relnamespace
        JOIN _timescaledb_catalog.hypertable h ON h.schema_name = n.nspname AND h.table_name = r.relname
        JOIN _timescaledb_catalog.chunk c ON c.hypertable_id = h.id AND NOT c.osm_chunk
        JOIN _timescaledb_catalog.dimension_slice s ON s.chunk_id = c.id
        LEFT JOIN archive.columnstore_chunks i ON i.chunk_id = c.id
    ), newest AS (
        SELECT p.table_name, max(c.ends) FILTER (WHERE c.compressed_chunk_id IS NOT NULL) AS ends
        FROM archive.time_partitioned p LEFT JOIN chunks c USING (table_name)
        GROUP BY p.table_name
    )
    SELECT w.table_name,
           CASE WHEN NOT EXISTS (
               SELECT 1 FROM chunks c
               WHERE c.table_name = w.table_name AND c.ends <= w.ends
                 AND (c.compressed_chunk_id IS NULL OR c.indexed_as IS DISTINCT FROM c.compressed_chunk_id
                      OR c.status & 8 <> 0))  -- 8: rows written into the chunk after it was compressed
           THEN w.ends END
    FROM newest w;
END
$fn$;

-- The closed-year job (0025) lists what it puts into the columnstore.
CREATE OR REPLACE PROCEDURE archive.columnstore_closed_school_years(job_id integer, config jsonb)
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
            PERFORM archive.index_columnstore_chunk(chunk);
            converted := converted + 1;
        END LOOP;
    END LOOP;
    RAISE LOG 'columnstore_closed_school_years: % chunk(s) before % in the columnstore', converted, opened;
END
$proc$;

-- Chunks already in the columnstore are listed now.
DO $backfill$
DECLARE
    chunk regclass;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;
    END IF;
    FOR chunk IN
        SELECT format('%I.%I', c.schema_name, c.table_name)::regclass
        FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
        WHERE c.compressed_chunk_id IS NOT NULL AND NOT c.osm_chunk
          AND format('%I.%I', h.schema_name, h.table_name)::regclass IN (SELECT table_name FROM archive.time_partitioned)
    LOOP
        PERFORM archive.index_columnstore_chunk(chunk);
    END LOOP;
END
$backfill$;
