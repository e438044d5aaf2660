-- `mamoru serve` writes one log line when a broadcast starts (its send time has come) and one
-- when it has finished (no delivery left to send). These columns say the line was written:
-- of several serve hosts on one database, the one whose UPDATE sets them writes it, once.
ALTER TABLE broadcasts
    ADD COLUMN logged_start_at  timestamptz,
    ADD COLUMN logged_finish_at timestamptz;

-- Broadcasts made before this release are not announced after an upgrade.
UPDATE broadcasts SET logged_start_at = created_at, logged_finish_at = created_at;

-- Only the few broadcasts not yet announced as finished are looked at.
CREATE INDEX broadcasts_not_logged ON broadcasts (id) WHERE logged_finish_at IS NULL;
