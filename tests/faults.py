"""Fault scenarios on real parts: a PostgreSQL of our own that can be restarted or stopped, an
SMTP receiver that stalls, resets and answers 421 in bursts, and a count of what arrived.

Used by ``tests/delivery/test_faults.py`` (a few hundred recipients) and ``bench/faults.py``
(thousands).
Each scenario returns a ``Report``: recipients, distinct mails received, duplicates, deliveries
lost (marked delivered but never received, or never final), stuck (not final at the end) and
the seconds until every delivery was final.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sinks import free_port

from engine.delivery.context import Engine
from engine.platform.config import Settings, load_settings
from engine.platform.sealing import RECIPIENT, Sealer, new_key_text
from engine.queue import NewBroadcast

# The people key of every scenario (the test process and its serve processes): the queue's
# recipients are sealed with it.
PEOPLE_KEY = new_key_text()
AUDIT_KEY = new_key_text()
# The link key file of the scenarios (in-process settings and the serve subprocesses alike).
LINK_KEY_FILE = os.path.join(tempfile.mkdtemp(prefix="mamoru-fault-keys-"), "link.key")

ROOT = Path(__file__).resolve().parent.parent
FINAL = ("delivered", "failed")


# --- a PostgreSQL that can fail ------------------------------------------------------------

class OwnPostgres:
    """An embedded PostgreSQL of this scenario's own, so that it can be restarted and stopped
    without disturbing anything else."""

    def __init__(self) -> None:
        import warnings

        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        self._pg = pgserver
        self._dir = Path(tempfile.mkdtemp(prefix="mamoru-fault-pg-", dir="/tmp"))
        self.server = pgserver.get_server(self._dir / "data", cleanup_mode="stop")
        self.uri = str(self.server.get_uri())
        self._socket_dir = parse_qs(urlsplit(self.uri).query)["host"][0]

    def _ctl(self, *args: str) -> None:
        self._pg.pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user,
                        timeout=60)

    def restart(self) -> None:
        self._ctl("-w", "-m", "fast", "restart")

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}",
                  "-l", str(self.server.pgdata / "restart.log"), "start")

    def close(self) -> None:
        # pgserver only knows the process it started; after a restart, stop by data directory.
        # Its own clean-up (now or at exit) then finds nothing to stop: not an error here.
        import logging

        logging.getLogger("pgserver").setLevel(logging.CRITICAL)
        with contextlib.suppress(Exception):
            self._ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)


# --- an SMTP receiver that misbehaves -------------------------------------------------------

@dataclass
class Behaviour:
    """How the receiver misbehaves: 421 at the greeting while ``greeting_421`` is set, every
    ``reset_every``-th DATA answered by a reset, recipients named ``stall...`` never answered."""

    greeting_421: threading.Event = field(default_factory=threading.Event)
    reset_every: int = 0


class Bursts:
    """421 at the greeting for 3 s in every 8 s while the context lasts (a thread of its own)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._behaviour.greeting_421.set()
            self._stop.wait(3.0)
            self._behaviour.greeting_421.clear()
            self._stop.wait(5.0)

    def __enter__(self) -> Bursts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._behaviour.greeting_421.clear()


class RecordingReceiver:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.data_count = 0
        self.greeting_refusals = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(r.startswith("stall") for r in envelope.rcpt_tos):
            await asyncio.sleep(3600)
        with self.lock:
            self.data_count += 1
            reset = self.behaviour.reset_every and self.data_count % self.behaviour.reset_every == 0
        if reset and server.transport is not None:
            server.transport.abort()
            return "421 reset"
        content = bytes(envelope.content or b"")
        mid = _message_id(content)
        with self.lock:
            self.ids[mid] += 1
        return "250 2.0.0 Ok"


def _message_id(content: bytes) -> str:
    for line in content.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
        if not line:
            break
    return ""


class _FaultySMTP(SMTP):
    _refuse = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        handler = self.event_handler
        if isinstance(handler, RecordingReceiver) and handler.behaviour.greeting_421.is_set():
            self._refuse = True
            with handler.lock:
                handler.greeting_refusals += 1

    async def _handle_client(self) -> None:
        if self._refuse:
            await self.push("421 4.3.2 Service not available, closing channel")
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _FaultySMTP(self.handler, **self.SMTP_kwargs)


class FaultyReceiver:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.handler = RecordingReceiver(self.behaviour)
        self.port = free_port()
        self._controller = _Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                       ready_timeout=10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultyReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


# --- scenarios -------------------------------------------------------------------------------

@dataclass
class Report:
    scenario: str
    recipients: int
    received: int
    duplicates: int
    lost: int
    stuck: int
    seconds: float
    in_flight_bound: int
    states: dict[str, int]
    failed_reasons: dict[str, int] = field(default_factory=dict)
    failed_without_text: int = 0
    stalled_failed: int = 0
    # Mails received when the fault began (a fault after the last mail would test nothing).
    at_fault: int | None = None
    # Failed although the receiver has them, without the "may have arrived" mark (migration
    # 020): a failure that is not the whole truth and does not say so.
    arrived_failed_unmarked: int = 0

    def line(self) -> str:
        return (f"{self.scenario:<18} sent {self.recipients:>6}  received {self.received:>6}  "
                f"duplicates {self.duplicates:>4}  lost {self.lost:>3}  stuck {self.stuck:>4}  "
                f"all final after {self.seconds:6.1f} s")


def scenario_settings(db_url: str, target: str, **sections: dict[str, Any]) -> Settings:
    base = load_settings(None, environ={})
    settings = replace(
        base,
        database=replace(base.database, url=db_url, pool_min=1, pool_max=5, connect_timeout=2.0),
        queue=replace(base.queue, poll_interval=0.1, retry_base=0.2, retry_max=1.0,
                      flush_interval=0.05),
        delivery=replace(base.delivery, connect_timeout=2.0, command_timeout=2.0,
                         data_timeout=2.0, shutdown_grace=2.0),
        metrics=replace(base.metrics, listen=""),
        routing=replace(base.routing, transport={"*": target}),
        shaping={"enabled": False},
        dkim={"allow_unsigned": True},
        inbound=replace(base.inbound, listen=""),
        # The fault tests need no pages; serving them on the default port would collide with
        # any other serve on this machine.
        http=replace(base.http, listen=""),
        people=replace(base.people, key=PEOPLE_KEY, link_key_file=LINK_KEY_FILE),
        staff=replace(base.staff, audit_key=AUDIT_KEY, audit_checkpoints=""),
    )
    for name, values in sections.items():
        current = getattr(settings, name)
        settings = replace(settings, **{name: values if isinstance(current, dict)
                                        else replace(current, **values)})
    return settings


async def enqueue(engine: Engine, recipients: list[str]) -> int:
    b = NewBroadcast(sender="kyouiku@city.example.jp", subject="【緊急】臨時休校のお知らせ",
                     body="台風のため本日は臨時休校とします。\n", recipients=recipients)
    return await engine.queue.enqueue(b, engine.clock.now(), engine.settings.queue.max_age)


async def fresh_database(server_uri: str) -> str:
    """A new, empty database on the given server (migrated by the engine at open)."""
    import uuid

    name = f"mamoru_f_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_uri)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    parts = urlsplit(server_uri)
    return parts._replace(path=f"/{name}").geturl()


async def final_states(db_url: str, within: float) -> dict[str, int]:
    """Counts by state, retrying while the database is away."""
    deadline = time.monotonic() + within
    while True:
        try:
            conn = await asyncpg.connect(db_url, timeout=2)
            try:
                rows = await conn.fetch(
                    "SELECT state, count(*) AS n FROM deliveries GROUP BY state")
            finally:
                await conn.close()
            return {r["state"]: r["n"] for r in rows}
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_all_final(
    db_url: str, total: int, within: float
) -> tuple[dict[str, int], float]:
    started = time.monotonic()
    deadline = started + within
    while True:
        states = await final_states(db_url, within)
        if sum(states.get(s, 0) for s in FINAL) == total or time.monotonic() > deadline:
            return states, time.monotonic() - started
        await asyncio.sleep(0.1)


def _opened(sealed: bytes) -> str:
    return Sealer(base64.b64decode(PEOPLE_KEY)).open(sealed, RECIPIENT)


async def report(
    name: str, db_url: str, receiver: FaultyReceiver, total: int, seconds: float,
    states: dict[str, int], in_flight_bound: int,
) -> Report:
    conn = await asyncpg.connect(db_url)
    try:
        delivered = {
            r["id"] for r in await conn.fetch("SELECT id FROM deliveries WHERE state='delivered'")
        }
        failed = await conn.fetch(
            "SELECT id, recipient_sealed, reason, last_text, interrupted FROM deliveries "
            "WHERE state='failed'")
    finally:
        await conn.close()
    with receiver.handler.lock:
        ids = dict(receiver.handler.ids)
    received = {_delivery_id(m) for m in ids if m}
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    stuck = total - sum(states.get(s, 0) for s in FINAL)
    return Report(
        name, total, len(received), duplicates, len(delivered - received), stuck, seconds,
        in_flight_bound, states, dict(Counter(str(f["reason"]) for f in failed)),
        sum(1 for f in failed if not f["last_text"]),
        sum(1 for f in failed if _opened(f["recipient_sealed"]).startswith("stall")),
        arrived_failed_unmarked=sum(
            1 for f in failed if f["id"] in received and not f["interrupted"]),
    )


def _delivery_id(message_id: str) -> int:
    return int(message_id.strip("<>").partition("@")[0].split(".")[2])


@contextlib.asynccontextmanager
async def running_runner(settings: Settings) -> AsyncIterator[Any]:
    engine = await Engine.open(settings)
    runner = await engine.runner()
    task = asyncio.create_task(runner.run())
    try:
        yield engine, runner, task
    finally:
        runner.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=60)
        await engine.close()


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def scenario_writer_error(pg: OwnPostgres, n: int) -> Report:
    """The outcome writer meets an asyncpg InternalClientError (seen after a restart) once."""
    db_url = await fresh_database(pg.uri)
    with FaultyReceiver() as receiver:
        settings = scenario_settings(db_url, receiver.address)
        async with running_runner(settings) as (engine, runner, _task):
            real = engine.queue.record
            calls = {"n": 0}

            async def failing_once(owner: str, results: Any) -> int:
                calls["n"] += 1
                if calls["n"] == 2:
                    raise asyncpg.InternalClientError(
                        "cannot switch to state 12; another operation is in progress")
                return await real(owner, results)

            engine.queue.record = failing_once  # type: ignore[method-assign]
            await enqueue(engine, [f"g{i}@example.jp" for i in range(n)])
            states, seconds = await wait_all_final(db_url, n, within=120)
        return await report("writer error", db_url, receiver, n, seconds, states,
                            settings.delivery.concurrency)


async def scenario_database(pg: OwnPostgres, n: int, outage: float) -> Report:
    """The database restarts (``outage`` 0) or is away for ``outage`` seconds mid-broadcast."""
    db_url = await fresh_database(pg.uri)
    with FaultyReceiver() as receiver:
        settings = scenario_settings(db_url, receiver.address)
        async with running_runner(settings) as (engine, _runner, _task):
            await enqueue(engine, [f"g{i}@example.jp" for i in range(n)])
            await until(lambda: sum(receiver.handler.ids.values()) >= n // 5, within=60)
            at_fault = sum(receiver.handler.ids.values())
            if outage <= 0:
                await asyncio.to_thread(pg.restart)
            else:
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(outage)  # the outage itself, not a synchronisation
                await asyncio.to_thread(pg.start)
            states, seconds = await wait_all_final(db_url, n, within=120 + outage)
        name = "database restart" if outage <= 0 else f"database {outage:.0f} s away"
        r = await report(name, db_url, receiver, n, seconds, states,
                         settings.delivery.concurrency)
        return replace(r, at_fault=at_fault)


async def scenario_receiver(pg: OwnPostgres, n: int, max_age: float) -> Report:
    """The receiver answers 421 at the greeting in bursts, resets every 25th DATA and never
    answers the DATA of 1% of the recipients; shaping on; everything final by max_age."""
    db_url = await fresh_database(pg.uri)
    behaviour = Behaviour(reset_every=25)
    with FaultyReceiver(behaviour) as receiver:
        settings = scenario_settings(
            db_url, receiver.address, queue={"max_age": max_age, "retry_base": 1.0,
                                              "retry_max": 5.0, "poll_interval": 0.1,
                                              "flush_interval": 0.05},
            shaping={"enabled": True},
        )
        recipients = [f"stall{i}@example.jp" if i % 100 == 0 else f"g{i}@example.jp"
                      for i in range(n)]
        async with running_runner(settings) as (engine, _runner, _task):
            with Bursts(behaviour):
                await enqueue(engine, recipients)
                states, seconds = await wait_all_final(db_url, n, within=max_age + 60)
        return await report("receiver faults", db_url, receiver, n, seconds, states,
                            settings.delivery.concurrency)


def serve_process(config: Path) -> Any:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "-c", str(config), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
    )


async def scenario_sigkill(
    pg: OwnPostgres, n: int, workdir: Path, during: str = "", max_age: float = 60.0
) -> Report:
    """A serve process is killed with SIGKILL mid-broadcast; another one takes its leases back
    through the heartbeat rule (the lease itself is 5 minutes). ``during``: "" (a plain
    broadcast), "outage" (killed while the database is stopped) or "receiver" (killed while the
    receiver misbehaves as in ``scenario_receiver``, with ``max_age`` and shaping on)."""
    db_url = await fresh_database(pg.uri)
    behaviour = Behaviour(reset_every=25 if during == "receiver" else 0)
    with FaultyReceiver(behaviour) as receiver, contextlib.ExitStack() as stack:
        cfg = workdir / "mamoru.toml"
        shaping = "true" if during == "receiver" else "false"
        cfg.write_text(
            f'[database]\nurl = "{db_url}"\n[routing.transport]\n"*" = "{receiver.address}"\n'
            f'[metrics]\nlisten = ""\n[inbound]\nlisten = ""\n[http]\nlisten = ""\n'
            f'[shaping]\nenabled = {shaping}\n'
            f'[queue]\nretry_base = "1s"\nretry_max = "2s"\nmax_age = "{max_age:.0f}s"\n'
            '[delivery]\nconcurrency = 50\ndata_timeout = "2s"\n'
            f'[dkim]\nallow_unsigned = true\n[people]\nkey = "{PEOPLE_KEY}"\n'
            f'link_key_file = "{LINK_KEY_FILE}"\n'
            f'[staff]\naudit_key = "{AUDIT_KEY}"\n'
            f'audit_checkpoints = "{workdir / "audit.checkpoints"}"\n',
            encoding="utf-8",
        )
        settings = scenario_settings(db_url, receiver.address, queue={"max_age": max_age})
        if during == "receiver":
            recipients = [f"stall{i}@example.jp" if i % 100 == 0 else f"g{i}@example.jp"
                          for i in range(n)]
            stack.enter_context(Bursts(behaviour))
        else:
            recipients = [f"g{i}@example.jp" for i in range(n)]
        engine = await Engine.open(settings)
        try:
            await enqueue(engine, recipients)
        finally:
            await engine.close()
        first = serve_process(cfg)
        try:
            if during == "receiver":
                # Some get through between bursts; kill while the receiver is misbehaving.
                await asyncio.sleep(4.0)
            else:
                await until(lambda: sum(receiver.handler.ids.values()) >= n // 4, within=60)
            if during == "outage":
                await asyncio.to_thread(pg.stop)
        finally:
            at_fault = sum(receiver.handler.ids.values())
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
        if during == "outage":
            await asyncio.to_thread(pg.start)
        conn = await asyncpg.connect(db_url)
        try:
            leased = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state='sending'")
        finally:
            await conn.close()
        second = serve_process(cfg)
        try:
            states, seconds = await wait_all_final(db_url, n, within=max_age + 90)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 30)
        name = {"": "SIGKILL + takeover", "outage": "SIGKILL in outage",
                "receiver": "SIGKILL, bad receiver"}[during]
        r = await report(name, db_url, receiver, n, seconds, states, int(leased))
        return replace(r, at_fault=at_fault)
