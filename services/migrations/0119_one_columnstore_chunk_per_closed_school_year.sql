-- One columnstore chunk per table and closed school year (issue 18: the `student` lookup on
-- TimescaleDB).
--
-- The measurement tables are hypertables in 28-day chunks (0025): about 13 chunks per table and
-- school year, and the columnstore gives each closed one a compressed chunk beside it. Measured on
-- TimescaleDB (2.28, PostgreSQL 15), `schoolhealth student` took 125-165 ms at p95 whatever the
-- number of students (10,000 to 1,000,000), against 21-36 ms on plain PostgreSQL: the time is in
-- planning, not in reading. The lookup runs on a fresh connection, and its timeline query names
-- every chunk of the three tables; a backend opens each chunk, its compressed chunk and their
-- indexes the first time it plans over them. On the demo's database (63 chunks; measured beside a
-- benchmark seeding) the timeline's planning took 66-86 ms cold and 18-30 ms warm, against 5-17 ms
-- of execution; with each closed year's adjacent chunks merged (34 chunks), 41-45 ms cold.
--
-- A closed school year seldom takes rows (a late correction makes its chunk partial, and the job
-- compresses it again), so its chunks are merged into one (TimescaleDB's merge_chunks, which keeps
-- them in the columnstore): archive.merge_closed_school_years(opened) merges, for each table of
-- archive.time_partitioned, each run of adjacent columnstore chunks that end by `opened` and begin
-- in the same school year, skipping runs with a partial chunk (status 8: rows written after
-- compression). TimescaleDB marks the merged chunk partial, so it is compressed again (its rows
-- were all in the columnstore). Its (student, school) pairs are those of its parts: when every part
-- was listed (0106) with the compressed chunk it had, the merged chunk is listed with its own;
-- otherwise it is listed afresh from its rows (archive.index_columnstore_chunk). The open year keeps
-- its 28-day chunks. The columnstore job calls it after converting; on plain PostgreSQL it does
-- nothing.

CREATE PROCEDURE archive.merge_closed_school_years(opened date)
LANGUAGE plpgsql AS $proc$
DECLARE
    run record;
    survivor record;
    listed boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;
    END IF;
    FOR run IN
        WITH chunks AS (
            SELECT p.table_name, c.id, c.compressed_chunk_id, c.status,
                   format('%I.%I', c.schema_name, c.table_name)::regclass AS chunk,
                   i.range_start, i.range_end,
                   metrics.school_year((i.range_start AT TIME ZONE 'UTC')::date) AS school_year
            FROM archive.time_partitioned p
            JOIN pg_class r ON r.oid = p.table_name
            JOIN pg_namespace n ON n.oid = r.relnamespace
            JOIN timescaledb_information.chunks i
              ON i.hypertable_schema = n.nspname AND i.hypertable_name = r.relname
            JOIN _timescaledb_catalog.chunk c ON c.schema_name = i.chunk_schema AND c.table_name = i.chunk_name
            WHERE c.compressed_chunk_id IS NOT NULL AND NOT c.osm_chunk
              AND (i.range_end AT TIME ZONE 'UTC')::date <= opened
        ), ordered AS (
            SELECT *, lag(range_end) OVER (PARTITION BY table_name, school_year ORDER BY range_start) AS previous_end
            FROM chunks
        ), runs AS (
            SELECT *, count(*) FILTER (WHERE previous_end IS DISTINCT FROM range_start)
                          OVER (PARTITION BY table_name, school_year ORDER BY range_start) AS run_number
            FROM ordered
        )
        SELECT table_name, school_year, array_agg(chunk ORDER BY range_start) AS chunks,
               array_agg(id) AS ids, array_agg(compressed_chunk_id) AS compressed_ids
        FROM runs
        GROUP BY table_name, school_year, run_number
        HAVING count(*) > 1 AND bool_and(status & 8 = 0)
    LOOP
        -- Were all the parts listed with the compressed chunk each has now?
        SELECT count(*) = cardinality(run.ids) INTO listed
        FROM unnest(run.ids, run.compressed_ids) AS part(id, compressed_id)
        JOIN archive.columnstore_chunks l ON l.chunk_id = part.id AND l.compressed_chunk_id = part.compressed_id;
        CALL merge_chunks(run.chunks);
        DELETE FROM archive.columnstore_chunks WHERE chunk_id = ANY(run.ids);
        SELECT format('%I.%I', c.schema_name, c.table_name)::regclass AS chunk, c.compressed_chunk_id, c.status
        INTO STRICT survivor
        FROM _timescaledb_catalog.chunk c WHERE c.id = ANY(run.ids);
        -- TimescaleDB marks the merged chunk partial: compressed again, so the lookup may narrow it.
        IF survivor.compressed_chunk_id IS NULL OR survivor.status & 8 <> 0 THEN
            CALL convert_to_columnstore(survivor.chunk, if_not_columnstore => true, recompress => true);
        END IF;
        SELECT c.id, c.compressed_chunk_id, format('%I.%I', c.schema_name, c.table_name)::regclass AS chunk
        INTO STRICT survivor
        FROM _timescaledb_catalog.chunk c WHERE c.id = ANY(run.ids);
        IF listed THEN
            INSERT INTO archive.columnstore_chunks (chunk_id, compressed_chunk_id)
            VALUES (survivor.id, survivor.compressed_chunk_id);
        ELSE
            PERFORM archive.index_columnstore_chunk(survivor.chunk);
        END IF;
        RAISE LOG 'merge_closed_school_years: % chunks of % (school year %) merged into %',
            cardinality(run.ids), run.table_name, run.school_year, survivor.chunk;
    END LOOP;
END
$proc$;

-- 0106's job, which now merges what it converted.
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
    CALL archive.merge_closed_school_years(opened);
    RAISE LOG 'columnstore_closed_school_years: % chunk(s) before % in the columnstore', converted, opened;
END
$proc$;
