-- Writes scoped like reads. A user may submit a record, screening or survey for a student only
-- at the school where the student is enrolled, and only if the user serves that school. The one
-- exception is an explicit transfer by an administrator of a student enrolled elsewhere, which
-- the API records in audit.transfers (append-only, user stamped from the token). The API asks
-- this function inside the request's transaction; it reads enrolment as its owner, so a user
-- learns only "not enrolled at a school you serve", never where the student is.
--
-- Enrolment: the student's current archive status (from health records) when there is one, a
-- student who left being enrolled nowhere; otherwise the roster's school.

CREATE FUNCTION auth.enrolled_school(p_student_key text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN a.student_key IS NOT NULL THEN (CASE WHEN a.status = 'active' THEN a.school_id END)
                ELSE r.school_id END
    FROM (SELECT p_student_key AS student_key) k
    LEFT JOIN archive.students a ON a.student_key = k.student_key
    LEFT JOIN roster.students r ON r.student_key = k.student_key
$$;

-- NULL when the current user may submit this; otherwise the reason code.
CREATE FUNCTION auth.write_refusal(p_student_key text, p_school_id text, p_kind text, p_action text)
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    enrolled text := auth.enrolled_school(p_student_key);
    admin boolean := auth.sees_all();
BEGIN
    IF auth.current_user_id() IS NULL THEN
        RETURN 'unauthenticated';
    END IF;
    IF auth.current_role_name() NOT IN ('school_doctor', 'device', 'admin') THEN
        RETURN 'role_may_not_submit';
    END IF;
    IF NOT admin AND p_school_id NOT IN (SELECT auth.visible_schools()) THEN
        RETURN 'not_your_school';
    END IF;
    IF enrolled IS NULL THEN
        -- A pupil not enrolled anywhere (yet) can only be registered.
        RETURN CASE WHEN p_kind = 'records' AND p_action = 'register' THEN NULL ELSE 'not_enrolled' END;
    END IF;
    IF enrolled = p_school_id THEN
        RETURN NULL;
    END IF;
    IF admin AND p_kind = 'records' AND p_action = 'transfer' THEN
        RETURN NULL;  -- the explicit, audited transfer
    END IF;
    RETURN 'enrolled_elsewhere';
END
$$;

CREATE TABLE audit.transfers (
    id                 bigserial PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id            text NOT NULL,
    student_key        text NOT NULL,
    enrolled_school_id text,
    school_id          text NOT NULL,
    to_school_id       text,
    event_id           uuid NOT NULL
);
CREATE INDEX transfers_student ON audit.transfers (student_key, at);

CREATE FUNCTION audit.stamp_transfer() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := auth.current_user_id();
BEGIN
    IF who IS NULL THEN
        RAISE EXCEPTION 'an audit record needs an authenticated user' USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.user_id := who;
    NEW.at := clock_timestamp();
    NEW.enrolled_school_id := auth.enrolled_school(NEW.student_key);
    RETURN NEW;
END
$$;
CREATE TRIGGER transfers_stamp BEFORE INSERT ON audit.transfers
    FOR EACH ROW EXECUTE FUNCTION audit.stamp_transfer();
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON audit.transfers
    FOR EACH ROW EXECUTE FUNCTION alerts.refuse_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON audit.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION alerts.refuse_change();

REVOKE ALL ON FUNCTION auth.enrolled_school(text), auth.write_refusal(text, text, text, text) FROM PUBLIC;
DO $grants$
DECLARE
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION auth.write_refusal(text, text, text, text) TO %I', api);
    EXECUTE format('GRANT INSERT ON audit.transfers TO %I', api);
    EXECUTE format('GRANT USAGE ON SEQUENCE audit.transfers_id_seq TO %I', api);
    ALTER TABLE audit.transfers ENABLE ROW LEVEL SECURITY;
    EXECUTE format('CREATE POLICY api_insert ON audit.transfers FOR INSERT TO %I WITH CHECK (true)', api);
END
$grants$;
