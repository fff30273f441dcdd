-- The append is one statement (see Append in append.go): it locks the
-- organizations' rows, advances next_seq and inserts the events and their
-- targets, numbered from the start it got, in one round trip. An
-- organization that is missing (the database is not the one the replica
-- knew) or whose log the integrator refuses must abort that statement,
-- not let it commit the other organizations' events: trail_append_failed
-- raises the error that says which, for the append to report.
--
-- SQLSTATE TRL01: the organization (HINT) does not exist.
-- SQLSTATE TRL02: the log of the organization (HINT) is refused, for the
-- reason in DETAIL (ledger.RefusalStorage).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION trail_append_failed(org text, refused text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF refused IS NULL THEN
        RAISE EXCEPTION 'organization % does not exist', org USING ERRCODE = 'TRL01', HINT = org;
    END IF;
    RAISE EXCEPTION 'the log of organization % is refused: %', org, refused
        USING ERRCODE = 'TRL02', HINT = org, DETAIL = refused;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION trail_append_failed(text, text);
