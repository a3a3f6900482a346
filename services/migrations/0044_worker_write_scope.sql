-- The worker re-checks write scope (after 0041's check in the API): an event is stored only if
-- its `submitted_by` may write it, by the same rule the API applied, evaluated now for the user
-- the event names; otherwise the worker dead-letters it (`submitter_not_allowed`) instead of
-- storing it or raising its alerts. Defence in depth against a path that skipped the API's check
-- (a bug, a new intake, a message published by hand with the API's or importer's credentials).
--
-- The operator's path: `schoolhealth import` and `fitness import` stamp their events with the
-- operator identities `importer` and `fitness-importer`, which may write for every school (they
-- are run by whoever runs the deployment, with the importer's Kafka credentials, and a roster
-- import is how pupils become enrolled at all). No user may take those names.
-- Any other `submitted_by` must be a user: an id that names no user is refused.

ALTER TABLE auth.users ADD CONSTRAINT users_not_an_operator_identity
    CHECK (user_id NOT IN ('importer', 'fitness-importer'));

-- NULL when `p_user_id` may submit this; otherwise the reason code (0041's codes, and
-- 'unknown_submitter'). Unlike auth.write_refusal it names the user instead of reading the
-- request's token: the worker has no token, only the event.
CREATE FUNCTION auth.submission_refusal(p_user_id text, p_student_key text, p_school_id text,
                                        p_kind text, p_action text)
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    user_role text;
    enrolled text;
BEGIN
    IF p_user_id IN ('importer', 'fitness-importer') THEN
        RETURN NULL;
    END IF;
    SELECT u.role INTO user_role FROM auth.users u WHERE u.user_id = p_user_id;
    IF user_role IS NULL THEN
        RETURN 'unknown_submitter';
    END IF;
    IF user_role NOT IN ('school_doctor', 'device', 'admin') THEN
        RETURN 'role_may_not_submit';
    END IF;
    IF user_role <> 'admin' AND NOT EXISTS (
            SELECT 1 FROM auth.user_schools us WHERE us.user_id = p_user_id AND us.school_id = p_school_id) THEN
        RETURN 'not_your_school';
    END IF;
    enrolled := auth.enrolled_school(p_student_key);
    IF enrolled IS NULL THEN
        RETURN CASE WHEN p_kind = 'records' AND p_action = 'register' THEN NULL ELSE 'not_enrolled' END;
    END IF;
    IF enrolled = p_school_id THEN
        RETURN NULL;
    END IF;
    IF user_role = 'admin' AND p_kind = 'records' AND p_action = 'transfer' THEN
        RETURN NULL;
    END IF;
    RETURN 'enrolled_elsewhere';
END
$$;

REVOKE ALL ON FUNCTION auth.submission_refusal(text, text, text, text, text) FROM PUBLIC;
DO $grants$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION auth.submission_refusal(text, text, text, text, text) TO %I',
                   current_setting('schoolhealth.app_role'));
END
$grants$;
