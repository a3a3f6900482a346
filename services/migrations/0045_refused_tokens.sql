-- Bad bearer tokens are recorded and slowed per source like failed sign-ins (0043), and the web
-- pages accept only web sessions in their cookie, never an API token.
--
-- auth.sign_in_failures gains the kind of failure: a sign-in on the form, or a request whose
-- bearer token is unknown, revoked or expired. Both count towards one source's slowdown.

ALTER TABLE auth.sign_in_failures ADD COLUMN kind text NOT NULL DEFAULT 'sign_in'
    CHECK (kind IN ('sign_in', 'bearer_token'));

-- Records one refused bearer token from `p_source`; the failures of any kind from it in the last
-- 15 minutes.
CREATE FUNCTION auth.bearer_token_refused(p_source text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO auth.sign_in_failures (source, kind) VALUES (left(p_source, 64), 'bearer_token');
    RETURN (SELECT count(*) FROM auth.sign_in_failures
            WHERE source = left(p_source, 64) AND at > clock_timestamp() - interval '15 minutes');
END
$$;

-- The kind ('api' or 'web_session') of the request's token, if it is a valid one.
CREATE FUNCTION auth.current_token_kind() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.kind FROM auth.tokens t
    WHERE t.token_sha256 = current_setting('schoolhealth.token_sha256', true) AND auth.current_user_id() IS NOT NULL
$$;

REVOKE ALL ON FUNCTION auth.bearer_token_refused(text), auth.current_token_kind() FROM PUBLIC;
DO $grants$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION auth.bearer_token_refused(text), auth.current_token_kind() TO %I',
                   current_setting('schoolhealth.app_role') || '_api');
END
$grants$;
