"""Wrong registration codes: counted per mail address and per network, slowed, then refused.

A registration code is 12 characters from a 27-letter alphabet, so guessing one is hopeless as
long as nobody can try millions. Every wrong code is counted under two keys: the address the
registration link was mailed to (``a:`` + its keyed hash, never the address) and the client's
network (``n:`` + its /24 for IPv4, /64 for IPv6). The first ``FREE_FAILURES`` cost nothing
(people mistype); each further one makes the key wait before its next attempt, doubling from
``FIRST_DELAY``; at ``LOCK_FAILURES`` the key is refused for ``LOCK_TIME``. A key's count starts
again after ``QUIET_TIME`` without a failure. The state is in the database (table
``registration_attempts``, migration 010) so every process of a serve sees the same counts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from engine.platform.errors import InputError

FREE_FAILURES = 3
FIRST_DELAY = timedelta(seconds=10)
LOCK_FAILURES = 10
LOCK_TIME = timedelta(hours=1)
QUIET_TIME = timedelta(hours=1)

BLOCKED_SQL = """
SELECT max(blocked_until) FROM registration_attempts
WHERE key = ANY($1::text[]) AND blocked_until > $2
"""

FAILURE_SQL = """
INSERT INTO registration_attempts AS a (key, failures, first_at, last_at)
VALUES ($1, 1, $2, $2)
ON CONFLICT (key) DO UPDATE
SET failures = CASE WHEN a.last_at < $2 - $3::interval THEN 1 ELSE a.failures + 1 END,
    first_at = CASE WHEN a.last_at < $2 - $3::interval THEN $2 ELSE a.first_at END,
    last_at = $2
RETURNING failures
"""


class TooManyAttempts(InputError):
    """Too many wrong codes from this address or network: try again after ``retry_after``."""

    def __init__(self, retry_after: timedelta) -> None:
        seconds = max(1, int(retry_after.total_seconds()))
        wait = f"{seconds} 秒" if seconds < 120 else f"{(seconds + 59) // 60} 分"
        super().__init__(
            f"登録コードの入力が続けて誤っているため、しばらく受け付けません。{wait}ほど待ってから"
            f"もう一度お試しください。 (too many wrong codes: try again in {seconds} s)"
        )
        self.retry_after = retry_after


def network_key(client_ip: str) -> str:
    """The key of a client's network: its /24 (IPv4) or /64 (IPv6); the text itself if it is
    not an IP address (e.g. a test client)."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return f"n:{client_ip[:64]}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return f"n:{ipaddress.ip_network(f'{ip}/{prefix}', strict=False)}"


def address_key(address_hash: bytes) -> str:
    return f"a:{address_hash.hex()}"


def delay_after(failures: int) -> timedelta:
    """How long a key waits after its ``failures``-th wrong code in a row."""
    if failures <= FREE_FAILURES:
        return timedelta(0)
    if failures >= LOCK_FAILURES:
        return LOCK_TIME
    return FIRST_DELAY * int(2 ** (failures - FREE_FAILURES - 1))


async def check_allowed(conn: asyncpg.Connection | asyncpg.Pool, keys: Sequence[str],
                        now: datetime) -> None:
    """TooManyAttempts while any of ``keys`` must still wait."""
    until: datetime | None = await conn.fetchval(BLOCKED_SQL, list(keys), now)
    if until is not None:
        raise TooManyAttempts(until - now)


async def record_failure(conn: asyncpg.Connection | asyncpg.Pool, keys: Sequence[str],
                         now: datetime) -> timedelta:
    """Count one wrong code under every key; the longest wait it imposes (0: none)."""
    longest = timedelta(0)
    for key in keys:
        failures: int = await conn.fetchval(FAILURE_SQL, key, now, QUIET_TIME)
        delay = delay_after(failures)
        if delay:
            await conn.execute(
                "UPDATE registration_attempts SET blocked_until = $2 WHERE key = $1",
                key, now + delay,
            )
            longest = max(longest, delay)
    return longest
