-- Portal sessions end on the server, not only in the browser: a redeemed
-- link stands for the session it opened, and ended_at is set when its admin
-- signs out or the organization's sessions are revoked. The portal reads
-- the row on every request, so an ended session is refused at once by
-- every replica, even though its signed cookie has not expired.

-- +goose Up
ALTER TABLE portal_links ADD COLUMN ended_at INTEGER; -- unix ms; NULL while the session lasts
CREATE INDEX portal_links_org ON portal_links (organization_id);

-- +goose Down
DROP INDEX portal_links_org;
ALTER TABLE portal_links DROP COLUMN ended_at;
