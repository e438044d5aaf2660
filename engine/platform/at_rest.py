"""Sealing the addresses that were stored in plaintext before migration 016.

Migration 016 gave the queue, the suppression list, soft failures and kept mails sealed
columns beside their old plaintext ones; SQL cannot encrypt, so the rows written before it are
sealed here, the first time mamoru starts with its key, and their plaintext is emptied in the
same transaction. Every later start finds nothing to do at once: partial indexes of migration
016 hold only the rows still to seal. New rows never fill the plaintext columns.
"""

from __future__ import annotations

import logging

import asyncpg

from engine.platform.address import mask_addresses
from engine.platform.sealing import MAIL_FROM, RAW_MAIL, RECIPIENT, Sealer

log = logging.getLogger(__name__)

_BATCH = 2000
# Kept mails are up to 256 KB (bounces) or the inbound size limit: fewer per statement.
_MAIL_BATCH = 100


async def seal_plaintext_rows(pool: asyncpg.Pool, sealer: Sealer) -> int:
    """Seal every row still holding a plaintext address; returns how many rows changed."""
    total = 0
    async with pool.acquire() as conn:
        total += await _deliveries(conn, sealer)
        total += await _suppressions(conn, sealer)
        total += await _soft_failures(conn, sealer)
        total += await _kept_mails(conn, sealer, "bounces")
        total += await _kept_mails(conn, sealer, "inbound_messages")
    if total:
        log.info("sealed %d rows stored in plaintext before migration 016", total)
    return total


async def _deliveries(conn: asyncpg.Connection, sealer: Sealer) -> int:
    done = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT id, recipient, last_text FROM deliveries WHERE recipient IS NOT NULL "
                "LIMIT $1 FOR UPDATE",
                _BATCH,
            )
            if not rows:
                return done
            await conn.execute(
                "UPDATE deliveries d SET recipient_sealed = u.sealed, recipient_hash = u.hash, "
                "last_text = u.text, recipient = NULL "
                "FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::text[]) "
                "AS u(id, sealed, hash, text) WHERE d.id = u.id",
                [r["id"] for r in rows],
                [sealer.seal(r["recipient"], RECIPIENT) for r in rows],
                [sealer.address_hash(r["recipient"]) for r in rows],
                [_masked(r["last_text"]) for r in rows],
            )
            await conn.execute(
                "UPDATE delivery_attempts SET text = regexp_replace(text, '[^[:space:]<>@]+@', "
                "'…@', 'g') WHERE delivery_id = ANY($1::bigint[]) AND text LIKE '%@%'",
                [r["id"] for r in rows],
            )
            done += len(rows)


async def _suppressions(conn: asyncpg.Connection, sealer: Sealer) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT address FROM suppressions WHERE address IS NOT NULL FOR UPDATE"
        )
        if rows:
            await conn.execute(
                "UPDATE suppressions s SET address_sealed = u.sealed, address_key = u.key, "
                "address = NULL FROM unnest($1::text[], $2::bytea[], $3::bytea[]) "
                "AS u(address, sealed, key) WHERE s.address = u.address",
                [r["address"] for r in rows],
                [sealer.seal(r["address"], RECIPIENT) for r in rows],
                [sealer.folded_hash(r["address"]) for r in rows],
            )
    return len(rows)


async def _soft_failures(conn: asyncpg.Connection, sealer: Sealer) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT DISTINCT address FROM soft_failures WHERE address IS NOT NULL"
        )
        if rows:
            await conn.execute(
                "UPDATE soft_failures s SET address_key = u.key, address = NULL "
                "FROM unnest($1::text[], $2::bytea[]) AS u(address, key) "
                "WHERE s.address = u.address",
                [r["address"] for r in rows],
                [sealer.folded_hash(r["address"]) for r in rows],
            )
    return len(rows)


async def _kept_mails(conn: asyncpg.Connection, sealer: Sealer, table: str) -> int:
    # `table` is one of two constants named by this module, never input.
    recipient = ", recipient, diagnostic" if table == "bounces" else ""
    done = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, mail_from, raw{recipient} FROM {table} "
                "WHERE raw IS NOT NULL LIMIT $1 FOR UPDATE",
                _MAIL_BATCH,
            )
            if not rows:
                return done
            await conn.execute(
                f"UPDATE {table} t SET mail_from_sealed = u.sender, raw_sealed = u.raw, "
                "mail_from = NULL, raw = NULL FROM unnest($1::bigint[], $2::bytea[], "
                "$3::bytea[]) AS u(id, sender, raw) WHERE t.id = u.id",
                [r["id"] for r in rows],
                [sealer.seal(r["mail_from"] or "", MAIL_FROM) for r in rows],
                [sealer.seal_bytes(bytes(r["raw"]), RAW_MAIL) for r in rows],
            )
            if recipient:
                await conn.execute(
                    "UPDATE bounces b SET recipient_sealed = u.sealed, recipient = NULL, "
                    "diagnostic = u.diagnostic FROM unnest($1::bigint[], $2::bytea[], "
                    "$3::text[]) AS u(id, sealed, diagnostic) WHERE b.id = u.id",
                    [r["id"] for r in rows],
                    [None if r["recipient"] is None else sealer.seal(r["recipient"], RECIPIENT)
                     for r in rows],
                    [None if r["diagnostic"] is None else mask_addresses(r["diagnostic"])
                     for r in rows],
                )
            done += len(rows)


def _masked(text: str | None) -> str | None:
    return mask_addresses(text) if text and "@" in text else text
