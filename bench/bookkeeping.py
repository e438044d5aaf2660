"""The runner's CPU per mail around the send: everything but the socket work and the signature.

    python bench/bookkeeping.py [--messages 20000] [--rounds 3] [--no-dkim] [--database-url URL]

Issue 25's goal (≤ 150 µs per mail besides the RSA step) is judged by
``bench/peer_postfix_dkim.py``, whose figure moves with this shared machine by ±10 %: too much
to see a cut of a few microseconds. This runs one runner in this process, against its embedded
PostgreSQL, with an in-process transport whose sessions answer every mail "250" on the next turn
of the event loop (no socket, no sink), and a personal, signed broadcast of ``--messages``
recipients fanned out before each round. It times, with this process's CPU clock:

- the whole run, from the first claim to the last recorded outcome (imports and fan-out left
  out; PostgreSQL's own CPU is another process's);
- ``MessageTemplate.render_wire`` (the mail's bytes and its DKIM signature), and inside it the
  private-key step, each around every call.

What is left — claims decoded, lanes, the shaper's token and verdict, outcomes classified,
recorded and written, counters, the event loop — is the bookkeeping, printed per mail beside the
render (RSA taken out) and the RSA step. Rounds alternate nothing: run it on two trees in turn
to compare code. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402

from engine.delivery._routing import Destination  # noqa: E402
from engine.delivery._transport import Envelope, SendResult, SourceAddress  # noqa: E402
from engine.queue.models import Outcome  # noqa: E402


class _Session:
    """Takes every mail: "250" on the next turn of the event loop, as a reply would come."""

    usable = True

    def __init__(self) -> None:
        self._ok = SendResult(Outcome.DELIVERED, 250, "2.0.0", "Ok: queued", "DATA",
                              "127.0.0.1:25", False)

    async def send(self, envelope: Envelope, deadline: float | None = None) -> SendResult:
        await asyncio.sleep(0)
        return self._ok

    async def close(self) -> None:
        return None


class _Transport:
    async def open(self, destinations: Sequence[Destination],
                   source: SourceAddress | None = None, *,
                   tls_site: str | None = None) -> _Session:
        return _Session()


def _timed(counter: list[float], call: Any) -> Any:
    """``call`` with its thread CPU time added to ``counter[0]``."""
    clock = time.thread_time

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return call(*args, **kwargs)
        finally:
            counter[0] += clock() - started

    return timed


async def _round(settings: Any, n: int) -> dict[str, float]:
    from engine.delivery.context import Engine
    from engine.message import compose, dkim

    rendering, signing = [0.0], [0.0]
    render_wire = compose.MessageTemplate.render_wire
    load_key = dkim.load_key

    def timed_load(key: Any) -> Any:
        loaded = load_key(key)
        return replace(loaded, sign_digest=_timed(signing, loaded.sign_digest))

    compose.MessageTemplate.render_wire = _timed(rendering, render_wire)  # type: ignore[method-assign]
    dkim.load_key = timed_load  # type: ignore[assignment]
    try:
        engine = await Engine.open(settings)  # the schema first, then the fan-out
        try:
            await throughput.enqueue(settings, n)
            runner = await engine.runner(transport=_Transport())
            started = time.process_time()
            stats = await runner.run(exit_when_idle=True)
            whole = time.process_time() - started
        finally:
            await engine.close()
    finally:
        compose.MessageTemplate.render_wire = render_wire  # type: ignore[method-assign]
        dkim.load_key = load_key
    if stats.delivered != n:
        raise RuntimeError(f"{stats.delivered} of {n} delivered")
    per = 1e6 / n
    return {
        "cpu_us_per_mail": round(whole * per, 1),
        "rsa_us": round(signing[0] * per, 1),
        "render_us": round((rendering[0] - signing[0]) * per, 1),
        "bookkeeping_us": round((whole - rendering[0]) * per, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-dkim", action="store_true", help="unsigned mails")
    parser.add_argument("--database-url", default=None,
                        help="an empty database to use (default: an embedded server of its own)")
    args = parser.parse_args()
    if args.messages < 1 or args.rounds < 1:
        parser.error("--messages and --rounds must be at least 1")
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver
    import uvloop

    with tempfile.TemporaryDirectory(prefix="mamoru-bookkeeping-") as tmp:
        root = Path(tmp)
        db_url = args.database_url or pgserver.get_server(
            root / "pg", cleanup_mode="delete").get_uri()
        settings = throughput.bench_settings(db_url, "127.0.0.1:25",
                                             None if args.no_dkim else root / "keys")
        settings = replace(settings, http=replace(settings.http,
                                                  public_url="https://mail.city.example.jp"))
        rounds = []
        for r in range(args.rounds):
            got = uvloop.run(_round(settings, args.messages))
            rounds.append(got)
            print(f"round {r + 1}: {got['cpu_us_per_mail']} µs of CPU per mail = bookkeeping "
                  f"{got['bookkeeping_us']} + render {got['render_us']} + RSA {got['rsa_us']}; "
                  f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    best = min(rounds, key=lambda g: g["bookkeeping_us"])
    print(f"best bookkeeping {best['bookkeeping_us']} µs per mail, render "
          f"{min(g['render_us'] for g in rounds)} µs (RSA taken out)", flush=True)
    print(json.dumps({"messages": args.messages, "best": best, "rounds": rounds}))


if __name__ == "__main__":
    main()
