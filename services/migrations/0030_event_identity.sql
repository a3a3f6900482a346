-- One event id, one stored event, across every family and date.
-- The archive tables are keyed by (event_id, date) (hypertables need the time column in their
-- unique keys), so on their own they would store one id twice under two dates or in two
-- families. This registry is keyed by the event id alone: the archive writer inserts each
-- batch's ids here in the same transaction as its rows; an id already here with another family,
-- or whose stored row differs, is dead-lettered as conflicting_duplicate; an exact repeat
-- (a redelivery) is a silent no-op. Ids and families only: nothing personal.
CREATE TABLE archive.event_ids (
    event_id   uuid PRIMARY KEY,
    family     text NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);

-- What is already stored (the first family wins where an id was reused across families).
INSERT INTO archive.event_ids (event_id, family)
SELECT event_id, 'health-record' FROM archive.student_history ON CONFLICT DO NOTHING;
INSERT INTO archive.event_ids (event_id, family)
SELECT event_id, 'vision-screening' FROM archive.vision_screenings ON CONFLICT DO NOTHING;
INSERT INTO archive.event_ids (event_id, family)
SELECT event_id, 'bmi-screening' FROM archive.growth_screenings ON CONFLICT DO NOTHING;
INSERT INTO archive.event_ids (event_id, family)
SELECT event_id, 'psych-survey' FROM archive.survey_results ON CONFLICT DO NOTHING;
DO $$
BEGIN
    -- The fitness table comes with a later migration; a database that already has it backfills it too.
    IF to_regclass('archive.fitness_results') IS NOT NULL THEN
        INSERT INTO archive.event_ids (event_id, family)
        SELECT event_id, 'fitness-test' FROM archive.fitness_results ON CONFLICT DO NOTHING;
    END IF;
    EXECUTE format('GRANT SELECT, INSERT ON archive.event_ids TO %I', current_setting('schoolhealth.app_role'));
END
$$;
