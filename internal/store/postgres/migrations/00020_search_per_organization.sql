-- Free-text words indexed per organization (see lexemePrefix in text.go):
-- every lexeme of events.search begins with its organization's prefix, the
-- first 3 characters of the base64 of the MD5 of its id, and the lexeme naming the
-- organization ('org:' and its id) is gone. A word's entry in the GIN index
-- then lists one organization's events, so that a search's lookup costs
-- that organization's matches, where ANDing the organization's lexeme made
-- it walk an entry listing every event of the organization. Searches still
-- keep to the organization's rows by organization_id.
--
-- The column is rewritten with the table (ALTER COLUMN ... TYPE ... USING):
-- one pass that also rebuilds every index of events, compact, under an
-- exclusive lock of the table for the whole migration. The GIN index is
-- dropped first and built once, after. Measured on 1,000,000 events: see
-- docs/PERFORMANCE.md ("PostgreSQL: free-text words per organization").
-- Words longer than 2,043 bytes (PostgreSQL's limit of 2,046 less the
-- prefix) are no longer indexed, as the append no longer indexes them.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION trail_search_prefix(org text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT left(encode(substring(decode(md5(org), 'hex') FROM 1 FOR 3), 'base64'), 3)
$$;
-- +goose StatementEnd

-- Lexemes are rewritten in the vector's text form, where each begins with
-- a quote after a space (the words of Trail's vectors hold no space),
-- rather than unnested and aggregated: several times cheaper per row.
-- +goose StatementBegin
CREATE FUNCTION trail_search_per_organization(org text, v tsvector) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t text := ts_delete(v, 'org:' || org)::text;
BEGIN
    IF octet_length(t) > 2043 THEN -- it may hold a word too long to prefix
        t := ts_delete(v, ARRAY(SELECT u.lexeme FROM unnest(v) u
            WHERE octet_length(u.lexeme) > 2043 OR u.lexeme = 'org:' || org))::text;
    END IF;
    RETURN replace(' ' || t, ' ''', ' ''' || trail_search_prefix(org))::tsvector;
END
$$;
-- +goose StatementEnd

SET LOCAL maintenance_work_mem = '256MB';
DROP INDEX events_search;
ALTER TABLE events ALTER COLUMN search TYPE tsvector USING trail_search_per_organization(organization_id, search);
CREATE INDEX events_search ON events USING gin (search);
DROP FUNCTION trail_search_per_organization(text, tsvector);
-- A column's new type drops its statistics: without them the planner
-- guesses how common a word is.
ANALYZE events;

-- +goose Down
-- +goose StatementBegin
CREATE FUNCTION trail_search_per_database(org text, v tsvector) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN replace(' ' || v::text, ' ''' || trail_search_prefix(org), ' ''')::tsvector
        || array_to_tsvector(ARRAY['org:' || org]);
END
$$;
-- +goose StatementEnd

SET LOCAL maintenance_work_mem = '256MB';
DROP INDEX events_search;
ALTER TABLE events ALTER COLUMN search TYPE tsvector USING trail_search_per_database(organization_id, search);
CREATE INDEX events_search ON events USING gin (search);
DROP FUNCTION trail_search_per_database(text, tsvector);
ANALYZE events;
DROP FUNCTION trail_search_prefix(text);
