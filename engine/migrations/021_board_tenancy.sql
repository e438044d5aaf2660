-- Boards are tenants (issue 21): several boards of education may share one database and never
-- see each other. A school belongs to its board through organisations.parent_id; the rights
-- (engine/staff/rights.py) compare the board of the actor with the board of what it touches.
--
-- 1. A school registered before any board had no parent. When there is exactly one board,
--    such schools are that board's (engine/people/directory.py keeps this true when the first
--    board is registered after its schools).
UPDATE organisations SET parent_id = (SELECT id FROM organisations WHERE kind = 'board')
WHERE kind <> 'board' AND parent_id IS NULL
  AND (SELECT count(*) FROM organisations WHERE kind = 'board') = 1;

-- 2. The staff policy (compulsory TOTP, and whatever sign-in rules join it) is per board. The
--    row without a board stays as the default of boards that have no row of their own yet; every
--    existing board gets a copy of the single row's settings, so nothing changes for it.
ALTER TABLE staff_policy DROP CONSTRAINT staff_policy_pkey;
ALTER TABLE staff_policy
    ADD COLUMN board_id bigint UNIQUE REFERENCES organisations (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX staff_policy_one_default ON staff_policy ((true)) WHERE board_id IS NULL;
INSERT INTO staff_policy (id, board_id, totp_required)
SELECT true, o.id, p.totp_required
FROM organisations o CROSS JOIN staff_policy p
WHERE o.kind = 'board' AND p.board_id IS NULL;
