"""Fault scenarios at scale: what a typhoon night does to one broadcast.

    python bench/faults.py [--recipients 5000] [--outage 20] [--max-age 60] [--only NAME ...]

Runs, each on a fresh database of its own embedded PostgreSQL and a loopback receiver that
records every Message-ID: an injected client error in the outcome writer, a database restart
and an outage of ``--outage`` seconds mid-broadcast, a receiver that answers 421 at the
greeting in bursts, resets every 25th DATA and never answers 1% of the recipients (with
``max_age = --max-age`` and shaping on), and a runner killed with SIGKILL whose leases another
runner takes over (also while the database is stopped, and while the receiver misbehaves).
Prints per scenario: sent, received, duplicates, lost, stuck and the seconds
until every delivery was final, then one JSON line with all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import faults  # noqa: E402

SCENARIOS = (
    "writer", "restart", "outage", "receiver", "sigkill", "sigkill-outage", "sigkill-receiver",
)


async def main(args: argparse.Namespace) -> list[faults.Report]:
    pg = faults.OwnPostgres()
    n = args.recipients
    reports: list[faults.Report] = []
    try:
        for name in args.only or SCENARIOS:
            if name == "writer":
                r = await faults.scenario_writer_error(pg, n)
            elif name == "restart":
                r = await faults.scenario_database(pg, n, outage=0)
            elif name == "outage":
                r = await faults.scenario_database(pg, n, outage=args.outage)
            elif name == "receiver":
                r = await faults.scenario_receiver(pg, n, args.max_age)
            else:
                during = name.partition("-")[2]
                with tempfile.TemporaryDirectory() as tmp:
                    r = await faults.scenario_sigkill(pg, n, Path(tmp), during, args.max_age)
            print(r.line(), flush=True)
            reports.append(r)
    finally:
        pg.close()
    return reports


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--max-age", type=float, default=60.0)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS)
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps([dataclasses.asdict(r) for r in result], ensure_ascii=False))
