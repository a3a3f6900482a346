-- The event-id registry (0030) is the one unique key of an accepted event.
-- Since 0030 every archived event is registered in archive.event_ids (event_id primary key) in the
-- same transaction as its row, and the writer stores a row only after its id was registered (a
-- repeat is recognised there and never reaches the measurement table). The measurement tables'
-- own primary keys on (event_id, date), which TimescaleDB needed to carry the time column, then
-- only repeat that check: a second B-tree per row (measured with the pipeline benchmark: the
-- registry had added about 40 % to the archive's insert statements). So they go; the student and
-- school indexes stay, and lookups of one event go through the registry or the student's index.
-- The health-record history keeps its key (event_id alone; it is not a hypertable).
ALTER TABLE archive.vision_screenings DROP CONSTRAINT IF EXISTS vision_screenings_pkey;
ALTER TABLE archive.growth_screenings DROP CONSTRAINT IF EXISTS growth_screenings_pkey;
ALTER TABLE archive.survey_results DROP CONSTRAINT IF EXISTS survey_results_pkey;
ALTER TABLE archive.fitness_results DROP CONSTRAINT IF EXISTS fitness_results_pkey;

-- Whether an event id is archived, for the doctor's page that waits for its own submission: the
-- registry is not readable by the API role, and this answers for one id at a time, with its
-- family only (ids are random UUIDs: existence says nothing about a student).
CREATE FUNCTION archive.event_family(id uuid) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, archive
AS $$ SELECT family FROM archive.event_ids WHERE event_id = id $$;
REVOKE ALL ON FUNCTION archive.event_family(uuid) FROM PUBLIC;
DO $grants$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION archive.event_family(uuid) TO %I',
                   current_setting('schoolhealth.app_role') || '_api');
END
$grants$;
