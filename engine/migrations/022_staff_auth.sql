-- Staff accounts that a stolen session or a stranger cannot take over (issue 21).
--
-- Lock-out per account is replaced by back-off per (login, source): wrong passwords from one
-- address never delay the same login from another one, so nobody can lock a colleague out.
-- The rows are kept bounded by engine/staff/backoff.py (quiet rows pruned, a cap per source).
-- The login is the text as typed (lower case, at most 64 characters), also for logins that do
-- not exist, so an unknown login is treated exactly like a wrong password.
CREATE TABLE staff_login_failures (
    login         text        NOT NULL,
    -- The client's IPv4 address or IPv6 /64 network.
    source        text        NOT NULL,
    failures      integer     NOT NULL,
    last_at       timestamptz NOT NULL,
    blocked_until timestamptz,
    PRIMARY KEY (login, source)
);
CREATE INDEX staff_login_failures_by_last ON staff_login_failures (last_at);
CREATE INDEX staff_login_failures_by_source ON staff_login_failures (source, last_at);

-- The per-account lock-out's columns are no longer used.
ALTER TABLE staff DROP COLUMN failed_logins, DROP COLUMN locked_until;

-- When the password was last set (the optional password age counts from it), the latest
-- sign-in (shown at the next one, so a staff member notices a sign-in that was not theirs).
ALTER TABLE staff
    ADD COLUMN password_changed_at timestamptz,
    ADD COLUMN last_login_at       timestamptz,
    ADD COLUMN last_login_address  text,
    -- Set at sign-in when the password given does not keep the current rule (set before it):
    -- the session may only change the password, like an expired one.
    ADD COLUMN password_change_required boolean NOT NULL DEFAULT false;
UPDATE staff SET password_changed_at = updated_at;
ALTER TABLE staff ALTER COLUMN password_changed_at SET NOT NULL;

-- Sessions end after [staff] idle_timeout without a request (sliding); each remembers the
-- sign-in before it.
ALTER TABLE staff_sessions
    ADD COLUMN last_seen_at           timestamptz,
    ADD COLUMN previous_login_at      timestamptz,
    ADD COLUMN previous_login_address text;
UPDATE staff_sessions SET last_seen_at = created_at;
ALTER TABLE staff_sessions ALTER COLUMN last_seen_at SET NOT NULL;
