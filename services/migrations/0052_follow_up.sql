-- Follow-up of screening findings: what the school doctor has done about one screening result
-- that needs action (screening myopia, visual impairment, overweight/obesity, wasting, stunting).
-- The findings themselves are read from the archive; a case row exists once the doctor records a
-- step (parents notified, referred, re-checked, closed) or a next-check date. No row: "to notify".
CREATE SCHEMA IF NOT EXISTS followup;

CREATE TABLE followup.cases (
    student_key         text NOT NULL CHECK (student_key ~ '^[0-9a-f]{64}$'),
    screening_event_id  uuid NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('vision', 'growth')),
    school_id           text NOT NULL,
    measured_on         date NOT NULL,
    state               text NOT NULL CHECK (state IN ('to_notify', 'parents_notified', 'referred', 'rechecked', 'closed')),
    next_check_on       date,
    note                text CHECK (note IS NULL OR length(note) <= 500),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          text NOT NULL,
    PRIMARY KEY (student_key, screening_event_id)
);
CREATE INDEX cases_school ON followup.cases (school_id, state);

-- Every step, append-only, for the record of who did what when.
CREATE TABLE followup.steps (
    id                  bigserial PRIMARY KEY,
    student_key         text NOT NULL,
    screening_event_id  uuid NOT NULL,
    school_id           text NOT NULL,
    state               text NOT NULL,
    next_check_on       date,
    note                text,
    at                  timestamptz NOT NULL DEFAULT now(),
    actor               text NOT NULL
);
CREATE INDEX steps_case ON followup.steps (student_key, screening_event_id, id);

DO $grants$
DECLARE
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA followup TO %I', api);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON followup.cases TO %I', api);
    EXECUTE format('GRANT SELECT, INSERT ON followup.steps TO %I', api);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA followup TO %I', api);
    ALTER TABLE followup.cases ENABLE ROW LEVEL SECURITY;
    ALTER TABLE followup.steps ENABLE ROW LEVEL SECURITY;
    -- School doctors (and leads, admins) of the student's school, as for growth and vision rows.
    EXECUTE format($p$CREATE POLICY api_all ON followup.cases TO %I USING (
        (SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))
        WITH CHECK ((SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))$p$, api);
    EXECUTE format($p$CREATE POLICY api_all ON followup.steps TO %I USING (
        (SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools()))
        WITH CHECK (actor = auth.current_user_id() AND ((SELECT auth.sees_all())
        OR ('school_doctor' IN (SELECT auth.visible_teams()) AND school_id IN (SELECT auth.visible_schools()))
        OR school_id IN (SELECT auth.lead_schools())))$p$, api);
END
$grants$;
