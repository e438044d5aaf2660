"""Measure the bounce classifier against a labelled folder of bounce mails.

Usage (from the repository root)::

    .venv/bin/python bench/bounce_accuracy.py --corpus /path/to/bounces

The folder holds ``*.eml`` files and a ``labels.csv`` with the columns
``file,index,status,replycode,reason,hardbounce``; ``index`` is the 1-based position of the
recipient among the verdicts of that file. Every labelled recipient is compared with the verdict
``parse_bounce`` returns at the same position:

- reason agreement: the verdict's ``reason`` equals the label's ``reason``;
- hard agreement: the verdict's ``hard`` equals the label's ``hardbounce``;
- address agreement: labels.csv has no address column, so a labelled recipient counts as agreeing
  when the parser produced a verdict at that index whose recipient is a syntactically valid
  address (exactly one @, a non-empty local part and a domain containing a dot).

A missing verdict counts as a disagreement on all three. The script prints the mismatches
(expected → got, with counts), per-reason agreement, and as its last line one JSON object:
``{"recipients": N, "reason_agreement": R, "hard_agreement": H, "address_agreement": A}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

# Run from the repository root as a plain script: make the project importable the way the
# engine imports it, without installing anything.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.bounce import BounceReport, parse_bounce  # noqa: E402
from engine.bounce.mime import is_valid_address  # noqa: E402


def _load_labels(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row.get("file")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", required=True, type=Path, help="folder of .eml + labels.csv")
    parser.add_argument("--verbose", action="store_true", help="list every mismatching file")
    args = parser.parse_args(argv)
    corpus: Path = args.corpus

    reports: dict[str, BounceReport] = {}
    for path in sorted(corpus.glob("*.eml")):
        reports[path.name] = parse_bounce(path.read_bytes())

    labels = _load_labels(corpus)
    reason_ok = hard_ok = address_ok = 0
    confusion: Counter[tuple[str, str]] = Counter()
    per_reason: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in labels:
        report = reports.get(row["file"])
        index = int(row["index"]) - 1
        verdict = None
        if report is not None and 0 <= index < len(report.verdicts):
            verdict = report.verdicts[index]
        expected = row["reason"]
        got = verdict.reason if verdict else "(none)"
        per_reason[expected][1] += 1
        if got == expected:
            reason_ok += 1
            per_reason[expected][0] += 1
        else:
            confusion[(expected, got)] += 1
            if args.verbose:
                diag = verdict.diagnostic[:150] if verdict else ""
                print(f"  {row['file']}#{row['index']}: {expected} -> {got}  {diag}")
        if verdict is not None and verdict.hard == (row["hardbounce"].lower() == "true"):
            hard_ok += 1
        if verdict is not None and is_valid_address(verdict.recipient):
            address_ok += 1

    total = len(labels)
    print("Mismatches (expected -> got: count)")
    for (expected, got), count in confusion.most_common():
        print(f"  {expected:>16} -> {got:<16} {count}")
    print("Per-reason agreement")
    for reason, (ok, n) in sorted(per_reason.items(), key=lambda kv: -kv[1][1]):
        print(f"  {reason:>16} {ok:>3}/{n:<3} {ok / n:.2f}")
    kinds = Counter(report.kind for report in reports.values())
    print("Kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    ratio = (lambda n: round(n / total, 4)) if total else (lambda n: 0.0)
    print(
        json.dumps(
            {
                "recipients": total,
                "reason_agreement": ratio(reason_ok),
                "hard_agreement": ratio(hard_ok),
                "address_agreement": ratio(address_ok),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
