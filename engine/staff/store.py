"""The staff package's handle: pool, sealer (for TOTP secrets), clock, settings, audit key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import asyncpg

from engine.message.dkim import DkimSettings, dkim_settings
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Settings, StaffSettings
from engine.platform.errors import InputError
from engine.platform.sealing import Sealer
from engine.staff import audit
from engine.staff.audit_keys import load_audit_key
from engine.staff.models import AuthError, NotFoundError, Principal, RightsError

TOTP = "staff.totp"
T = TypeVar("T")


@dataclass(frozen=True)
class Staff:
    pool: asyncpg.Pool
    sealer: Sealer
    clock: Clock
    settings: StaffSettings
    audit_key: bytes
    # The [dkim] keys: a broadcast's From must be signable (engine/staff/senders.py).
    dkim: DkimSettings = field(default_factory=DkimSettings)
    # [http] public_url: broadcasts that ask something need it (engine.twoway.check_way_back).
    public_url: str = ""

    @classmethod
    async def open(
        cls, pool: asyncpg.Pool, sealer: Sealer, settings: Settings, clock: Clock | None = None
    ) -> Staff:
        key = await load_audit_key(pool, settings.staff)
        return cls(
            pool, sealer, clock or SystemClock(), settings.staff, key,
            dkim_settings(settings.dkim), settings.http.public_url,
        )

    @property
    def checkpoints(self) -> Path | None:
        """The audit chain's checkpoint file, when one is configured."""
        return Path(self.settings.audit_checkpoints) if self.settings.audit_checkpoints else None

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

    async def audited(
        self,
        actor: Principal,
        action: str,
        object: str,
        work: Awaitable[T],
        object_of: Callable[[T], str] | None = None,
        detail: str = "",
    ) -> T:
        """Run ``work`` and record it in the audit log with its result, also when refused
        (outside the rights, not found) or failed (bad input)."""
        try:
            value = await work
        except (RightsError, NotFoundError, AuthError) as exc:
            await self.log(actor, action, object, audit.Result.DENIED, str(exc)[:300])
            raise
        except InputError as exc:
            await self.log(actor, action, object, audit.Result.FAILED, str(exc)[:300])
            raise
        await self.log(
            actor, action, object_of(value) if object_of else object, audit.Result.OK, detail
        )
        return value
