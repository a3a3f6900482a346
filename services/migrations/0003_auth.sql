-- Users of the API, their hashed bearer tokens and the schools or counties they serve.
-- The API connects as the app role and switches, per request and per transaction, to a NOLOGIN
-- role (the app role's name + '_api') with `SET LOCAL ROLE`; it then sets
-- `schoolhealth.token_sha256` to the hash of the presented token. Every row-level policy reads
-- the user through the SECURITY DEFINER functions below, so a request can only act as the user
-- whose token it holds: knowing a user id is not enough.

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    user_id     text PRIMARY KEY CHECK (user_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    role        text NOT NULL CHECK (role IN ('counsellor', 'school_doctor', 'county_officer',
                                              'health_office', 'admin', 'device')),
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens carry 256 random bits, so an unsalted SHA-256 is enough to make a stolen table useless.
CREATE TABLE auth.tokens (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    user_id       text NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked       boolean NOT NULL DEFAULT false
);
CREATE INDEX tokens_user ON auth.tokens (user_id);

-- A user serves schools directly (counsellors, school doctors, devices; `is_lead` marks the
-- school's lead, who receives escalated alerts) or whole counties (county officers).
CREATE TABLE auth.user_schools (
    user_id    text NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    school_id  text NOT NULL,
    is_lead    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, school_id)
);
CREATE INDEX user_schools_school ON auth.user_schools (school_id);
CREATE TABLE auth.user_counties (
    user_id    text NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    county_id  text NOT NULL,
    PRIMARY KEY (user_id, county_id)
);

DO $roles$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    -- Roles are cluster-wide and test databases migrate concurrently: tolerate a race.
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', api);
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
    BEGIN
        EXECUTE format('GRANT %I TO %I', api, app);
    EXCEPTION WHEN duplicate_object OR unique_violation OR internal_error THEN
        NULL;
    END;
    EXECUTE format('GRANT USAGE ON SCHEMA auth TO %I, %I', api, app);
END
$roles$;

CREATE FUNCTION auth.current_user_id() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.user_id FROM auth.tokens t JOIN auth.users u ON u.user_id = t.user_id
    WHERE t.token_sha256 = current_setting('schoolhealth.token_sha256', true)
      AND NOT t.revoked AND NOT u.disabled AND (t.expires_at IS NULL OR t.expires_at > now())
$$;

CREATE FUNCTION auth.current_role_name() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.role FROM auth.users u WHERE u.user_id = auth.current_user_id()
$$;

CREATE FUNCTION auth.sees_all() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(auth.current_role_name() = 'admin', false)
$$;

-- Schools whose individual records the current user may see (the health office: none).
CREATE FUNCTION auth.visible_schools() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT us.school_id FROM auth.user_schools us
    WHERE us.user_id = auth.current_user_id()
      AND auth.current_role_name() IN ('counsellor', 'school_doctor', 'county_officer', 'admin', 'device')
    UNION
    SELECT s.school_id FROM archive.schools s JOIN auth.user_counties uc ON uc.county_id = s.county_id
    WHERE uc.user_id = auth.current_user_id() AND auth.current_role_name() IN ('county_officer', 'admin')
$$;

CREATE FUNCTION auth.lead_schools() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT us.school_id FROM auth.user_schools us
    WHERE us.user_id = auth.current_user_id() AND us.is_lead
      AND auth.current_role_name() IN ('counsellor', 'school_doctor')
$$;

-- Which team's alerts and which kinds of record the current user's role may see.
CREATE FUNCTION auth.visible_teams() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT team FROM (VALUES ('counselling', 'counsellor'), ('school_doctor', 'school_doctor'),
                             ('counselling', 'county_officer'), ('school_doctor', 'county_officer'),
                             ('counselling', 'admin'), ('school_doctor', 'admin')) AS t (team, role)
    WHERE role = auth.current_role_name()
$$;

-- Whether a user (e.g. a reassignment's target) serves a school with a role that acts on `team`.
CREATE FUNCTION auth.user_serves(target_user text, target_school text, target_team text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM auth.users u
        WHERE u.user_id = target_user AND NOT u.disabled
          AND (u.role = CASE target_team WHEN 'counselling' THEN 'counsellor' ELSE 'school_doctor' END
               OR u.role = 'county_officer')
          AND (EXISTS (SELECT 1 FROM auth.user_schools us WHERE us.user_id = u.user_id AND us.school_id = target_school)
               OR EXISTS (SELECT 1 FROM auth.user_counties uc JOIN archive.schools s ON s.county_id = uc.county_id
                          WHERE uc.user_id = u.user_id AND s.school_id = target_school)))
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth FROM PUBLIC;
DO $grants$
DECLARE
    app text := current_setting('schoolhealth.app_role');
    api text := current_setting('schoolhealth.app_role') || '_api';
BEGIN
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO %I, %I', api, app);
END
$grants$;
