"""The suppression list: addresses no broadcast is sent to, and the rules that fill it.

This is the one place that knows the ``suppressions`` and ``soft_failures`` tables. Every
operation is one SQL statement, whatever the number of addresses. Addresses are compared
without case (``Dup@docomo.ne.jp`` is ``dup@docomo.ne.jp``: the carriers ignore case in the
local part); an entry keeps the spelling it was first stored with.

What puts an address on the list (``record_verdicts``):

- a **hard** verdict (user unknown, moved, domain that does not exist: ``Verdict.hard``), at once;
- a **complaint** (reason ``feedback``: the guardian reported the mail as spam), at once;
- **final soft failures** of the kinds that belong to the address (``SOFT_COUNTED_CATEGORIES``:
  mailbox full, account suspended, refused by the recipient's filter, and an unknown user or
  domain that was not certain enough to be hard), once ``soft_threshold`` distinct deliveries to
  that address failed so within ``soft_window``.

Only final failures are given to ``record_verdicts``: a deferral the queue will retry is not a
failure yet and must not be recorded. Failures that say nothing about the address itself are
never counted, even when final: congestion, network errors and expiry (``network_expired``),
our own authentication or reputation (``auth_failed``, ``spam_blocked``), message size,
auto-replies and unclassifiable ones. Otherwise one bad day of the school's own server, or a
broken DKIM key, would suppress every guardian. The same delivery counts once, however many
times its failure is reported (the runner's reply and a later DSN for the same mail).
"""

from __future__ import annotations

import builtins
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from engine.bounce.classify.categories import CATEGORIES, OTHER, category_for_reason
from engine.platform.address import normalise_address
from engine.platform.clock import JST, Clock, SystemClock
from engine.platform.config import SuppressionSettings
from engine.platform.csv_io import csv_cell, csv_text, plain_cell
from engine.platform.errors import InputError
from engine.platform.sealing import RECIPIENT, Sealer

SOURCES = ("bounce", "smtp", "complaint", "operator", "import")
FEEDBACK = "feedback"
SOFT_COUNTED_CATEGORIES = ("mailbox_full", "suspended", "refused", "unknown_user", "unknown_domain")
CSV_COLUMNS = ("address", "reason", "category", "source", "created_at", "note")
# Dates shown to operators are Japanese dates.


class FailedVerdict(NamedTuple):
    """One final failure (or complaint) of one delivery, as ``record_verdicts`` takes it."""

    address: str
    delivery_id: int | None
    reason: str
    category: str
    hard: bool


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    category: str
    source: str
    delivery_id: int | None
    note: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "reason": self.reason,
            "category": self.category,
            "source": self.source,
            "delivery_id": self.delivery_id,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }


# Add or replace one address: an operator's entry says why now, so it overwrites (the entry
# keeps the spelling it was first stored with).
ADD_SQL = """
INSERT INTO suppressions
    (address_sealed, address_key, reason, category, source, delivery_id, note, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (address_key) DO UPDATE
SET reason = EXCLUDED.reason, category = EXCLUDED.category, source = EXCLUDED.source,
    delivery_id = EXCLUDED.delivery_id, note = EXCLUDED.note, created_at = EXCLUDED.created_at
"""

REMOVE_SQL = "DELETE FROM suppressions WHERE address_key = $1"

LIST_SQL = """
SELECT address_sealed, reason, category, source, delivery_id, note, created_at
FROM suppressions ORDER BY created_at DESC, address_key LIMIT $1 OFFSET $2
"""

# All rows of a file at once; a later line for the same address wins, as does the file over an
# existing row (importing is how an operator corrects the list).
IMPORT_SQL = """
INSERT INTO suppressions (address_sealed, address_key, reason, category, source, note, created_at)
SELECT DISTINCT ON (key) sealed, key, reason, category, 'import', note, created_at
FROM unnest($1::bytea[], $7::bytea[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
            $6::int[])
     AS i(sealed, key, reason, category, note, created_at, line)
ORDER BY key, line DESC
ON CONFLICT (address_key) DO UPDATE
SET reason = EXCLUDED.reason, category = EXCLUDED.category, source = EXCLUDED.source,
    delivery_id = NULL, note = EXCLUDED.note, created_at = EXCLUDED.created_at
"""

# One statement for a batch of verdicts. Addresses are compared by their folded hash (carriers
# ignore case in the local part): soft failures are kept under that key alone, and a new entry
# keeps the (sealed) spelling of the verdict. CTEs cannot see each other's writes, so the soft count
# is the rows already in the window plus this batch's new (address, delivery) pairs, which the
# UNION de-duplicates against rows already recorded for the same delivery.
RECORD_SQL = """
WITH v AS (
    SELECT sealed, key, delivery_id, reason, category, hard, n
    FROM unnest($1::bytea[], $12::bytea[], $2::bigint[], $3::text[], $4::text[], $5::boolean[],
                $6::int[])
         AS v(sealed, key, delivery_id, reason, category, hard, n)
),
soft AS (
    SELECT * FROM v
    WHERE NOT hard AND reason <> 'feedback' AND delivery_id IS NOT NULL
      AND category = ANY($7::text[])
),
logged AS (
    INSERT INTO soft_failures (address_key, delivery_id, reason, category, failed_at)
    SELECT DISTINCT ON (key, delivery_id) key, delivery_id, reason, category, $8
    FROM soft ORDER BY key, delivery_id, n
    ON CONFLICT DO NOTHING
),
-- Rows older than the window can never count again.
purged AS (
    DELETE FROM soft_failures WHERE failed_at <= $8 - make_interval(secs => $9)
),
counts AS (
    SELECT key, count(*) AS failures FROM (
        SELECT address_key AS key, delivery_id FROM soft_failures
        WHERE address_key IN (SELECT key FROM soft) AND failed_at > $8 - make_interval(secs => $9)
        UNION
        SELECT key, delivery_id FROM soft
    ) AS s
    GROUP BY key
),
chosen AS (
    SELECT DISTINCT ON (v.key) v.sealed, v.key, v.delivery_id, v.reason, v.category,
           CASE WHEN v.reason = 'feedback' THEN 'complaint' ELSE $10 END AS source,
           CASE WHEN v.hard OR v.reason = 'feedback' THEN ''
                ELSE 'soft failures: ' || c.failures END AS note
    FROM v LEFT JOIN counts c ON c.key = v.key
    WHERE v.hard OR v.reason = 'feedback'
       OR (c.failures >= $11 AND v.category = ANY($7::text[]) AND v.delivery_id IS NOT NULL)
    ORDER BY v.key, v.hard DESC, v.reason = 'feedback' DESC, v.n DESC
)
INSERT INTO suppressions
    (address_sealed, address_key, reason, category, source, delivery_id, note, created_at)
SELECT sealed, key, reason, category, source, delivery_id, note, $8 FROM chosen
ON CONFLICT (address_key) DO NOTHING
RETURNING address_sealed
"""


class Suppressions:
    """The suppression list over an asyncpg pool (or one connection inside a transaction)."""

    def __init__(
        self,
        pool: asyncpg.Pool | asyncpg.Connection,
        sealer: Sealer,
        settings: SuppressionSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.pool = pool
        self.sealer = sealer
        self.settings = settings or SuppressionSettings()
        self.clock = clock or SystemClock()

    async def add(
        self,
        address: str,
        reason: str,
        category: str | None = None,
        source: str = "operator",
        delivery_id: int | None = None,
        note: str = "",
    ) -> str:
        """Put one address on the list (replacing its entry); returns the stored address."""
        stored = normalise_address(address)
        if not reason.strip():
            raise InputError("a suppression needs a reason (--reason)")
        category = category or category_for_reason(reason)
        if category not in CATEGORIES:
            known = ", ".join(CATEGORIES)
            raise InputError(f"unknown category {category!r} (known: {known})")
        if source not in SOURCES:
            raise InputError(f"unknown source {source!r} (known: {', '.join(SOURCES)})")
        await self.pool.execute(
            ADD_SQL, self.sealer.seal(stored, RECIPIENT), self.sealer.folded_hash(stored),
            reason.strip(), category, source, delivery_id, note, self.clock.now(),
        )
        return stored

    async def remove(self, address: str) -> bool:
        """Take an address off the list; False when it was not on it."""
        key = self.sealer.folded_hash(normalise_address(address))
        result: str = await self.pool.execute(REMOVE_SQL, key)
        return result.endswith(" 1")

    async def forget(self, addresses: Sequence[str]) -> int:
        """Remove these addresses' entries, whatever they say (their people's data is being
        purged: nothing is sent to them any more); returns how many were removed."""
        if not addresses:
            return 0
        result: str = await self.pool.execute(
            "DELETE FROM suppressions WHERE address_key = ANY($1::bytea[])",
            list({self.sealer.folded_hash(a) for a in addresses}),
        )
        return int(result.split()[-1])

    async def list(self, limit: int = 1000, offset: int = 0) -> list[Suppression]:
        rows = await self.pool.fetch(LIST_SQL, limit, offset)
        return [self._entry(r) for r in rows]

    def _entry(self, row: asyncpg.Record) -> Suppression:
        fields = {k: v for k, v in row.items() if k != "address_key"}
        address = self.sealer.open(fields.pop("address_sealed"), RECIPIENT)
        return Suppression(address=address, **fields)

    async def lookup(self, addresses: Sequence[str]) -> dict[str, Suppression]:
        """The entries of those of ``addresses`` that are suppressed, keyed by the spelling
        asked for (an entry matches whatever the case of the address)."""
        keys = {a: self.sealer.folded_hash(a) for a in addresses}
        rows = await self.pool.fetch(
            "SELECT address_key, address_sealed, reason, category, source, delivery_id, note, "
            "created_at FROM suppressions WHERE address_key = ANY($1::bytea[])",
            list(set(keys.values())),
        )
        found = {bytes(r["address_key"]): r for r in rows}
        return {a: self._entry(found[k]) for a, k in keys.items() if k in found}

    async def import_csv(self, text: str, name: str = "the file") -> int:
        """Add every row of a CSV file (columns as ``export_csv``), or nothing if a line is bad.

        Only ``address`` is required; ``reason`` defaults to ``operator``, ``category`` to the
        reason's category, ``created_at`` to now. Every bad line is named in one error.
        """
        rows = parse_csv(text, name, self.clock.now())
        if not rows:
            return 0
        cols: list[list[Any]] = [[], [], [], [], [], [], []]
        seal, folded = self.sealer.seal, self.sealer.folded_hash
        for line, (address, reason, category, note, created_at) in rows:
            for col, value in zip(
                cols,
                (seal(address, RECIPIENT), reason, category, note, created_at, line,
                 folded(address)),
                strict=True,
            ):
                col.append(value)
        await self.pool.execute(IMPORT_SQL, *cols)
        return len({r[1][0].lower() for r in rows})

    async def export_csv(self) -> str:
        """The whole list as CSV with a header line (``CSV_COLUMNS``): UTF-8 with BOM for
        Excel, times in Japan time with their offset so that ``import`` reads them back."""
        return csv_text(CSV_COLUMNS, (
            (s.address, s.reason, s.category, s.source,
             s.created_at.astimezone(JST).isoformat(timespec="seconds"), csv_cell(s.note))
            for s in await self.list(limit=2**31 - 1)
        ))

    async def record_verdicts(
        self,
        items: Iterable[tuple[str, int | None, str, str, bool]],
        source: str = "smtp",
    ) -> builtins.list[str]:
        """Apply the suppression rules (module docstring) to final failures; returns the
        addresses newly suppressed.

        Each item is ``(address, delivery_id, reason, category, hard)`` (``FailedVerdict``), the
        address as the queue stores it. ``source`` is ``"smtp"`` for the runner's own replies
        and ``"bounce"`` for mail received later; complaints are recorded as ``"complaint"``.
        """
        if source not in SOURCES:
            raise InputError(f"unknown source {source!r} (known: {', '.join(SOURCES)})")
        cols: list[list[Any]] = [[], [], [], [], [], []]
        keys: list[bytes] = []
        seal, folded = self.sealer.seal, self.sealer.folded_hash
        for n, item in enumerate(items):
            address, delivery_id, reason, category, hard = item
            for col, value in zip(
                cols,
                (seal(address, RECIPIENT), delivery_id, reason, category, bool(hard), n),
                strict=True,
            ):
                col.append(value)
            keys.append(folded(address))
        if not cols[0]:
            return []
        rows = await self.pool.fetch(
            RECORD_SQL, *cols, list(SOFT_COUNTED_CATEGORIES), self.clock.now(),
            float(self.settings.soft_window), source, self.settings.soft_threshold, keys,
        )
        return [self.sealer.open(r["address_sealed"], RECIPIENT) for r in rows]


def parse_csv(
    text: str, name: str, now: datetime
) -> list[tuple[int, tuple[str, str, str, str, datetime]]]:
    """Check every line of a suppression CSV; all bad lines are reported together.

    A record must stay on its line: a quote left open would otherwise swallow the following
    lines into one field (and their addresses would silently not be imported), so a record that
    runs past its line is refused with the number of the line it starts on.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    good: list[tuple[int, tuple[str, str, str, str, datetime]]] = []
    bad: list[str] = []
    header: list[str] | None = None
    for line_no, record in _records(reader, name):
        if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
            continue
        if header is None and record[0].strip().lower() == "address":
            header = [c.strip().lower() for c in record]
            unknown = [c for c in header if c not in CSV_COLUMNS]
            if unknown:
                raise InputError(
                    f"{name}: line {line_no}: unknown column(s) {', '.join(unknown)} "
                    f"(known: {', '.join(CSV_COLUMNS)})"
                )
            continue
        fields = dict(zip(header or list(CSV_COLUMNS), (plain_cell(c.strip()) for c in record),
                          strict=False))
        try:
            good.append((line_no, _row(fields, now)))
        except InputError as exc:
            bad.append(f"line {line_no}: {exc}")
    if bad:
        shown = "; ".join(bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(
            f"{name}: {len(bad)} invalid line(s), nothing was imported: {shown}{more}"
        )
    return good


def _records(reader: Any, name: str) -> Iterable[tuple[int, list[str]]]:
    """The reader's records with the line each starts on; InputError for a record that runs
    onto the next line (an unterminated quote)."""
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise InputError(
                f"{name}: {start} 行目の引用符 (\") が閉じていません。何も取り込んでいません / "
                f"line {start}: a quote is not closed; nothing was imported"
            ) from None
        if reader.line_num > start:
            raise InputError(
                f"{name}: {start} 行目の引用符 (\") が行内で閉じていません。何も取り込んでいません"
                f" / line {start}: a quote is not closed on its line; nothing was imported"
            )
        yield start, record
        start = reader.line_num + 1


def _row(fields: dict[str, str], now: datetime) -> tuple[str, str, str, str, datetime]:
    address = normalise_address(fields.get("address", ""))
    reason = fields.get("reason") or "operator"
    category = fields.get("category") or category_for_reason(reason)
    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}")
    created_text = fields.get("created_at", "")
    created_at = now
    if created_text:
        try:
            created_at = datetime.fromisoformat(created_text)
        except ValueError:
            raise InputError(f"created_at {created_text!r} is not an ISO 8601 time") from None
        if created_at.tzinfo is None:
            raise InputError(f"created_at {created_text!r} needs a time zone")
    return address, reason, category, fields.get("note", ""), created_at


def suppressed_text(category: str | None, reason: str, created_at: datetime) -> str:
    """What a suppressed delivery shows, e.g. "配信停止リストに登録済み (宛先不明, 2026-11-20)"."""
    # "その他" says nothing; an operator's own reason ("保護者の依頼") says why.
    known = category is not None and category in CATEGORIES and category != OTHER
    label = CATEGORIES[category].label_ja if known and category else reason
    day = created_at.astimezone(JST).date().isoformat()
    return f"配信停止リストに登録済み ({label}, {day})"


__all__ = [
    "CSV_COLUMNS",
    "FailedVerdict",
    "SOFT_COUNTED_CATEGORIES",
    "Suppression",
    "Suppressions",
    "parse_csv",
    "suppressed_text",
]
