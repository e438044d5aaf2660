"""The command line under staff rights: `send --as`, `--api-key-file`, `broadcasts status`
and `broadcasts recipients` check the same rights as the HTTP API and write the audit log."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

from commands import config_file
from staff.conftest import World, world  # noqa: F401 - the fixture, reused
from staff.test_cli import run

from engine.platform.clock import JST
from engine.queue import State
from engine.queue.models import STATE_LABELS_JA
from engine.staff import apikeys


def config(tmp_path: Path, w: World) -> Path:
    return config_file(
        tmp_path, w.settings.database.url, "127.0.0.1:9", people_key=w.settings.people.key
    )


def body_file(tmp_path: Path) -> Path:
    p = tmp_path / "body.txt"
    p.write_text("不審者の情報です。\n", encoding="utf-8")
    return p


def send_args(tmp_path: Path, cfg: Path, *more: str) -> list[str | Path]:
    return ["send", "-c", cfg, "--sender", "school@sho1.example.jp", "--subject", "不審者情報",
            "--body-file", body_file(tmp_path), "--category", "不審者情報", *more]


async def test_send_as_a_teacher_is_within_the_teachers_classes(
    world: World, tmp_path: Path  # noqa: F811
) -> None:
    cfg = config(tmp_path, world)
    code, out, err = await run(*send_args(tmp_path, cfg, "--as", "teacher31", "--school",
                                          "sho1", "--class", "3-1"))
    assert code == 0, err
    bid = int(out.strip())
    owner = await world.api.staff.pool.fetchrow(
        "SELECT staff_id, organisation_id FROM broadcast_owners WHERE broadcast_id = $1", bid
    )
    assert owner["staff_id"] == world.staff["teacher31"]
    code, _, err = await run(*send_args(tmp_path, cfg, "--as", "teacher31", "--school", "sho1",
                                        "--class", "3-2"))
    assert code == 2 and "権限" in err, err
    code, _, err = await run(*send_args(tmp_path, cfg, "--as", "teacher31",
                                        "--to", "a@example.jp"))
    assert code == 2 and "--to" in err
    code, _, err = await run(*send_args(tmp_path, cfg, "--as", "nobody", "--school", "sho1"))
    assert code == 2 and "nobody" in err
    assert await world.count("SELECT count(*) FROM broadcasts") == 1
    entries = await world.api.staff.pool.fetch(
        "SELECT actor_id, actor_name, result FROM audit_log WHERE action = 'broadcast.create' "
        "ORDER BY seq"
    )
    assert [(e["actor_id"], e["result"]) for e in entries] == [
        (world.staff["teacher31"], "ok"), (world.staff["teacher31"], "denied"),
    ]
    assert "command line" in entries[0]["actor_name"]


async def test_an_api_key_file_has_its_schools_rights_for_status_and_recipients(
    world: World, tmp_path: Path  # noqa: F811
) -> None:
    cfg = config(tmp_path, world)
    keys = {}
    for school in ("sho1", "sho2"):
        text, _ = await apikeys.create(world.api.staff, world.orgs[school], school, None)
        keys[school] = tmp_path / f"{school}.key"
        keys[school].write_text(text + "\n", encoding="utf-8")
    code, out, err = await run(*send_args(tmp_path, cfg, "--api-key-file", keys["sho1"],
                                          "--school", "sho1", "--grade", "3"))
    assert code == 0, err
    bid = out.strip()
    code, _, err = await run(*send_args(tmp_path, cfg, "--api-key-file", keys["sho2"],
                                        "--school", "sho1"))
    assert code == 2 and "権限" in err

    code, out, err = await run("broadcasts", "status", bid, "--json", "--api-key-file",
                               keys["sho1"], "-c", cfg)
    assert code == 0, err
    data = json.loads(out)
    assert data["recipients"] == 3 and data["states"]["queued"] == 3
    assert data["may_have_arrived"] == 0
    assert data["created_at"].endswith("+09:00")
    code, _, err = await run("broadcasts", "status", bid, "--api-key-file", keys["sho2"],
                             "-c", cfg)
    assert code == 2 and "not found" in err, err

    target = tmp_path / "recipients.csv"
    code, _, err = await run("broadcasts", "recipients", bid, "--as", "admin1", "--out", target,
                             "-c", cfg)
    assert code == 0, err
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert sorted(r["宛先"] for r in rows) == [
        "hanako@ezweb.ne.jp", "jiro@softbank.ne.jp", "taro@docomo.ne.jp"
    ]
    assert {r["状態"] for r in rows} == {STATE_LABELS_JA[State.QUEUED]}
    updated = datetime.strptime(rows[0]["更新日時"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST)
    assert abs(updated - world.clock.now()) < timedelta(minutes=10)  # Japan time
    code, _, err = await run("broadcasts", "recipients", bid, "--as", "admin2", "-c", cfg)
    assert code == 2
    results = await world.api.staff.pool.fetch(
        "SELECT action, result FROM audit_log WHERE action LIKE 'broadcast.%' ORDER BY seq"
    )
    assert [(r["action"], r["result"]) for r in results] == [
        ("broadcast.create", "ok"), ("broadcast.create", "denied"),
        ("broadcast.status", "ok"), ("broadcast.status", "denied"),
        ("broadcast.recipients_csv", "ok"), ("broadcast.recipients_csv", "denied"),
    ]
