"""The broadcasts a runner is sending: their content and rendered templates, kept in memory.

A runner rarely works on more than a few broadcasts at once; each template is built once (body
encoded, DKIM body hash computed) and reused for every recipient.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from engine.message.compose import MessageTemplate, TemplateOptions
from engine.platform.clock import Clock
from engine.queue import BroadcastContent, Queue

_TEMPLATE_CACHE = 64


class BroadcastCache:
    def __init__(self, queue: Queue, clock: Clock, options: TemplateOptions) -> None:
        self._queue = queue
        self._clock = clock
        self._options = options
        self._templates: OrderedDict[int, MessageTemplate] = OrderedDict()
        self._contents: dict[int, BroadcastContent] = {}

    async def load(self, ids: Iterable[int]) -> None:
        """Fetch the content of the broadcasts not yet known (one query)."""
        missing = set(ids) - self._contents.keys()
        if missing:
            self._contents.update(await self._queue.broadcast_contents(sorted(missing)))

    def template(self, broadcast_id: int) -> MessageTemplate:
        """The broadcast's template; its content must have been loaded. DkimError when the
        sender's domain has no key and unsigned mail is not allowed."""
        template = self._templates.get(broadcast_id)
        if template is None:
            template = self._options.build(self._contents[broadcast_id], self._clock)
            self._templates[broadcast_id] = template
            while len(self._templates) > _TEMPLATE_CACHE:
                old, _ = self._templates.popitem(last=False)
                self._contents.pop(old, None)
        else:
            self._templates.move_to_end(broadcast_id)
        return template
