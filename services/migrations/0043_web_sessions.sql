-- Web sessions apart from API tokens, and failed sign-ins recorded per source.
-- Signing in with an API token opens a web session: a new random token of kind 'web_session'
-- that expires (8 hours) and is revoked server-side at sign-out; the cookie carries it, never the
-- API token. Row-level security resolves either kind the same way (auth.current_user_id()).
-- New API tokens expire too (services.users sets expires_at). Failed sign-ins are kept per
-- source address so the sign-in page can slow a source down.

ALTER TABLE auth.tokens ADD COLUMN kind text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'web_session'));

CREATE TABLE auth.sign_in_failures (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    source  text NOT NULL
);
CREATE INDEX sign_in_failures_source ON auth.sign_in_failures (source, at);

CREATE FUNCTION auth.open_web_session(p_session_sha256 text, p_lifetime interval) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := auth.current_user_id();
BEGIN
    IF who IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO auth.tokens (token_sha256, user_id, expires_at, kind)
    VALUES (p_session_sha256, who, now() + p_lifetime, 'web_session');
    RETURN true;
END
$$;

-- Revokes the current request's token if it is a web session (an API token is never revoked here).
CREATE FUNCTION auth.close_web_session() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE auth.tokens SET revoked = true
    WHERE token_sha256 = current_setting('schoolhealth.token_sha256', true) AND kind = 'web_session'
$$;

-- Records one failed sign-in from `p_source`; the failures from it in the last 15 minutes.
CREATE FUNCTION auth.sign_in_failed(p_source text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO auth.sign_in_failures (source) VALUES (left(p_source, 64));
    RETURN (SELECT count(*) FROM auth.sign_in_failures
            WHERE source = left(p_source, 64) AND at > clock_timestamp() - interval '15 minutes');
END
$$;

CREATE FUNCTION auth.recent_sign_in_failures(p_source text) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*)::integer FROM auth.sign_in_failures
    WHERE source = left(p_source, 64) AND at > clock_timestamp() - interval '15 minutes'
$$;

REVOKE ALL ON FUNCTION auth.open_web_session(text, interval), auth.close_web_session(),
    auth.sign_in_failed(text), auth.recent_sign_in_failures(text) FROM PUBLIC;
DO $grants$
DECLARE
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION auth.open_web_session(text, interval), auth.close_web_session(),'
                   ' auth.sign_in_failed(text), auth.recent_sign_in_failures(text) TO %I', api);
END
$grants$;
