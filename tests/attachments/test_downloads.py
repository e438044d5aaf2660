"""Guardians fetch a broadcast's files through their personal page's token, over the real
server: the right bytes with safe headers, each use logged; forged, foreign, expired,
withdrawn links and contacts who left get a plain page (404/410) and no file."""

from __future__ import annotations

from urllib.parse import unquote

from engine.message.links import PAGE
from engine.people.contacts import leave

from .conftest import PDF, PNG, FilesWorld

TEXT = "持ち物：体操服、水筒\n集合 8:15\n".encode()


async def _broadcast(fw: FilesWorld) -> tuple[int, dict[str, int]]:
    made = (await fw.send(await fw.w.login("admin1"), [
        ("学年だより 11月.pdf", PDF, "application/pdf"),
        ("A&B <持ち物>.txt".replace("<", "").replace(">", ""), TEXT, "text/plain"),
        ("運動会.png", PNG, "image/png"),
    ])).json()
    return made["broadcast_id"], await fw.deliveries(made["broadcast_id"])


async def test_a_recipient_downloads_a_file_with_safe_headers_and_the_use_is_logged(
    fw: FilesWorld,
) -> None:
    bid, deliveries = await _broadcast(fw)
    page = fw.page(deliveries["taro@docomo.ne.jp"])
    async with fw.client() as c:
        r = await c.get(f"{page}/files/1")
        text = await c.get(f"{page}/files/2")
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert disposition.encode("ascii")  # the header itself is ASCII
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == "学年だより 11月.pdf"
    assert text.content == TEXT and text.headers["content-type"] == "text/plain; charset=UTF-8"
    rows = await fw.w.api.staff.pool.fetch(
        "SELECT a.position, d.delivery_id, d.network FROM attachment_downloads d "
        "JOIN attachments a ON a.id = d.attachment_id ORDER BY a.position"
    )
    assert [(r["position"], r["delivery_id"], r["network"]) for r in rows] == [
        (1, deliveries["taro@docomo.ne.jp"], "127.0.0.0/24"),
        (2, deliveries["taro@docomo.ne.jp"], "127.0.0.0/24"),
    ]
    # Staff see the counts: two downloads of file 1 by two recipients after the second one.
    async with fw.client() as c:
        await c.get(f"{fw.page(deliveries['hanako@ezweb.ne.jp'])}/files/1")
    async with fw.client(await fw.w.login("admin1")) as c:
        files = (await c.get(f"/api/staff/broadcasts/{bid}/files")).json()
    assert [(f["downloads"], f["recipients"]) for f in files] == [(2, 2), (1, 1), (0, 0)]


async def test_the_files_page_lists_names_escaped_with_sizes_and_links(fw: FilesWorld) -> None:
    _, deliveries = await _broadcast(fw)
    page = fw.page(deliveries["hanako@ezweb.ne.jp"])
    async with fw.client() as c:
        r = await c.get(f"{page}/files")
    assert r.status_code == 200 and "添付資料" in r.text
    assert f'href="{page}/files/1"' in r.text and "学年だより 11月.pdf" in r.text
    assert "A&amp;B 持ち物.txt" in r.text and "A&B" not in r.text
    assert "KB" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    # Listing is not downloading.
    assert await fw.w.count("SELECT count(*) FROM attachment_downloads") == 0


async def test_forged_foreign_and_missing_links_get_a_404_page(fw: FilesWorld) -> None:
    _, deliveries = await _broadcast(fw)
    page = fw.page(deliveries["taro@docomo.ne.jp"])
    # A broadcast without files: its recipient's token opens none of the other's files.
    async with fw.client(await fw.w.login("admin1")) as c:
        plain = (await c.post("/api/staff/broadcasts", json={
            "sender": "sho1@example.jp", "subject": "お知らせ", "body": "本文",
            "audience": {"classes": [fw.w.classes["sho1-3-1"]]},
        })).json()["broadcast_id"]
    other = fw.page((await fw.deliveries(plain))["taro@docomo.ne.jp"])
    token = page.removeprefix("/m/")
    forged = "/m/" + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    unsub = "/m/" + fw.site.links.token("unsubscribe", deliveries["taro@docomo.ne.jp"],
                                          int(fw.w.clock.now().timestamp()) + 3600)
    async with fw.client() as c:
        for path in (f"{forged}/files/1", f"{other}/files/1", f"{page}/files/4",
                     f"{page}/files/0", f"{page}/files/x", f"{unsub}/files/1",
                     "/m/garbage/files/1", f"{fw.page(999_999)}/files/1"):
            r = await c.get(path)
            assert r.status_code == 404, path
            assert "この資料はありません" in r.text and r.headers["content-type"].startswith(
                "text/html"), path
        assert (await c.get(f"{other}/files")).text.count("添付資料はありません") == 1
    assert await fw.w.count("SELECT count(*) FROM attachment_downloads") == 0


async def test_expired_withdrawn_and_left_get_a_410_page(fw: FilesWorld) -> None:
    bid, deliveries = await _broadcast(fw)
    taro, hanako = deliveries["taro@docomo.ne.jp"], deliveries["hanako@ezweb.ne.jp"]
    expired_token = "/m/" + fw.site.links.token(
        PAGE, taro, int(fw.w.clock.now().timestamp()) - 1
    )
    async with fw.client(await fw.w.login("admin1")) as c:
        assert (await c.delete(f"/api/staff/broadcasts/{bid}/files/3")).status_code == 200
    await leave(fw.w.api.people, "hanako@ezweb.ne.jp")
    async with fw.client() as c:
        gone = await c.get(f"{expired_token}/files/1")
        withdrawn = await c.get(f"{fw.page(taro)}/files/3")
        left = await c.get(f"{fw.page(hanako)}/files/1")
        listed = await c.get(f"{fw.page(taro)}/files")
    assert gone.status_code == 410 and "公開期間は終わりました" in gone.text
    assert withdrawn.status_code == 410 and "取り下げました" in withdrawn.text
    assert left.status_code == 410 and "配信は停止されている" in left.text
    assert "運動会.png" in listed.text and "取り下げられました" in listed.text
    assert f"{fw.page(taro)}/files/3" not in listed.text
    # The link's own time is not all: the file's period ([attachments] link_days) ends too.
    fw.w.clock.advance(31 * 86400)
    async with fw.client() as c:
        late = await c.get(f"{fw.page(taro)}/files/1")
        late_list = await c.get(f"{fw.page(taro)}/files")
    assert late.status_code == 410 and "公開期間は終わりました" in late.text
    assert late_list.status_code == 410
    assert await fw.w.count("SELECT count(*) FROM attachment_downloads") == 0


def test_the_include_shows_a_note_instead_of_files_escaped_and_nothing_without_either() -> None:
    from admin_api.templating import templates

    include = templates.env.from_string('{% include "_files.html" %}')
    note = include.render(files=[], files_url="/m/t/files", files_note="期限<切れ>")
    assert "添付資料" in note and "期限&lt;切れ&gt;" in note
    assert include.render(files=[], files_url="/m/t/files").strip() == ""
