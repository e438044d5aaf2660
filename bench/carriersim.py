"""Carrier simulator: loopback SMTP servers that throttle and block like Japanese carriers.

One aiosmtpd server per simulated carrier (docomo, au, softbank, gmail, icloud, other), each on
its own port, each enforcing limits *per source IP* that the engine is not told: concurrent
connections, messages per second (token bucket), messages per connection. When a limit is
exceeded it answers the way that carrier does (research notes, /work/shared/research/carriers.md):
docomo-like 421/450 with text, au-like TCP reset, SoftBank-like 421/451 text. A source that keeps
exceeding limits after being told (more than `block_after` violations within `block_window`
seconds) is blocked for `block_seconds`: every connection is refused (554, or a reset for au)
and the block is counted. Recipients whose local part starts with "unknown" get a 550.

Unseen carriers: a carrier's `replies` table replaces any of its style's answers (kinds
`connections`, `rate`, `per_connection`, `blocked`, `blocked_greeting`, `unknown`; the value
"reset" means a TCP reset), so a configuration can speak codes and texts the engine's profiles
have never seen. `block_stage = "RCPT"` makes a blocked source meet the block reply at every
RCPT in a session that stays open (a burst of 5xx for distinct recipients) instead of at MAIL.
`randomised()` scales every carrier's limits by a seeded random factor, for runs whose limits
nobody could have tuned for.

As a library::

    async with CarrierSim() as sim:
        port = sim.ports["docomo"]
        ...
        print(sim.stats())

As a process::

    python bench/carriersim.py [--config limits.toml|limits.json] [--host 127.0.0.1]

prints `{"ports": {...}, "domains": {...}}` as one JSON line, serves until SIGTERM or SIGINT,
then prints the statistics as one JSON line. The configuration is a table per carrier with any
of the CarrierLimits fields, e.g. `[docomo] rate = 30` or `{"docomo": {"rate": 30}}`.

The DATA handler counts bytes and nothing else, so the simulator is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import socket
import struct
import sys
import time
import tomllib
import typing
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

STYLES = ("docomo", "au", "softbank", "gmail", "generic")

REPLY_KINDS = (
    "connections", "rate", "per_connection", "blocked", "blocked_greeting", "unknown",
)


class _Clock(Protocol):
    def monotonic(self) -> float: ...


class _MonotonicClock:
    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class CarrierLimits:
    """The hidden limits of one simulated carrier, all per source IP."""

    name: str
    style: str
    domains: tuple[str, ...]
    max_connections: int
    rate: float  # messages/second per source IP
    burst: float
    max_messages_per_connection: int
    block_after: int = 30  # violations within block_window before a block
    block_window: float = 60.0
    block_seconds: float = 30.0
    port: int = 0
    # Answers that replace the style's, by kind; "reset" means a TCP reset without a word.
    replies: Mapping[str, str] = field(default_factory=dict)
    block_stage: str = "MAIL"  # where a blocked source meets the block inside a session

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"{self.name}.style: one of {', '.join(STYLES)}, got {self.style!r}")
        if self.max_connections < 1 or self.max_messages_per_connection < 1:
            raise ValueError(f"{self.name}: connection limits must be at least 1")
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(f"{self.name}: rate must be positive and burst at least 1")
        unknown = set(self.replies) - set(REPLY_KINDS)
        if unknown:
            raise ValueError(f"{self.name}.replies: unknown kind(s) {sorted(unknown)}")
        if self.block_stage not in ("MAIL", "RCPT"):
            raise ValueError(f"{self.name}.block_stage: MAIL or RCPT, got {self.block_stage!r}")


# Invented numbers, deliberately different from the engine's profiles so that the adaptive
# controller has something to find.
DEFAULT_LIMITS: dict[str, CarrierLimits] = {
    c.name: c
    for c in (
        CarrierLimits("docomo", "docomo", ("docomo.ne.jp",), 4, 20.0, 5.0, 50),
        CarrierLimits("au", "au", ("ezweb.ne.jp", "au.com"), 3, 15.0, 4.0, 30),
        CarrierLimits(
            "softbank", "softbank", ("softbank.ne.jp", "i.softbank.jp", "disney.ne.jp"),
            3, 10.0, 3.0, 30,
        ),
        CarrierLimits("gmail", "gmail", ("gmail.com",), 10, 50.0, 10.0, 100),
        CarrierLimits("icloud", "generic", ("icloud.com", "me.com"), 5, 20.0, 5.0, 50),
        CarrierLimits("other", "generic", ("example.jp",), 5, 20.0, 5.0, 100),
    )
}

# What each style answers. None means: reset the TCP connection without a word (au).
# "close" replies end the connection after being sent.
_REPLIES: dict[str, dict[str, str | None]] = {
    "docomo": {
        "connections": "421 4.7.0 Too many connections",
        "rate": "450 4.7.1 Message rate limit exceeded, try again later",
        "per_connection": "421 4.7.0 Too many messages in this session, closing connection",
        "blocked": "554 5.7.1 Service unavailable; client host blocked",
        "unknown": "550 Unknown user {rcpt}",
    },
    "au": {
        "connections": None,
        "rate": None,
        "per_connection": None,
        "blocked": None,
        "unknown": "550 <{rcpt}>: User unknown",
    },
    "softbank": {
        "connections": "421 4.3.2 Too many connections from your host, slow down",
        "rate": "451 4.7.1 Too many messages, slow down",
        "per_connection": "421 4.7.0 Too many messages in this session, closing connection",
        "blocked": "554 5.7.1 Access denied",
        "unknown": "550 Invalid recipient",
    },
    "gmail": {
        "connections": "421 4.7.0 Try again later, closing connection.",
        "rate": "450 4.2.1 The user you are trying to contact is receiving mail at a rate that "
        "prevents additional messages from being delivered.",
        "per_connection": "421 4.7.0 Try again later, closing connection.",
        "blocked": "554 5.7.1 Our system has detected an unusual rate of unsolicited mail",
        "unknown": "550 5.1.1 The email account that you tried to reach does not exist.",
    },
    "generic": {
        "connections": "421 4.7.0 Too many connections",
        "rate": "451 4.7.1 Rate limit exceeded",
        "per_connection": "421 4.7.0 Too many messages per connection",
        "blocked": "554 5.7.1 Blocked",
        "unknown": "550 5.1.1 User unknown",
    },
}


@dataclass
class SourceStats:
    """What one source IP did to one carrier."""

    connections: int = 0
    rejected_connections: int = 0
    max_concurrent: int = 0
    accepted: int = 0
    bytes: int = 0
    unknown_users: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    blocks: int = 0
    blocked_replies: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["violations"] = dict(self.violations)
        return data


class _Source:
    """Live per-IP state at one carrier."""

    def __init__(self, limits: CarrierLimits, now: float) -> None:
        self.stats = SourceStats()
        self.concurrent = 0
        self.tokens = limits.burst
        self.stamp = now
        self.violation_times: deque[float] = deque()
        self.blocked_until = 0.0


class _Carrier:
    """The per-source-IP limit keeping of one simulated carrier."""

    def __init__(self, limits: CarrierLimits, clock: _Clock) -> None:
        self.limits = limits
        self.clock = clock
        replies = dict(_REPLIES[limits.style])
        replies.setdefault("blocked_greeting", replies["blocked"])
        for kind, reply in limits.replies.items():
            replies[kind] = None if reply == "reset" else reply
        self.replies = replies
        self.sources: dict[str, _Source] = {}

    def source(self, ip: str) -> _Source:
        src = self.sources.get(ip)
        if src is None:
            src = self.sources[ip] = _Source(self.limits, self.clock.monotonic())
        return src

    def is_blocked(self, src: _Source) -> bool:
        if self.clock.monotonic() < src.blocked_until:
            src.stats.blocked_replies += 1
            return True
        return False

    def violation(self, src: _Source, kind: str) -> None:
        now = self.clock.monotonic()
        src.stats.violations[kind] += 1
        times = src.violation_times
        times.append(now)
        while times and now - times[0] > self.limits.block_window:
            times.popleft()
        if len(times) > self.limits.block_after:
            src.blocked_until = now + self.limits.block_seconds
            src.stats.blocks += 1
            times.clear()

    def take_token(self, src: _Source) -> bool:
        now = self.clock.monotonic()
        src.tokens = min(self.limits.burst, src.tokens + (now - src.stamp) * self.limits.rate)
        src.stamp = now
        if src.tokens >= 1.0:
            src.tokens -= 1.0
            return True
        return False


class _Handler:
    """aiosmtpd hooks: unknown users by local part, DATA only counted."""

    def __init__(self, carrier: _Carrier) -> None:
        self.carrier = carrier

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        assert isinstance(server, _SimSMTP)
        carrier = self.carrier
        if carrier.limits.block_stage == "RCPT" and carrier.is_blocked(server.src):
            # Every recipient refused, the session left open: a burst of 5xx for distinct
            # recipients that the site accepted moments before.
            return carrier.replies["blocked"] or "550 5.7.1 Rejected"
        if address.split("@", 1)[0].lstrip('"').lower().startswith("unknown"):
            server.src.stats.unknown_users += 1
            reply = self.carrier.replies["unknown"] or "550 User unknown"
            return reply.format(rcpt=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _SimSMTP)
        content = envelope.original_content or envelope.content or b""
        server.src.stats.accepted += 1
        server.src.stats.bytes += len(content)
        return "250 2.0.0 OK queued"


class _SimSMTP(SMTP):
    """An aiosmtpd session that checks the carrier's per-IP limits."""

    def __init__(self, carrier: _Carrier) -> None:
        super().__init__(
            _Handler(carrier),
            hostname=f"mx.{carrier.limits.name}.carriersim.invalid",
            ident="carriersim",
            timeout=60,
        )
        self.carrier = carrier
        self.src = _Source(carrier.limits, 0.0)  # replaced by the peer's in connection_made
        self._counted = False
        self._messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else "?"
        carrier = self.carrier
        src = self.src = carrier.source(ip)
        src.stats.connections += 1
        if carrier.is_blocked(src):
            src.stats.rejected_connections += 1
            self._refuse_at_greeting(transport, carrier.replies["blocked_greeting"])
            return
        if src.concurrent >= carrier.limits.max_connections:
            src.stats.rejected_connections += 1
            carrier.violation(src, "connections")
            self._refuse_at_greeting(transport, carrier.replies["connections"])
            return
        self._counted = True
        src.concurrent += 1
        src.stats.max_concurrent = max(src.stats.max_concurrent, src.concurrent)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._counted:
            return  # refused before the SMTP session started: nothing of aiosmtpd to tear down
        self._counted = False
        self.src.concurrent -= 1
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if not self._counted:
            return False
        return super().eof_received()

    async def smtp_MAIL(self, arg: str | None) -> None:
        carrier, src = self.carrier, self.src
        kind: str | None = None
        if carrier.limits.block_stage == "MAIL" and carrier.is_blocked(src):
            kind = "blocked"
        elif self._messages >= carrier.limits.max_messages_per_connection:
            kind = "per_connection"
        elif not carrier.take_token(src):
            kind = "rate"
        if kind is None:
            self._messages += 1
            await super().smtp_MAIL(arg)
            return
        if kind != "blocked":
            carrier.violation(src, kind)
        reply = carrier.replies[kind]
        if reply is None:
            _reset(self.transport)
        elif reply.startswith("4") and not reply.startswith("421"):
            await self.push(reply)  # "slow down", the session stays open
        else:
            await self.push(reply)
            if self.transport is not None:
                self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        """Read the message in large chunks and only count it (aiosmtpd reads line by line)."""
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        chunks: list[bytes] = []
        tail = b"\r\n"  # DATA starts at the beginning of a line
        try:
            while True:
                try:
                    chunk = await self._reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as exc:
                    chunk = await self._reader.read(exc.consumed)
                chunks.append(chunk)
                tail = (tail + chunk)[-5:]
                if tail == b"\r\n.\r\n":
                    break
        except asyncio.CancelledError:
            self._writer.close()  # the connection went away during DATA
            raise
        content = b"".join(chunks)[:-3]  # without the final ".\r\n"; no dot-unstuffing
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """A plain `<address> params` split; aiosmtpd's RFC 5322 parser costs more than DATA.

        It also lets old docomo/au addresses (`foo..bar@docomo.ne.jp`) through, as the carriers
        do.
        """
        arg = arg.strip()
        if not arg:
            return "", ""
        if arg.startswith("<"):
            end = arg.find(">")
            if end < 0:
                return None, None
            return arg[1:end], arg[end + 1 :]
        address, _, rest = arg.partition(" ")
        return address, rest

    def _refuse_at_greeting(self, transport: asyncio.BaseTransport, reply: str | None) -> None:
        if reply is None:
            _reset(transport)
            return
        # Not isinstance(asyncio.WriteTransport): uvloop's transports are not subclasses of it.
        typing.cast(asyncio.WriteTransport, transport).write(reply.encode("ascii") + b"\r\n")
        transport.close()


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with a TCP RST, as au does: SO_LINGER with a zero timeout, then abort."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    typing.cast(asyncio.WriteTransport, transport).abort()


class CarrierSim:
    """All simulated carriers, each listening on its own loopback port."""

    def __init__(
        self,
        limits: Mapping[str, CarrierLimits] | None = None,
        *,
        host: str = "127.0.0.1",
        clock: _Clock | None = None,
    ) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.host = host
        self._clock = clock or _MonotonicClock()
        self.carriers = {name: _Carrier(lim, self._clock) for name, lim in self.limits.items()}
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for name, carrier in self.carriers.items():

            def factory(carrier: _Carrier = carrier) -> _SimSMTP:
                return _SimSMTP(carrier)

            server = await loop.create_server(factory, self.host, carrier.limits.port)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()

    async def __aenter__(self) -> CarrierSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def domains(self) -> dict[str, str]:
        """Recipient domain -> carrier name, for building a transport map."""
        return {d: name for name, lim in self.limits.items() for d in lim.domains}

    def stats(self) -> dict[str, Any]:
        """Per carrier: per source IP statistics and totals."""
        out: dict[str, Any] = {}
        for name, carrier in self.carriers.items():
            per_ip = {ip: src.stats.as_dict() for ip, src in carrier.sources.items()}
            totals: Counter[str] = Counter()
            violations: Counter[str] = Counter()
            for src in carrier.sources.values():
                s = src.stats
                totals.update(
                    accepted=s.accepted, connections=s.connections, blocks=s.blocks,
                    unknown_users=s.unknown_users, blocked_replies=s.blocked_replies,
                )
                violations.update(s.violations)
            out[name] = {
                "sources": per_ip,
                "totals": {**totals, "violations": dict(violations)},
            }
        return out


def ideal_seconds(
    messages: Mapping[str, int],
    source_ips: int,
    limits: Mapping[str, CarrierLimits] | None = None,
) -> float:
    """The least time the carriers' rate limits allow for a workload.

    max over carriers of messages / (rate per IP x number of source IPs); connection and
    per-connection limits are ignored (they cost latency, not rate, with enough connections).
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    if source_ips < 1:
        raise ValueError("at least one source IP is needed")
    return max(
        (n / (limits[name].rate * source_ips) for name, n in messages.items() if n > 0),
        default=0.0,
    )


def limits_from_mapping(table: Mapping[str, Mapping[str, Any]]) -> dict[str, CarrierLimits]:
    """Merge a configuration table over DEFAULT_LIMITS; a new name needs style and domains."""
    limits = dict(DEFAULT_LIMITS)
    names = {f.name for f in dataclasses.fields(CarrierLimits)} - {"name"}
    for name, overrides in table.items():
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {sorted(unknown)}")
        values = dict(overrides)
        if "domains" in values:
            values["domains"] = tuple(values["domains"])
        base = limits.get(name)
        if base is None:
            base = dataclasses.replace(DEFAULT_LIMITS["other"], name=name, domains=())
        limits[name] = dataclasses.replace(base, **values)
    return limits


def limits_to_mapping(limits: Mapping[str, CarrierLimits]) -> dict[str, dict[str, Any]]:
    """The inverse of `limits_from_mapping`: plain tables, e.g. to hand a process as JSON."""
    out: dict[str, dict[str, Any]] = {}
    for name, lim in limits.items():
        values = dataclasses.asdict(lim)
        del values["name"]
        values["domains"] = list(lim.domains)
        values["replies"] = dict(lim.replies)
        out[name] = values
    return out


def randomised(
    limits: Mapping[str, CarrierLimits], seed: int, spread: float
) -> dict[str, CarrierLimits]:
    """Every carrier's rate, connection and per-connection limits scaled by its own random
    factor in [1 - spread, 1 + spread] (the same for a seed), so no run can be tuned for."""
    if not 0 <= spread < 1:
        raise ValueError(f"spread must be in [0, 1), got {spread}")
    rng = random.Random(seed)
    out = {}
    for name in sorted(limits):
        lim = limits[name]

        def scaled(value: float) -> float:
            return value * rng.uniform(1 - spread, 1 + spread)

        out[name] = dataclasses.replace(
            lim,
            rate=round(scaled(lim.rate), 2),
            max_connections=max(1, round(scaled(lim.max_connections))),
            max_messages_per_connection=max(2, round(scaled(lim.max_messages_per_connection))),
        )
    return out


def load_config(path: str | None) -> tuple[dict[str, CarrierLimits], dict[str, Any]]:
    """The limits of a TOML or JSON file (merged over the defaults) and its `[sim]` table
    (`seed`, `spread`: see `randomised`), which is not a carrier."""
    if path is None:
        return dict(DEFAULT_LIMITS), {}
    raw = Path(path).read_bytes()
    table = tomllib.loads(raw.decode()) if path.endswith(".toml") else json.loads(raw)
    options = dict(table.pop("sim", {}))
    unknown = set(options) - {"seed", "spread"}
    if unknown:
        raise ValueError(f"sim: unknown setting(s) {sorted(unknown)}; known: seed, spread")
    return limits_from_mapping(table), options


def _load_config(path: str | None) -> dict[str, CarrierLimits]:
    limits, options = load_config(path)
    if options.get("spread"):
        limits = randomised(limits, int(options.get("seed", 0)), float(options["spread"]))
    return limits


async def _serve(limits: dict[str, CarrierLimits], host: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with CarrierSim(limits, host=host) as sim:
        print(json.dumps({"ports": sim.ports, "domains": sim.domains()}), flush=True)
        await stop.wait()
    print(json.dumps(sim.stats()), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="TOML or JSON table of per-carrier limits")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    args = parser.parse_args(argv)
    limits = _load_config(args.config)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(limits, args.host))
    else:
        uvloop.run(_serve(limits, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
