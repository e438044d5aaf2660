"""The broadcasts a runner is sending: their content and rendered templates, kept in memory.

A runner rarely works on more than a few broadcasts at once; each template is built once (body
encoded, DKIM body hash computed) and reused for every recipient.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from engine.clock import Clock
from engine.dkim import DkimSigner
from engine.message import MessageTemplate, build_template
from engine.queue import BroadcastContent, Queue

_TEMPLATE_CACHE = 64


class BroadcastCache:
    def __init__(
        self,
        queue: Queue,
        clock: Clock,
        id_domain: str,
        signer: DkimSigner | None,
        sign_per_recipient: bool,
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._id_domain = id_domain
        self._signer = signer
        self._sign_per_recipient = sign_per_recipient
        self._templates: OrderedDict[int, MessageTemplate] = OrderedDict()
        self._contents: dict[int, BroadcastContent] = {}

    async def load(self, ids: Iterable[int]) -> None:
        """Fetch the content of the broadcasts not yet known (one query)."""
        missing = set(ids) - self._contents.keys()
        if missing:
            self._contents.update(await self._queue.broadcast_contents(sorted(missing)))

    def template(self, broadcast_id: int) -> MessageTemplate:
        """The broadcast's template; its content must have been loaded."""
        template = self._templates.get(broadcast_id)
        if template is None:
            template = build_template(
                self._contents[broadcast_id], self._clock, self._id_domain,
                self._signer, self._sign_per_recipient,
            )
            self._templates[broadcast_id] = template
            while len(self._templates) > _TEMPLATE_CACHE:
                old, _ = self._templates.popitem(last=False)
                self._contents.pop(old, None)
        else:
            self._templates.move_to_end(broadcast_id)
        return template
