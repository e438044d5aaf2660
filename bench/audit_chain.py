"""Audit log and sign-in benchmark: appending chained entries, verifying the chain, argon2.

    python bench/audit_chain.py [--entries 20000] [--database-url URL]

Without --database-url it starts an embedded PostgreSQL in a temporary directory. Appends
``--entries`` entries one by one (each its own transaction under the chain's advisory lock, as
the API writes them), then verifies the whole chain, and times one argon2id password hash with
argon2-cffi's defaults. Prints the figures and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.platform.clock import SystemClock  # noqa: E402
from engine.platform.config import DatabaseSettings  # noqa: E402
from engine.platform.db import create_pool  # noqa: E402
from engine.staff import audit  # noqa: E402
from engine.staff.models import ActorKind, Principal, Role  # noqa: E402
from engine.staff.passwords import hash_password, verify_password  # noqa: E402


async def main(args: argparse.Namespace) -> dict[str, float]:
    url = args.database_url
    if not url:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        tmp = tempfile.mkdtemp(prefix="mamoru-bench-pg-", dir="/tmp")
        server = pgserver.get_server(tmp, cleanup_mode="delete")
        url = server.get_uri()
    pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2), url)
    key = secrets.token_bytes(32)
    clock = SystemClock()
    actor = Principal(ActorKind.STAFF, 1, "bench.teacher", Role.TEACHER, 2, address="127.0.0.1")
    t0 = time.perf_counter()
    for i in range(args.entries):
        await audit.record(pool, key, clock.now(), actor, "broadcast.recipients",
                           f"broadcast {i}")
    append = time.perf_counter() - t0
    t0 = time.perf_counter()
    v = await audit.verify(pool, key)
    verify = time.perf_counter() - t0
    assert v.ok and v.checked >= args.entries
    t0 = time.perf_counter()
    stored = await hash_password("correct horse battery")
    hashing = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert await verify_password(stored, "correct horse battery")
    checking = time.perf_counter() - t0
    await pool.close()
    result = {
        "entries": args.entries,
        "append_per_second": round(args.entries / append),
        "verify_seconds": round(verify, 3),
        "verify_per_second": round(v.checked / verify),
        "argon2_hash_ms": round(hashing * 1000, 1),
        "argon2_verify_ms": round(checking * 1000, 1),
    }
    print(f"appended {args.entries} entries in {append:.2f} s "
          f"({result['append_per_second']}/s, one transaction each)")
    print(f"verified {v.checked} entries in {verify:.2f} s ({result['verify_per_second']}/s)")
    print(f"argon2id hash {result['argon2_hash_ms']} ms, verify {result['argon2_verify_ms']} ms")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--database-url", default="")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
