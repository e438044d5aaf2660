-- The sender's display name (○○小学校) and the address replies go to, per broadcast.
ALTER TABLE broadcasts
    ADD COLUMN sender_name text NOT NULL DEFAULT '',
    ADD COLUMN reply_to    text NOT NULL DEFAULT '';
