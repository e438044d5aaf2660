"""Serving the application with uvicorn inside the caller's event loop (``mamoru serve``).

    server = HttpServer(app, "127.0.0.1:8080")
    await server.start()      # returns once the port is bound (ConfigError if it cannot be)
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from fastapi import FastAPI

from engine.platform.config import parse_host_port
from engine.platform.errors import ConfigError

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0


class HttpServer:
    def __init__(self, app: FastAPI, listen: str) -> None:
        host, port = parse_host_port("http.listen", listen, 8080)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False,
            lifespan="off", server_header=False, proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.listen = f"{host}:{port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not self._server.started:
            if self._task.done() or loop.time() > deadline:
                # uvicorn logs the cause (e.g. the port in use) and returns without serving.
                await self.stop()
                raise ConfigError(f"HTTP サーバーを {self.listen} で起動できません "
                                  f"(cannot serve HTTP on {self.listen}: port in use?)")
            await asyncio.sleep(0.02)
        log.info("serving pages on http://%s", self.listen)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await self._task
        self._task = None
