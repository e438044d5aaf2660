"""The floor under the engine's CPU per mail: what a bare asyncio client on uvloop spends to hand
ready-made mails to the same sink, with no queue, render, signature, shaper or outcome.

    python bench/smtp_floor.py [--messages 30000] [--connections 4] [--size 3000] [--rounds 3]

Issue 25 asks for the engine's CPU per mail besides the RSA signature to be at most 150 µs. Part
of any such figure is not the engine's to cut: the event loop and the kernel's writes and reads
on loopback. This measures that part alone, two ways, alternated ``--rounds`` times in one
invocation:

- **two turns** per mail, as the engine's client does today: MAIL, RCPT and DATA in one write,
  wait for their three replies, then the content and the final dot, wait for its reply;
- **one turn** per mail (RFC 2920 §3.1: the content may be the first "command" of a group): the
  content, the dot and the next mail's MAIL, RCPT and DATA in one write, then their four replies;
- **mamoru's session**: the engine's own SMTP client (``SmtpTransport`` opening a
  ``PipelinedSession``, ``Session.send`` per mail with its deadline, replies read into results)
  sending the same mails, so the client path can be compared with the floor under it.

Each client is one ``asyncio.Protocol`` per connection that counts final reply lines and wakes
its writer once per turn: less work than any real client does. Prints the process's CPU per mail
(user and system), the best of the rounds of each way and their ratio, then one JSON line. The
sink is Postfix's ``smtp-sink`` when installed (``bench/sink.py``), else aiosmtpd.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sink import start_sink  # noqa: E402


class _Client(asyncio.Protocol):
    """Counts final reply lines ("250 ...", not "250-..."); wakes the writer when the
    expected number has come."""

    def __init__(self) -> None:
        self.tail = b""
        self.finals = 0
        self.wanted = 0
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        lines = (self.tail + data).split(b"\r\n")
        self.tail = lines.pop()
        for line in lines:
            if line[3:4] != b"-":
                if line[:1] not in (b"2", b"3"):
                    raise RuntimeError(f"the sink refused: {line!r}")
                self.finals += 1
        if self.waiter is not None and self.finals >= self.wanted and not self.waiter.done():
            self.waiter.set_result(None)

    async def replies(self, count: int) -> None:
        self.wanted += count
        if self.finals < self.wanted:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None


def _mail(size: int) -> bytes:
    line = b"X" * 76 + b"\r\n"
    body = line * max(size // len(line), 1)
    return (b"From: <school@example.jp>\r\nTo: <guardian@example.jp>\r\n"
            b"Subject: floor\r\n\r\n" + body)


ENVELOPE = (b"MAIL FROM:<bounce@example.jp>\r\nRCPT TO:<guardian@example.jp>\r\nDATA\r\n")


async def _connection(host: str, port: int, n: int, content: bytes, one_turn: bool) -> None:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(_Client, host, port)
    write = transport.write
    await client.replies(1)  # greeting
    write(b"EHLO floor.example.jp\r\n")
    await client.replies(1)
    write(ENVELOPE)
    await client.replies(3)
    for i in range(n):
        if one_turn:
            last = i == n - 1
            write(content + (b"" if last else ENVELOPE))
            await client.replies(1 if last else 4)
        else:
            write(content)
            await client.replies(1)
            if i < n - 1:
                write(ENVELOPE)
                await client.replies(3)
    write(b"QUIT\r\n")
    await client.replies(1)
    transport.close()


async def _engine_connection(host: str, port: int, n: int, mail: bytes) -> None:
    """``n`` mails through mamoru's own client, as a lane's connection sends them."""
    from engine.delivery._routing import Destination
    from engine.delivery._smtp import SmtpTransport
    from engine.delivery._transport import Envelope
    from engine.platform.config import DeliverySettings

    session = await SmtpTransport(DeliverySettings(starttls="off")).open(
        [Destination(host, port)]
    )
    if not hasattr(session, "send"):
        raise RuntimeError(f"mamoru's client could not connect: {session}")
    loop = asyncio.get_running_loop()
    for i in range(n):
        envelope = Envelope(f"b-{i}@example.jp", "guardian@example.jp", mail, wire_ready=True)
        result = await session.send(envelope, loop.time() + 60)
        if result.code != 250:
            raise RuntimeError(f"the sink refused: {result}")
    await session.close()


async def _run(host: str, port: int, messages: int, connections: int, content: bytes,
               way: str) -> dict[str, float]:
    per = [messages // connections + (1 if c < messages % connections else 0)
           for c in range(connections)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if way == "mamoru_session":
        mail = content.removesuffix(b".\r\n")
        await asyncio.gather(*(_engine_connection(host, port, n, mail) for n in per if n))
    else:
        await asyncio.gather(*(_connection(host, port, n, content, way == "one_turn")
                               for n in per if n))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    return {
        "messages": messages,
        "seconds": round(wall, 3),
        "cpu_us_per_mail": round((user + system) / messages * 1e6, 1),
        "user_us_per_mail": round(user / messages * 1e6, 1),
        "system_us_per_mail": round(system / messages * 1e6, 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--size", type=int, default=3000, help="bytes of content per mail")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.messages < 1 or args.connections < 1 or args.rounds < 1:
        parser.error("--messages, --connections and --rounds must be at least 1")
    import uvloop

    # mamoru's client imported before any round, so that no round's CPU counts the imports.
    import engine.delivery._smtp  # noqa: F401

    content = _mail(args.size) + b".\r\n"
    port = _free_port()
    sink = start_sink("127.0.0.1", port, prefer_postfix=True)
    results: dict[str, list[dict[str, float]]] = {
        "two_turns": [], "one_turn": [], "mamoru_session": [],
    }
    try:
        for r in range(args.rounds):
            for label in results:
                got = uvloop.run(_run("127.0.0.1", port, args.messages, args.connections,
                                      content, label))
                results[label].append(got)
                print(f"round {r + 1}, {label}: {got['cpu_us_per_mail']} µs of CPU per mail "
                      f"(user {got['user_us_per_mail']}, system {got['system_us_per_mail']}), "
                      f"{got['seconds']} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                      flush=True)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    best = {k: min(v, key=lambda g: g["cpu_us_per_mail"]) for k, v in results.items()}
    two = best["two_turns"]["cpu_us_per_mail"]
    ratio = round(best["one_turn"]["cpu_us_per_mail"] / two, 3)
    engine = round(best["mamoru_session"]["cpu_us_per_mail"] / two, 3)
    print(f"best: two turns {two} µs, one turn {best['one_turn']['cpu_us_per_mail']} µs, "
          f"mamoru's session {best['mamoru_session']['cpu_us_per_mail']} µs per mail "
          f"(one/two {ratio}, mamoru/two {engine})", flush=True)
    out: dict[str, Any] = {"size": len(content), "connections": args.connections, **best,
                           "one_vs_two": ratio, "mamoru_vs_two": engine, "rounds": results}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
