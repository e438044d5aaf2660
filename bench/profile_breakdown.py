"""Sorts py-spy's collapsed stacks of a runner process into the stages of one mail's way.

    python bench/profile_breakdown.py DIR/worker-0.txt [DIR/worker-1.txt ...] [--messages N]

Reads the files `bench/peer_postfix_dkim.py --py-spy DIR` writes (py-spy ``--format raw``:
one stack per line, frames from the outside in, then the sample count) and prints, per stage,
the share of samples and, with ``--messages``, microseconds per mail (samples x the sampling
interval / mails). Each sample goes to the first stage in `STAGES` (most specific first) with a
marker anywhere in its stack, so a signature inside the render counts as signing, not as render.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

# (stage, markers), most specific first: the first stage with a marker in any frame of a stack
# takes the sample.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start-up (imports, connecting)", ("_find_and_load", "Engine.open", "run_one (engine")),
    ("RSA private-key step", ("sign_rsa (engine/message/", "sign_ed25519 (engine/message/",
                              "sign_digest")),
    ("DKIM: header hash, canonicalisation, tags", ("DkimSigner.sign_parts",
                                                   "DkimSigner.sign_fields")),
    ("DKIM: body hash", ("DkimSigner.prepare_body",)),
    ("render: header lines, links, body encoding", ("MessageTemplate.render", "return_path")),
    ("SMTP client (pipelining, aiosmtplib)", ("engine/delivery/_pipelining.py",
                                             "engine/delivery/_smtp",
                                             "engine/delivery/_transport.py",
                                             "aiosmtplib")),
    ("shaper", ("engine/throttle",)),
    ("claim (query, broadcast cache, spawning)", ("Queue.claim", "Runner._claim_once",
                                                 "Runner._start", "BroadcastCache.load")),
    ("route and lane dispatch", ("Runner._route", "Lanes.dispatch", "Router.route")),
    ("outcome: build and hold", ("Lanes._finish", "Recorder.add", "Outcomes.")),
    ("outcome: write (batched statements)", ("Recorder._flush_locked", "Recorder.flush",
                                             "Queue.record", "Queue.note")),
    ("lanes: take, next, wait", ("Lanes.",)),
    ("upkeep, reporter, leases", ("Upkeep.", "Reporter.", "renew_stale_leases")),
    ("other engine code", ("engine/",)),
    ("asyncpg (outside the stages above)", ("asyncpg",)),
)
LOOP = "event loop itself (uvloop in C: I/O, callbacks; idle when sampled with --idle)"


def stage_of(stack: str) -> str:
    for stage, markers in STAGES:
        if any(marker in stack for marker in markers):
            return stage
    return LOOP


def breakdown(paths: list[Path]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                counts[stage_of(stack)] += int(count)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--messages", type=int, default=0, help="mails sent in the run")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    counts = breakdown(args.files)
    total = sum(counts.values()) or 1
    rows = {}
    for stage, n in counts.most_common():
        per_mail = n / args.rate / args.messages * 1e6 if args.messages else 0.0
        rows[stage] = round(per_mail, 1)
        extra = f"{per_mail:7.1f} µs/mail" if args.messages else ""
        print(f"{n / total:6.1%} {extra}  {stage}")
    print(json.dumps({"samples": total, "us_per_mail": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
