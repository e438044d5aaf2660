-- A staff member's broadcast may carry an idempotency key too: the screens' confirmation
-- form holds one, so a second click on 「送信する」 (or the browser re-posting the form) finds
-- the first broadcast instead of sending it again to every family (engine/staff/sending.py).
ALTER TABLE broadcast_owners DROP CONSTRAINT IF EXISTS broadcast_owners_check;
ALTER TABLE broadcast_owners ADD CONSTRAINT broadcast_owners_idempotency_owner
    CHECK (idempotency_key IS NULL OR api_key_id IS NOT NULL OR staff_id IS NOT NULL);
CREATE UNIQUE INDEX broadcast_owners_staff_idempotency
    ON broadcast_owners (staff_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND staff_id IS NOT NULL;
