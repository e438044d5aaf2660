"""The accuracy benchmark runs on any folder of labelled mails and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bounce_accuracy.py"

QMAIL = b"""\
From: MAILER-DAEMON@mx.example.org
Subject: failure notice

<taro@example.org>:
Remote host said: 550 5.1.1 <taro@example.org>... User Unknown

<jiro@example.org>:
Remote host said: 552 5.2.2 <jiro@example.org>... Mailbox full
"""


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bounce_accuracy", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module is being executed.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_agreement_figures_as_its_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.eml").write_bytes(QMAIL)
    (tmp_path / "labels.csv").write_text(
        "file,index,status,replycode,reason,hardbounce\n"
        "a.eml,1,5.1.1,550,userunknown,true\n"
        "a.eml,2,5.2.2,552,mailboxfull,false\n"
        "a.eml,3,5.2.2,552,mailboxfull,false\n"
    )
    assert _load_bench().main(["--corpus", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["recipients"] == 3
    # The third label has no verdict at its index, so it disagrees on everything.
    assert figures["reason_agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert figures["hard_agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert figures["address_agreement"] == pytest.approx(2 / 3, abs=1e-3)


FULL = b"""\
From: MAILER-DAEMON@mx.example.org
Subject: failure notice

<hanako@example.org>:
Remote host said: 550 Sorry, the mailbox is over quota
"""

UNKNOWN = b"""\
From: MAILER-DAEMON@mx.example.org
Subject: failure notice

<taro@example.org>:
Remote host said: 550 5.1.1 <taro@example.org>... User Unknown
"""


def test_rules_only_a_left_out_file_needs_are_switched_off_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only full.eml needs the "mailbox is over quota" wording; unknown.eml has a status that
    # decides on its own. Left out, full.eml loses its rule and with it its reason.
    (tmp_path / "full-01.eml").write_bytes(FULL)
    (tmp_path / "unknown-01.eml").write_bytes(UNKNOWN)
    (tmp_path / "labels.csv").write_text(
        "file,index,status,replycode,reason,hardbounce\n"
        "full-01.eml,1,5.2.2,550,mailboxfull,false\n"
        "unknown-01.eml,1,5.1.1,550,userunknown,true\n"
    )
    assert _load_bench().main(["--corpus", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["reason_agreement"] == 1.0
    assert figures["file_out_reason_agreement"] == 0.5
    assert figures["file_out_wording_reason_agreement"] == 0.5
    assert figures["family_out_reason_agreement"] == 0.5
    assert figures["ms_per_bounce"] > 0
    assert "phrase:mailboxfull:the mailbox is over quota  (full-01.eml)" in out


def test_families_fall_wholly_in_one_part_and_both_parts_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load_bench()
    names = [f"{family}-{n:02d}.eml" for family in ("lhost-a", "lhost-b", "rhost-c", "arf")
             for n in (1, 7, 30)]
    parts: dict[str, set[str]] = {}
    for name in names:
        parts.setdefault(bench.family_of(name), set()).add(bench.part_of(name))
    assert all(len(found) == 1 for found in parts.values())
    (tmp_path / "a-01.eml").write_bytes(QMAIL)
    (tmp_path / "labels.csv").write_text(
        "file,index,status,replycode,reason,hardbounce\n"
        "a-01.eml,1,5.1.1,550,userunknown,true\n"
    )
    assert bench.main(["--corpus", str(tmp_path)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    part = bench.part_of("a-01.eml")
    assert figures[f"{part}_reason_agreement"] == 1.0
    other = "study" if part == "held" else "held"
    assert f"{other}_reason_agreement" in figures
