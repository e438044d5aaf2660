"""Staff send a broadcast with files through the HTTP API: stored sealed with the broadcast,
listed with their download counts within the rights, refused (413, 415) with nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from .conftest import EXE, PDF, PNG, FilesWorld, office


async def _stored(fw: FilesWorld) -> tuple[int, int]:
    return (await fw.w.count("SELECT count(*) FROM broadcasts"),
            await fw.w.count("SELECT count(*) FROM attachments"))


async def test_a_broadcast_with_files_is_stored_with_them_and_links_to_the_page(
    fw: FilesWorld,
) -> None:
    token = await fw.w.login("admin1")
    r = await fw.send(token, [("学年だより 11月.pdf", PDF, "application/pdf"),
                              ("運動会の写真.png", PNG, "image/png"),
                              ("名簿.xlsx", office("xlsx"), "application/octet-stream")])
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["recipients"] == 2
    assert [(f["position"], f["name"], f["media_type"], f["size"]) for f in made["files"]] == [
        (1, "学年だより 11月.pdf", "application/pdf", len(PDF)),
        (2, "運動会の写真.png", "image/png", len(PNG)),
        (3, "名簿.xlsx",
         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", len(office("xlsx"))),
    ]
    assert all(f["downloads"] == 0 and f["withdrawn_at"] is None for f in made["files"])
    bid = made["broadcast_id"]
    assert await fw.w.count(
        "SELECT count(*) FROM broadcasts WHERE id = $1 AND personal_page", bid
    ) == 1
    # The same list later, for whoever may see the broadcast.
    async with fw.client(token) as c:
        listed = await c.get(f"/api/staff/broadcasts/{bid}/files")
    assert listed.status_code == 200 and [f["name"] for f in listed.json()] == [
        "学年だより 11月.pdf", "運動会の写真.png", "名簿.xlsx"]
    # The upload is in the audit log, by kind and size (names can identify a family).
    row = await fw.w.api.staff.pool.fetchrow(
        "SELECT detail, result FROM audit_log WHERE action = 'attachment.upload' AND object = $1",
        f"broadcast {bid}",
    )
    assert row["result"] == "ok"
    assert json.loads(row["detail"])["files"] == 3 and "写真" not in row["detail"]


async def test_too_many_or_too_large_files_are_413_and_store_nothing(fw: FilesWorld) -> None:
    token = await fw.w.login("admin1")
    before = await _stored(fw)
    big = b"%PDF-1.4\n" + b"0" * (64 * 1024)
    cases = [
        ([("大きい.pdf", big, "application/pdf")], "1 ファイル"),
        ([(f"{n}.pdf", PDF, "application/pdf") for n in range(4)], "3 個まで"),
        ([(f"{n}.pdf", b"%PDF-" + b"1" * 40_000, "application/pdf") for n in range(3)],
         "合わせて"),
        # Far over the whole limit: refused by its length before it is read.
        ([("巨大.pdf", b"%PDF-" + b"2" * 600_000, "application/pdf")], "大きすぎます"),
    ]
    for files, words in cases:
        r = await fw.send(token, files)
        assert r.status_code == 413, (words, r.text)
        assert r.json()["error"] == "too_large" and words in r.json()["message"], r.text
        assert "(" in r.json()["message"]  # the English after the Japanese
    # Sent without a length (chunked): refused while it arrives, at the limit.
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-").encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        for _ in range(40):  # 40 x 64 KB: past max_total + the room for the form
            yield b"3" * 65536

    async with fw.client(token) as c:
        r = await c.post("/api/staff/broadcasts/with-files", content=chunks(),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text
    assert await _stored(fw) == before
    refused = await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'attachment.upload' AND result = 'failed'"
    )
    assert refused == len(cases) + 1


async def test_a_forbidden_kind_is_415_told_by_content_not_by_name(fw: FilesWorld) -> None:
    token = await fw.w.login("admin1")
    before = await _stored(fw)
    for files, words in [
        ([("お知らせ.pdf", EXE, "application/pdf")], "中身は PDF ではありません"),
        ([("setup.exe", EXE, "application/octet-stream")], "送れない種類"),
        ([("写真.pdf", PNG, "application/pdf")], "名前と中身"),
        ([("マクロ.docx", office("docx", macro=True), "application/msword")], "マクロを含む"),
        # One bad file among good ones: none of them is stored.
        ([("ok.pdf", PDF, "application/pdf"), ("bad.png", EXE, "image/png")],
         "中身は PNG 画像 ではありません"),
    ]:
        r = await fw.send(token, files)
        assert r.status_code == 415, (words, r.text)
        assert r.json()["error"] == "unsupported_type" and words in r.json()["message"]
    assert await _stored(fw) == before


async def test_bad_forms_are_4xx_with_nothing_stored(fw: FilesWorld) -> None:
    token = await fw.w.login("admin1")
    before = await _stored(fw)
    async with fw.client(token) as c:
        no_files = await c.post(
            "/api/staff/broadcasts/with-files",
            files=[("broadcast", (None, json.dumps({"sender": "a@example.jp"})))],
        )
        # A file under another field's name is refused by that name, not ignored.
        other = await c.post("/api/staff/broadcasts/with-files",
                             data={"broadcast": json.dumps({"sender": "a@example.jp"})},
                             files=[("other", ("a.pdf", PDF, "application/pdf"))])
        as_json = await c.post("/api/staff/broadcasts/with-files", json={"x": 1})
        bad_json = await c.post("/api/staff/broadcasts/with-files", data={"broadcast": "{"},
                                files=[("files", ("a.pdf", PDF, "application/pdf"))])
    assert no_files.status_code == 422 and "ファイルがありません" in no_files.json()["message"]
    assert other.status_code == 422 and "other: 知らない項目です" in other.json()["message"]
    assert as_json.status_code == 422 and "multipart" in as_json.json()["message"]
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "malformed"
    bad_name = await fw.send(token, [("長" * 130 + ".pdf", PDF, "application/pdf")])
    empty = await fw.send(token, [("空.pdf", b"", "application/pdf")])
    no_audience = await fw.send(token, [("a.pdf", PDF, "application/pdf")], audience={})
    assert bad_name.status_code == 422 and "120 文字まで" in bad_name.json()["message"]
    assert empty.status_code == 422 and "空のファイル" in empty.json()["message"]
    assert no_audience.status_code == 422 and "配信先" in no_audience.json()["message"]
    assert await _stored(fw) == before
    # Each refusal is in the audit log: the form's own under attachment.upload, the
    # broadcast's (no audience) under broadcast.create.
    assert await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'attachment.upload' AND result = 'failed'"
    ) == 5
    assert await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'broadcast.create' AND result = 'failed'"
    ) == 1


async def test_another_school_or_teacher_can_neither_list_nor_withdraw(fw: FilesWorld) -> None:
    made = (await fw.send(await fw.w.login("admin1"),
                          [("a.pdf", PDF, "application/pdf")])).json()
    bid = made["broadcast_id"]
    for login in ("admin2", "teacher31"):
        async with fw.client(await fw.w.login(login)) as c:
            listed = await c.get(f"/api/staff/broadcasts/{bid}/files")
            gone = await c.delete(f"/api/staff/broadcasts/{bid}/files/1")
        assert listed.status_code == 404 and gone.status_code == 404, login
        assert "ありません" in listed.json()["message"]
    # The board sees every school's broadcasts.
    async with fw.client(await fw.w.login("board")) as c:
        assert (await c.get(f"/api/staff/broadcasts/{bid}/files")).status_code == 200
    assert await fw.w.count(
        "SELECT count(*) FROM attachments WHERE content_sealed IS NOT NULL"
    ) == 1
    denied = await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'attachment.withdraw' AND result = 'denied'"
    )
    assert denied == 2


async def test_a_teacher_sends_files_to_their_class_and_withdraws_one(fw: FilesWorld) -> None:
    token = await fw.w.login("teacher31")
    made = (await fw.send(token, [("a.pdf", PDF, "application/pdf"),
                                  ("b.txt", "持ち物: 体操服\n".encode(), "text/plain")])).json()
    bid = made["broadcast_id"]
    assert made["files"][1]["media_type"] == "text/plain; charset=UTF-8"
    async with fw.client(token) as c:
        r = await c.delete(f"/api/staff/broadcasts/{bid}/files/2")
        again = await c.delete(f"/api/staff/broadcasts/{bid}/files/2")
    assert r.status_code == 200 and r.json()["withdrawn_at"] is not None
    assert again.status_code == 404
    assert await fw.w.count(
        "SELECT count(*) FROM attachments WHERE broadcast_id = $1 AND content_sealed IS NULL", bid
    ) == 1
    assert await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'attachment.withdraw' AND result = 'ok' "
        "AND object = $1", f"broadcast {bid} file 2",
    ) == 1


async def test_an_application_retry_with_the_same_key_and_files_stores_them_once(
    fw: FilesWorld,
) -> None:
    async with fw.client(await fw.w.login("board")) as c:
        key = (await c.post("/api/staff/api-keys", json={
            "name": "学校連絡システム", "organisation_id": fw.w.orgs["sho1"],
        })).json()["key"]
    broadcast = json.dumps({
        "sender": "sho1@example.jp", "subject": "学年だより", "body": "添付をご覧ください。",
        "audience": {"classes": [fw.w.classes["sho1-3-1"]]},
    }, ensure_ascii=False)

    async def submit(idem: str | None, content: bytes = PDF) -> httpx.Response:
        headers = {"Idempotency-Key": idem} if idem else {}
        async with fw.client(key) as c:
            return await c.post(
                "/api/apps/broadcasts/with-files", headers=headers,
                data={"broadcast": broadcast},
                files=[("files", ("学年だより.pdf", content, "application/pdf"))],
            )

    first = await submit("req-1")
    assert first.status_code == 201, first.text
    again = await submit("req-1")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["broadcast_id"] == first.json()["broadcast_id"]
    assert again.json()["files"][0]["name"] == "学年だより.pdf"
    other_file = await submit("req-1", PDF + b"% changed\n")
    assert other_file.status_code == 409 and "冪等キー" in other_file.json()["message"]
    no_key = await submit(None)
    assert no_key.status_code == 422
    assert await _stored(fw) == (1, 1)
    assert await fw.w.count(
        "SELECT count(*) FROM audit_log WHERE action = 'attachment.upload' AND result = 'ok'"
    ) == 1
