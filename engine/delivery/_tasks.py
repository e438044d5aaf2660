"""The runner's background tasks: routing, lane workers, lease renewals, the listener.

Every stage that starts work of its own starts it here, so that a graceful stop finds all of
it in one place and waits for it (``settle``) before giving unsent mail back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Tasks:
    """A set of running tasks that forgets each one when it ends."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._running)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of its own."""
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def settle(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the running tasks, then cancel what is left."""
        if not self._running:
            return
        _, pending = await asyncio.wait(list(self._running), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
