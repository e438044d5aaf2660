-- Addresses at rest outside the people tables (issue 10): the queue's recipients, the
-- suppression list, soft failures and kept bounce and inbound mails are stored sealed
-- (AES-GCM, engine/sealing.py) with a keyed hash for look-ups, so a dump of the database files
-- reveals no address.
--
-- The plaintext columns stay, nullable, only so that rows stored before this migration can be
-- sealed: SQL cannot encrypt, so engine/at_rest.py seals them (and empties the plaintext) the
-- first time mamoru starts with its key. New rows never fill them.

-- Deliveries: the recipient sealed; recipient_hash is the contact's address hash
-- (Sealer.address_hash), unique per broadcast, so fan-out de-duplicates and two-way features
-- join deliveries to contacts without opening anything.
ALTER TABLE deliveries ADD COLUMN recipient_sealed bytea, ADD COLUMN recipient_hash bytea;
ALTER TABLE deliveries ALTER COLUMN recipient DROP NOT NULL;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_broadcast_id_recipient_key;
CREATE UNIQUE INDEX deliveries_by_recipient ON deliveries (broadcast_id, recipient_hash);

-- Suppressions: one entry per address without case, keyed by Sealer.folded_hash (the address
-- hash of the lower-case spelling).
ALTER TABLE suppressions ADD COLUMN address_sealed bytea, ADD COLUMN address_key bytea;
ALTER TABLE suppressions DROP CONSTRAINT suppressions_pkey;
ALTER TABLE suppressions ALTER COLUMN address DROP NOT NULL;
DROP INDEX suppressions_address_lower;
CREATE UNIQUE INDEX suppressions_by_key ON suppressions (address_key);

-- Soft failures need no address at all, only its key.
ALTER TABLE soft_failures ADD COLUMN address_key bytea;
ALTER TABLE soft_failures DROP CONSTRAINT soft_failures_pkey;
ALTER TABLE soft_failures ALTER COLUMN address DROP NOT NULL;
CREATE UNIQUE INDEX soft_failures_by_key ON soft_failures (address_key, delivery_id);

-- Kept mails: the envelope sender, the recipient a report names, and the mail itself.
ALTER TABLE bounces ADD COLUMN mail_from_sealed bytea, ADD COLUMN recipient_sealed bytea,
    ADD COLUMN raw_sealed bytea;
ALTER TABLE bounces ALTER COLUMN mail_from DROP NOT NULL, ALTER COLUMN raw DROP NOT NULL;
ALTER TABLE inbound_messages ADD COLUMN mail_from_sealed bytea, ADD COLUMN raw_sealed bytea;
ALTER TABLE inbound_messages ALTER COLUMN mail_from DROP NOT NULL,
    ALTER COLUMN raw DROP NOT NULL;

-- Only the rows still to seal (none, once mamoru has started): every start finds them at once.
CREATE INDEX deliveries_unsealed ON deliveries (id) WHERE recipient IS NOT NULL;
CREATE INDEX bounces_unsealed ON bounces (id) WHERE raw IS NOT NULL;
CREATE INDEX inbound_messages_unsealed ON inbound_messages (id) WHERE raw IS NOT NULL;

-- Contacts imported without confirmation get one invitation (engine/people/invitations.py).
ALTER TABLE contacts ADD COLUMN invited_at timestamptz;
