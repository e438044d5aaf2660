"""The staff package's handle: pool, sealer (for TOTP secrets), clock, settings, audit key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine import audit
from engine.clock import Clock, SystemClock
from engine.config import Settings, StaffSettings
from engine.sealing import Sealer
from engine.staff.models import Principal

TOTP = "staff.totp"


@dataclass(frozen=True)
class Staff:
    pool: asyncpg.Pool
    sealer: Sealer
    clock: Clock
    settings: StaffSettings
    audit_key: bytes

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, sealer: Sealer, settings: Settings, clock: Clock | None = None
    ) -> Staff:
        key = await audit.audit_key(pool, settings.staff.audit_key)
        return cls(pool, sealer, clock or SystemClock(), settings.staff, key)

    def now(self) -> datetime:
        return self.clock.now()

    async def log(
        self,
        actor: Principal,
        action: str,
        object: str = "",
        result: str = audit.Result.OK,
        detail: str = "",
    ) -> int:
        """One entry in the audit log."""
        return await audit.record(
            self.pool, self.audit_key, self.now(), actor, action, object, result, detail
        )
