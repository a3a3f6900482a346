-- `schoolhealth student KEY` is an operator's tool: it connects as the owner role, without an API
-- token, and its read of psychological results must still be audited. The reader stamp accepts
-- the operator's `cli:<login>` name only on the owner's own connections (which own these tables
-- and could do anything anyway); every other connection still needs an authenticated API user.
DO $operator$
BEGIN
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION audit.stamp_reader() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := auth.current_user_id();
BEGIN
    IF who IS NULL AND session_user = %L AND NEW.user_id ~ '^cli:[A-Za-z0-9._-]{1,64}$' THEN
        who := NEW.user_id;
    END IF;
    IF who IS NULL THEN
        RAISE EXCEPTION 'an audit record needs an authenticated user' USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.user_id := who;
    NEW.read_at := clock_timestamp();
    RETURN NEW;
END
$$$f$, current_setting('schoolhealth.owner_role'));
END
$operator$;
