-- A fan-out of 100,000 under 2 s (issue 25): deliveries.broadcast_id is checked once per
-- statement instead of once per row.
--
-- The foreign key deliveries.broadcast_id -> broadcasts (migration 001) made PostgreSQL queue
-- one RI trigger event per inserted row and run one lookup of the broadcast (SELECT ... FOR KEY
-- SHARE) for each: 0.2-0.35 s of the server's CPU in the COPY of a 100,000-recipient fan-out
-- whose rows all name the same broadcast, 0.3 s of its wall time (bench/fk_fanout.py; the
-- per-statement check costs about what no check costs). The same integrity
-- is kept by three triggers, refusing with the foreign key's error code (23503) and wording:
--
-- * deliveries_broadcast_exists: after every INSERT or COPY statement into deliveries, one
--   query over the statement's inserted rows (the transition table; COPY fills it too) locks
--   the distinct broadcasts they name FOR KEY SHARE, as the foreign key's per-row lookup did,
--   and refuses the statement when one of them is missing.
-- * deliveries_broadcast_fixed: a delivery never moves to another broadcast (nothing updates
--   broadcast_id); an UPDATE that changes it is refused. An UPDATE that does not name the
--   column does not fire it, so the runners' updates cost nothing more.
-- * broadcasts_keep_deliveries: deleting a broadcast that still has deliveries is refused
--   (the foreign key's NO ACTION), one query per DELETE statement over the deleted rows, by the
--   index deliveries_by_recipient (broadcast_id, recipient_hash). Retention
--   (engine/queue/retention.py) and disposal (engine/staff/disposal.py) delete the deliveries
--   first, as they had to with the foreign key.
--
-- Concurrency. The one writer of deliveries, engine/queue/enqueue.py's store_broadcast (every
-- fan-out, resend, reminder, answer and notice goes through it), inserts the broadcast row and
-- its deliveries in one transaction: the row is invisible to every other transaction until the
-- commit, so nothing can delete it in between, and the statement check alone would do. The
-- KEY SHARE lock keeps the foreign key's guarantee for any other writer too (an operator's SQL,
-- a tool): an insert and a concurrent delete of the same broadcast serialise on the broadcast
-- row exactly as they did. Whichever comes second waits for the other's commit; an insert then
-- finds the row gone and is refused, a delete (READ COMMITTED, every statement of the trigger
-- function taking a new snapshot) then sees the inserted deliveries and is refused. mamoru
-- deletes broadcasts only at READ COMMITTED (the two REPEATABLE READ transactions are the audit
-- log's and touch neither table). For a fresh broadcast the lock is one row's, once.

ALTER TABLE deliveries DROP CONSTRAINT deliveries_broadcast_id_fkey;

CREATE FUNCTION deliveries_broadcast_exists() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    locked integer;
    missing bigint;
BEGIN
    SELECT array_agg(DISTINCT broadcast_id) INTO ids FROM inserted;
    SELECT count(*) INTO locked FROM (
        SELECT 1 FROM broadcasts WHERE id = ANY (ids) FOR KEY SHARE
    ) l;
    IF locked < coalesce(cardinality(ids), 0) THEN
        SELECT min(x) INTO missing FROM unnest(ids) x
        WHERE NOT EXISTS (SELECT 1 FROM broadcasts b WHERE b.id = x);
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = 'insert or update on table "deliveries" violates the check '
                      'deliveries_broadcast_exists',
            DETAIL = format('Key (broadcast_id)=(%s) is not present in table "broadcasts".',
                            missing),
            TABLE = 'deliveries';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER deliveries_broadcast_exists
    AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_broadcast_exists();

CREATE FUNCTION deliveries_broadcast_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'foreign_key_violation',
        MESSAGE = 'a delivery''s broadcast_id never changes (deliveries_broadcast_fixed)',
        DETAIL = format('Delivery %s of broadcast %s.', OLD.id, OLD.broadcast_id),
        TABLE = 'deliveries';
END
$$;

CREATE TRIGGER deliveries_broadcast_fixed
    BEFORE UPDATE OF broadcast_id ON deliveries
    FOR EACH ROW WHEN (NEW.broadcast_id IS DISTINCT FROM OLD.broadcast_id)
    EXECUTE FUNCTION deliveries_broadcast_fixed();

CREATE FUNCTION broadcasts_keep_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kept bigint;
BEGIN
    SELECT g.id INTO kept FROM gone g
    WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = g.id)
    LIMIT 1;
    IF kept IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = 'update or delete on table "broadcasts" violates the check '
                      'broadcasts_keep_deliveries',
            DETAIL = format('Key (id)=(%s) is still referenced from table "deliveries".', kept),
            TABLE = 'broadcasts';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER broadcasts_keep_deliveries
    AFTER DELETE ON broadcasts
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION broadcasts_keep_deliveries();

-- The key itself (an identity, never set by mamoru): changed only while no delivery names it,
-- as the foreign key allowed.
CREATE FUNCTION broadcasts_id_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = OLD.id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = 'update or delete on table "broadcasts" violates the check '
                      'broadcasts_id_kept',
            DETAIL = format('Key (id)=(%s) is still referenced from table "deliveries".',
                            OLD.id),
            TABLE = 'broadcasts';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER broadcasts_id_kept
    BEFORE UPDATE OF id ON broadcasts
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION broadcasts_id_kept();
