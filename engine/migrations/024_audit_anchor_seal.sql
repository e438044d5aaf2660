-- The audit chain's start after a prune is sealed with the chain's key: HMAC-SHA256(key,
-- "anchor" || seq || mac). Without the key nobody can drop the oldest entries and write a new
-- start that verifies (engine/staff/audit.py). Anchors from before have no seal and verify as
-- broken until the next prune writes a sealed one.
ALTER TABLE audit_anchor ADD COLUMN seal bytea;
