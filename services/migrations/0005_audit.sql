-- Every read of a student's psychological data through the API, append-only. The API role may
-- only INSERT; the user id is taken from the request's token by a trigger, not from the API;
-- no role but the owner may UPDATE, DELETE or TRUNCATE, and a trigger refuses even the owner.

CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE audit.psych_reads (
    id           bigserial PRIMARY KEY,
    read_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id      text NOT NULL,
    student_key  text NOT NULL,
    school_id    text NOT NULL,
    alert_id     uuid,
    what         text NOT NULL
);
CREATE INDEX psych_reads_student ON audit.psych_reads (student_key, read_at);
CREATE INDEX psych_reads_user ON audit.psych_reads (user_id, read_at);

CREATE FUNCTION audit.stamp_reader() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := auth.current_user_id();
BEGIN
    IF who IS NULL THEN
        RAISE EXCEPTION 'an audit record needs an authenticated user' USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.user_id := who;
    NEW.read_at := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER psych_reads_reader BEFORE INSERT ON audit.psych_reads
    FOR EACH ROW EXECUTE FUNCTION audit.stamp_reader();
CREATE TRIGGER psych_reads_append_only BEFORE UPDATE OR DELETE ON audit.psych_reads
    FOR EACH ROW EXECUTE FUNCTION alerts.refuse_change();
CREATE TRIGGER psych_reads_no_truncate BEFORE TRUNCATE ON audit.psych_reads
    FOR EACH STATEMENT EXECUTE FUNCTION alerts.refuse_change();
