-- The superseded events, kept in a table of their own (issue 18): "current" no longer reads the
-- whole archive.
--
-- An event is current when no correction names it in `supersedes` (0001). The *_current views said
-- so with an anti-join against their own table; PostgreSQL answers it with a hash built from every
-- row's `supersedes`, and on TimescaleDB that decompresses the column of every closed-year chunk:
-- at a million students, 2.97 million rows per scan and about five scans per rollup statement, in
-- both refreshes and in every read of a view. Corrections are rare (none in the benchmark's seed).
--
-- archive.superseded holds one row per (measurement table, superseded event id), kept by triggers
-- on the four measurement tables, so that it is right whoever writes (the archive writer, the
-- seeder, a hand-made correction):
--   * after an insert of a row with `supersedes`: the pair is added (a second correction of the
--     same event changes nothing);
--   * after a delete of such a row, or an update of its `supersedes`: the old pair is removed
--     unless another row of the table still names it (the tables are append-only; the tests and
--     an operator's repair delete).
-- The triggers are row triggers with a WHEN clause: a row without `supersedes` does not call them,
-- and COPY and INSERT ... SELECT keep their multi-row inserts (AFTER triggers do not stop them).
-- The views anti-join this table (hash of a few rows) with the same columns, security barrier and
-- school scope as before. The health history is not a hypertable (its anti-join is an index probe)
-- and stays as it is.

CREATE TABLE archive.superseded (
    -- the measurement table ('vision_screenings', ...): a correction supersedes within its table
    source    text NOT NULL,
    event_id  uuid NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE FUNCTION archive.note_superseded() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    -- TG_TABLE_NAME is a chunk's on TimescaleDB: the hypertable's name is the trigger's argument
    source text := TG_ARGV[0];
    still_named boolean;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.supersedes IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM archive.%I WHERE supersedes = $1)', source)
            INTO still_named USING OLD.supersedes;
        IF NOT still_named THEN
            DELETE FROM archive.superseded s WHERE s.source = TG_ARGV[0] AND s.event_id = OLD.supersedes;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.supersedes IS NOT NULL THEN
        INSERT INTO archive.superseded (source, event_id) VALUES (source, NEW.supersedes)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION archive.note_superseded() FROM PUBLIC;

DO $triggers$
DECLARE
    measurement text;
BEGIN
    FOREACH measurement IN ARRAY ARRAY['vision_screenings', 'growth_screenings', 'survey_results',
                                       'fitness_results'] LOOP
        EXECUTE format('CREATE TRIGGER superseded_insert AFTER INSERT ON archive.%I FOR EACH ROW'
                       ' WHEN (NEW.supersedes IS NOT NULL) EXECUTE FUNCTION archive.note_superseded(%L)',
                       measurement, measurement);
        EXECUTE format('CREATE TRIGGER superseded_delete AFTER DELETE ON archive.%I FOR EACH ROW'
                       ' WHEN (OLD.supersedes IS NOT NULL) EXECUTE FUNCTION archive.note_superseded(%L)',
                       measurement, measurement);
        EXECUTE format('CREATE TRIGGER superseded_update AFTER UPDATE OF supersedes ON archive.%I FOR EACH ROW'
                       ' WHEN (OLD.supersedes IS DISTINCT FROM NEW.supersedes)'
                       ' EXECUTE FUNCTION archive.note_superseded(%L)', measurement, measurement);
        -- what is stored already
        EXECUTE format('INSERT INTO archive.superseded (source, event_id)'
                       ' SELECT DISTINCT %L, supersedes FROM archive.%I WHERE supersedes IS NOT NULL',
                       measurement, measurement);
    END LOOP;
END
$triggers$;
ANALYZE archive.superseded;

DO $views$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT * FROM (VALUES ('vision_current', 'vision_screenings', 'school_doctor'),
                                   ('growth_current', 'growth_screenings', 'school_doctor'),
                                   ('survey_current', 'survey_results', 'counselling'),
                                   ('fitness_current', 'fitness_results', 'school_doctor')) AS t (name, source, team)
    LOOP
        EXECUTE format($v$CREATE OR REPLACE VIEW archive.%I WITH (security_barrier = true) AS
            SELECT m.* FROM archive.%I m
            WHERE NOT EXISTS (SELECT 1 FROM archive.superseded c WHERE c.source = %L AND c.event_id = m.event_id)
              AND %s$v$, v.name, v.source, v.source, archive.school_scope_sql('m.school_id', v.team));
    END LOOP;
END
$views$;
