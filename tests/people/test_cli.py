"""The people commands as an operator runs them: separate processes, exit codes, Japanese."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from commands import config_file, mamoru
from pdf_tools import need, pages_text
from sinks import Sink

from engine.people.directory import school_year_of
from engine.platform.sealing import new_key_text

CSV = (
    "学校,学年,組,番号,氏名,連絡先1,連絡先2,グループ\n"
    "sho1,3,1,1,山田太郎,taro@docomo.ne.jp,haha@ezweb.ne.jp,\n"
    "sho1,3,2,1,佐藤花子,hanako@softbank.ne.jp,,見守り隊\n"
    "sho1,4,1,1,鈴木一郎,ichiro@example.jp,,\n"
    "sho2,3,1,1,田中次郎,jiro@example.jp,,\n"
)
BAD_ROW = "nosuch,3,1,1,誰か,dareka@example.jp,,\n"


def people_config(tmp_path: Path, db_url: str, target: str = "127.0.0.1:9") -> Path:
    return config_file(tmp_path, db_url, target, people_key=new_key_text())


async def run(*args: str | Path) -> tuple[int, str, str]:
    done = await asyncio.to_thread(mamoru, *args)
    return done.returncode, done.stdout, done.stderr


async def count(db_url: str, table: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def setup_schools(cfg: Path) -> None:
    for args in (
        ("schools", "add", "city", "みどり市教育委員会", "--kind", "教育委員会"),
        ("schools", "add", "sho1", "第一小学校", "--kind", "小学校"),
        ("schools", "add", "sho2", "第二小学校", "--kind", "elementary"),
        ("groups", "add", "見守り隊", "--school", "sho1", "--categories", "緊急,不審者情報",
         "--night", "21:00-07:00"),
    ):
        code, _, err = await run(*args, "-c", cfg)
        assert code == 0, err


@pytest.mark.slow
async def test_import_then_send_to_one_grade_reaches_exactly_its_guardians(
    tmp_path: Path, db_url: str
) -> None:
    with Sink() as sink:
        cfg = people_config(tmp_path, db_url, sink.address)
        await setup_schools(cfg)
        data = tmp_path / "meibo.csv"
        data.write_bytes((CSV + BAD_ROW).encode("cp932"))

        code, _, err = await run("accounts", "import", data, "--dry-run", "-c", cfg)
        assert code == 2 and "6 行目" in err and "nosuch" in err and "変更していません" in err
        code, _, err = await run("accounts", "import", data, "--strict", "-c", cfg)
        assert code == 2 and "何も取り込みませんでした" in err
        assert await count(db_url, "accounts") == 0

        code, out, err = await run("accounts", "import", data, "--confirmed", "-c", cfg)
        assert code == 3, err
        assert "cp932" in out and "追加 4 件" in out and "6 行目" in err
        assert await count(db_url, "accounts") == 4

        body = tmp_path / "body.txt"
        body.write_text("明日の授業参観について\n", encoding="utf-8")
        code, out, err = await run(
            "send", "-c", cfg, "--sender", "sho1@example.jp", "--subject", "授業参観",
            "--body-file", body, "--school", "sho1", "--grade", "3", "--category", "学校行事",
        )
        assert code == 0, err
        assert "宛先 3 件" in err
        code, _, err = await run("serve", "-c", cfg, "--exit-when-idle")
        assert code == 0, err
        assert sorted(r.rcpt for r in sink.handler.received) == [
            "haha@ezweb.ne.jp", "hanako@softbank.ne.jp", "taro@docomo.ne.jp",
        ]


async def test_unknown_school_grade_class_or_group_is_one_clear_line_and_nothing_is_stored(
    tmp_path: Path, db_url: str
) -> None:
    cfg = people_config(tmp_path, db_url)
    await setup_schools(cfg)
    body = tmp_path / "body.txt"
    body.write_text("本文\n", encoding="utf-8")
    send = ("send", "-c", cfg, "--sender", "a@example.jp", "--subject", "件名",
            "--body-file", body)
    for extra, expected in (
        (("--school", "nosuch"), "学校「nosuch」は登録されていません"),
        (("--school", "sho1", "--grade", "3"), "3 年生は登録されていません"),
        (("--school", "sho1", "--grade", "十"), "学年「十」"),
        (("--school", "sho1", "--class", "9-9"), "9 年生は登録されていません"),
        (("--group", "囲碁部"), "グループ「囲碁部」は登録されていません"),
        (("--grade", "3"), "--school が必要"),
        (("--school", "sho1", "--category", "雑談"), "区分「雑談」はありません"),
        (("--category", "緊急"), "no recipients"),
    ):
        code, out, err = await run(*send, *extra)
        assert code == 2, (extra, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], (extra, err)
        assert out == ""
    assert await count(db_url, "broadcasts") == 0

    for args, expected in (
        (("groups", "add", "PTA", "--school", "nosuch"), "学校「nosuch」は登録されていません"),
        (("groups", "add", "PTA", "--night", "夜"), "21:00-07:00"),
        (("groups", "add", "見守り隊", "--school", "sho1"), "既にあります"),
        (("schools", "add", "sho1", "別の学校", "--kind", "小学校"), "既に登録されています"),
        (("schools", "add", "x", "某校", "--kind", "塾"), "種別「塾」は使えません"),
        (("accounts", "export", "--school", "nosuch"), "学校「nosuch」は登録されていません"),
        (("contacts", "purge", "--school", "nosuch", "--yes"), "学校「nosuch」"),
        (("contacts", "purge", "--school", "sho1", "--all", "--yes"), "どちらか一つ"),
    ):
        code, out, err = await run(*args, "-c", cfg)
        assert code == 2, (args, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], (args, err)
    assert await count(db_url, "groups") == 1 and await count(db_url, "organisations") == 3


async def test_notices_command_writes_one_page_per_child_of_the_grade(
    tmp_path: Path, db_url: str
) -> None:
    need("pdftotext")
    cfg = people_config(tmp_path, db_url)
    await setup_schools(cfg)
    data = tmp_path / "meibo.csv"
    data.write_text(CSV, encoding="utf-8-sig")
    code, _, err = await run("accounts", "import", data, "-c", cfg)
    assert code == 0, err
    pdf = tmp_path / "notices.pdf"
    code, _, err = await run(
        "notices", "--school", "sho1", "--grade", "3", "--address", "entry@example.jp",
        "--out", pdf, "-c", cfg,
    )
    assert code == 0, err
    assert f"2 人分の登録案内を {pdf} に書き出しました" in err
    pages = await asyncio.to_thread(pages_text, pdf)
    assert len(pages) == 2
    assert "山田太郎 さんの保護者の方へ" in pages[0] and "3年1組 1番" in pages[0]
    assert "佐藤花子 さんの保護者の方へ" in pages[1] and "3年2組 1番" in pages[1]
    assert all("entry@example.jp" in page.splitlines() for page in pages)


async def test_export_purge_and_rollover_commands(tmp_path: Path, db_url: str) -> None:
    cfg = people_config(tmp_path, db_url)
    await setup_schools(cfg)
    data = tmp_path / "meibo.csv"
    data.write_text(CSV, encoding="utf-8-sig")
    code, _, err = await run("accounts", "import", data, "-c", cfg)
    assert code == 0, err

    out_file = tmp_path / "export.csv"
    code, _, err = await run("accounts", "export", "--school", "sho1", "--out", out_file, "-c", cfg)
    assert code == 0, err
    raw = out_file.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "山田太郎".encode() in raw
    assert b"jiro@example.jp" not in raw and raw.count(b"\r\n") == 4

    code, _, err = await run(
        "notices", "--school", "sho1", "--grade", "3", "--class", "7", "--address",
        "entry@example.jp", "--out", tmp_path / "none.pdf", "-c", cfg,
    )
    assert code == 2 and "「7」組はありません" in err and not (tmp_path / "none.pdf").exists()

    code, out, _ = await run("groups", "list", "-c", cfg)
    assert code == 0 and "見守り隊" in out and "21:00-07:00" in out

    code, out, err = await run("rollover", "--to-year", "1999", "-c", cfg)
    assert code == 2 and "--to-year" in err
    next_year = str(school_year_of(datetime.now(UTC)) + 1)
    code, out, err = await run("rollover", "--to-year", next_year, "--dry-run", "-c", cfg)
    assert code == 0, err
    assert "進級 4 人、卒業 0 人" in out and "変更なし" in out
    farewell = tmp_path / "farewell.txt"
    farewell.write_text("ご卒業おめでとうございます。\n", encoding="utf-8")
    code, out, err = await run(
        "rollover", "--to-year", next_year, "--dry-run", "--farewell-body", farewell,
        "--sender", "kyouiku@example.jp", "-c", cfg,
    )
    assert code == 0 and "卒業生の連絡先 0 件" in out, err
    code, _, err = await run(
        "rollover", "--to-year", next_year, "--sender", "kyouiku@example.jp", "-c", cfg
    )
    assert code == 2 and "--farewell-body" in err

    code, _, err = await run("contacts", "purge", "--school", "sho1", "-c", cfg)
    assert code == 2 and "--yes" in err
    assert await count(db_url, "accounts") == 4
    code, out, err = await run("contacts", "purge", "--school", "sho1", "--yes", "-c", cfg)
    assert code == 0, err
    assert "アカウント 3 件" in out and "連絡先 4 件" in out
    assert await count(db_url, "accounts") == 1
