-- A year of history (issue 25): finished broadcasts leave after [queue] keep
-- (engine/queue/retention.py), and nothing that runs often reads finished rows.
--
-- What hangs off a delivery or a broadcast goes with it. Most tables already say so
-- (ON DELETE CASCADE); the owner row of a staff broadcast did not, and a resend's pointer to
-- its original becomes empty when the original leaves before it.
ALTER TABLE broadcast_owners DROP CONSTRAINT broadcast_owners_broadcast_id_fkey,
    ADD CONSTRAINT broadcast_owners_broadcast_id_fkey
        FOREIGN KEY (broadcast_id) REFERENCES broadcasts (id) ON DELETE CASCADE;
ALTER TABLE broadcast_owners DROP CONSTRAINT broadcast_owners_resend_of_fkey,
    ADD CONSTRAINT broadcast_owners_resend_of_fkey
        FOREIGN KEY (resend_of) REFERENCES broadcasts (id) ON DELETE SET NULL;

-- A cascade from a deleted row looks its children up by the referencing column: without an
-- index leading with it, each deleted delivery would read the whole child table.
CREATE INDEX inbound_replies_by_delivery ON inbound_replies (delivery_id);
CREATE INDEX attachment_downloads_by_delivery ON attachment_downloads (delivery_id);
CREATE INDEX reminder_deliveries_by_original ON reminder_deliveries (original_delivery_id);
CREATE INDEX delivery_reminders_by_broadcast ON delivery_reminders (broadcast_id);
CREATE INDEX broadcast_owners_by_resend ON broadcast_owners (resend_of) WHERE resend_of IS NOT NULL;

-- Live rows per broadcast (a few thousand at most, whatever the history): which broadcasts
-- still have mail to send, which senders' domains are waiting, and whether a broadcast may
-- leave at all. deliveries_due (migration 001) and deliveries_expiry (009) are the claim's and
-- the expiry's live-only indexes.
CREATE INDEX deliveries_live_by_broadcast ON deliveries (broadcast_id)
    WHERE state IN ('queued', 'deferred', 'sending');
