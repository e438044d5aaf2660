-- Cancelling a broadcast, and recipients compared without case (issue 8).
--
-- A cancelled broadcast keeps its rows: its unsent deliveries become failed with reason
-- 'cancelled', and cancelled_at tells every later statement (release, claim) that nothing of
-- it may be sent again.
ALTER TABLE broadcasts ADD COLUMN cancelled_at timestamptz;

-- Carriers treat the local part of an address without case, so Dup@docomo.ne.jp and
-- dup@docomo.ne.jp are one guardian: the suppression list holds one entry per lower-cased
-- address (the spelling of the first entry is kept for display). Entries that collide now are
-- merged, the oldest one staying.
DELETE FROM suppressions s
USING suppressions older
WHERE lower(s.address) = lower(older.address)
  AND (older.created_at, older.address) < (s.created_at, s.address);
CREATE UNIQUE INDEX suppressions_address_lower ON suppressions (lower(address));

-- Soft failures count per lower-cased address too.
DELETE FROM soft_failures s
USING soft_failures o
WHERE lower(s.address) = lower(o.address) AND s.delivery_id = o.delivery_id
  AND s.address <> o.address
  -- keep the lower-case row if there is one, else the first spelling
  AND (o.address = lower(o.address) OR (s.address <> lower(s.address) AND o.address < s.address));
UPDATE soft_failures SET address = lower(address) WHERE address <> lower(address);
