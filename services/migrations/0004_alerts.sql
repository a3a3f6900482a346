-- The alert queue. One row per alert; at most one open alert per student and concern (a repeat
-- screening updates it). Transitions are the append-only history: who did what, when.
-- `applied_events` makes the consumer idempotent on the alert event id.

CREATE SCHEMA IF NOT EXISTS alerts;

CREATE TABLE alerts.alerts (
    alert_id          uuid PRIMARY KEY,
    student_key       text NOT NULL CHECK (student_key ~ '^[0-9a-f]{64}$'),
    school_id         text NOT NULL,
    county_id         text,
    concern           text NOT NULL,
    team              text NOT NULL CHECK (team IN ('counselling', 'school_doctor')),
    priority          text NOT NULL CHECK (priority IN ('urgent', 'high', 'medium', 'low')),
    priority_rank     smallint GENERATED ALWAYS AS (
                          CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END
                      ) STORED,
    rule_id           text NOT NULL,
    rule_version      integer NOT NULL,
    state             text NOT NULL CHECK (state IN ('open', 'acknowledged', 'in_progress', 'resolved', 'referred')),
    escalation_level  smallint NOT NULL DEFAULT 0 CHECK (escalation_level BETWEEN 0 AND 2),
    opened_at         timestamptz NOT NULL,
    -- The acknowledgement deadline of the priority; it never moves later (only a priority rise
    -- moves it earlier). `escalate_at` is when the next escalation is due.
    ack_deadline      timestamptz NOT NULL,
    escalate_at       timestamptz NOT NULL,
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    assigned_to       text,
    closed_at         timestamptz,
    outcome           text,
    referred_to       text,
    occurrences       integer NOT NULL DEFAULT 1,
    first_event_id    uuid NOT NULL,
    last_event_id     uuid NOT NULL,
    observed_on       date NOT NULL,
    submitted_at      timestamptz NOT NULL,
    evidence          jsonb NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL,
    CHECK ((state = 'resolved') = (outcome IS NOT NULL)),
    CHECK ((state = 'referred') = (referred_to IS NOT NULL))
);
CREATE UNIQUE INDEX alerts_one_open_per_concern ON alerts.alerts (student_key, concern)
    WHERE state IN ('open', 'acknowledged', 'in_progress');
CREATE INDEX alerts_queue ON alerts.alerts (school_id, team, priority_rank, ack_deadline)
    WHERE state IN ('open', 'acknowledged', 'in_progress');
CREATE INDEX alerts_due ON alerts.alerts (escalate_at) WHERE state = 'open' AND escalation_level < 2;
CREATE INDEX alerts_student ON alerts.alerts (student_key);

CREATE TABLE alerts.transitions (
    id          bigserial PRIMARY KEY,
    alert_id    uuid NOT NULL REFERENCES alerts.alerts,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    from_level  smallint NOT NULL,
    to_level    smallint NOT NULL,
    note        text,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX transitions_alert ON alerts.transitions (alert_id, id);

CREATE TABLE alerts.applied_events (
    alert_event_id  uuid PRIMARY KEY,
    alert_id        uuid NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now()
);

-- History cannot be rewritten, by anyone but the owner dropping the trigger in a migration.
CREATE FUNCTION alerts.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER transitions_append_only BEFORE UPDATE OR DELETE ON alerts.transitions
    FOR EACH ROW EXECUTE FUNCTION alerts.refuse_change();
CREATE TRIGGER transitions_no_truncate BEFORE TRUNCATE ON alerts.transitions
    FOR EACH STATEMENT EXECUTE FUNCTION alerts.refuse_change();

-- A person's transition is recorded under the user of the request's token, whatever the API says.
CREATE FUNCTION alerts.stamp_actor() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := auth.current_user_id();
BEGIN
    IF who IS NOT NULL THEN
        NEW.actor := who;
    ELSIF NEW.actor NOT LIKE 'system:%' AND NEW.actor NOT LIKE 'rule:%' THEN
        RAISE EXCEPTION 'a transition needs an authenticated user or a system actor'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER transitions_actor BEFORE INSERT ON alerts.transitions
    FOR EACH ROW EXECUTE FUNCTION alerts.stamp_actor();

-- Live feed: the alert service notifies after each commit that opened or changed alerts.
-- The payload is the alert id only; listeners read the row under their own row-level security.
