-- A portal link may name the user of the application it was generated for
-- (WorkOS's external_user_id): that user is the actor of what the session
-- does, and POST /portal/revoke_link ends that user's links and sessions
-- without touching the organization's other admins.

-- +goose Up
ALTER TABLE portal_links ADD COLUMN external_user_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE portal_links DROP COLUMN external_user_id;
