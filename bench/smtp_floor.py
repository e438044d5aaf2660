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
  content, the dot and the next mail's MAIL, RCPT and DATA in one write, then their four replies.

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


async def _run(host: str, port: int, messages: int, connections: int, content: bytes,
               one_turn: bool) -> dict[str, float]:
    per = [messages // connections + (1 if c < messages % connections else 0)
           for c in range(connections)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, n, content, one_turn) for n in per if n))
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

    content = _mail(args.size) + b".\r\n"
    port = _free_port()
    sink = start_sink("127.0.0.1", port, prefer_postfix=True)
    results: dict[str, list[dict[str, float]]] = {"two_turns": [], "one_turn": []}
    try:
        for r in range(args.rounds):
            for label in ("two_turns", "one_turn"):
                got = uvloop.run(_run("127.0.0.1", port, args.messages, args.connections,
                                      content, label == "one_turn"))
                results[label].append(got)
                print(f"round {r + 1}, {label}: {got['cpu_us_per_mail']} µs of CPU per mail "
                      f"(user {got['user_us_per_mail']}, system {got['system_us_per_mail']}), "
                      f"{got['seconds']} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                      flush=True)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    best = {k: min(v, key=lambda g: g["cpu_us_per_mail"]) for k, v in results.items()}
    ratio = round(best["one_turn"]["cpu_us_per_mail"] / best["two_turns"]["cpu_us_per_mail"], 3)
    print(f"best: two turns {best['two_turns']['cpu_us_per_mail']} µs, one turn "
          f"{best['one_turn']['cpu_us_per_mail']} µs per mail (one/two {ratio})", flush=True)
    out: dict[str, Any] = {"size": len(content), "connections": args.connections, **best,
                           "one_vs_two": ratio, "rounds": results}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
