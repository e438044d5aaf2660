"""Registration and the change/leave pages: links, codes, their rate limit, escaping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support import opened_rows

from engine.people import People
from engine.people.attempts import FREE_FAILURES, LOCK_FAILURES
from engine.people.contacts import add_contact, find_contact
from engine.people.directory import add_group
from engine.people.registration import create_request
from engine.platform.clock import FakeClock
from engine.queue import Queue

from .conftest import import_csv
from .registration_helpers import codes_by_name, page_settings, pages

ADDRESS = "Hogosha.Taro@docomo.ne.jp"


async def _classes(people: People) -> dict[str, str]:
    await import_csv(
        people,
        "sho1,3,1,1,山田一郎,,,\n"
        "sho1,5,2,4,山田花子,,,\n"
        "sho2,1,1,2,鈴木次郎,,,\n",
    )
    return await codes_by_name(people)


async def _link(site: object, people: People, address: str = ADDRESS, school: str | None = None
                ) -> str:
    from admin_api.site import REGISTER, Site

    assert isinstance(site, Site)
    request = await create_request(people, address, school)
    return f"/r/{site.links.token(REGISTER, request.id, request.expires_at)}"


async def _state(people: People, address: str) -> tuple[str, bool, int] | None:
    contact = await find_contact(people, address)
    if contact is None:
        return None
    row = await people.pool.fetchrow(
        "SELECT state, confirmed_at IS NOT NULL AS confirmed, "
        "(SELECT count(*) FROM contact_accounts WHERE contact_id = c.id) AS n "
        "FROM contacts c WHERE id = $1", contact,
    )
    return row["state"], row["confirmed"], row["n"]


async def test_a_code_registers_the_address_once_and_a_second_child_with_another_link(
    schools: People, db_url: str
) -> None:
    codes = await _classes(schools)
    async with pages(schools, page_settings(db_url)) as (site, client):
        link = await _link(site, schools)
        page = await client.get(link)
        assert page.status_code == 200 and "登録コード" in page.text
        assert "Hogosha.Taro" not in page.text and "Ho…@docomo.ne.jp" in page.text
        done = await client.post(link, data={"kind": "code", "code": codes["山田一郎"].lower()})
        assert done.status_code == 200, done.text
        assert "第一小学校 3年 1組" in done.text
        assert await _state(schools, ADDRESS) == ("active", True, 1)
        # The link works once.
        again = await client.post(link, data={"kind": "code", "code": codes["山田花子"]})
        assert again.status_code == 410 and "すでに使われました" in again.text
        assert (await client.get(link)).status_code == 410
        # A second child: a new empty mail, a new link, the other code; same contact.
        second = await _link(site, schools)
        done = await client.post(second, data={"kind": "code", "code": codes["山田花子"]})
        assert done.status_code == 200 and "5年 2組" in done.text
        assert await _state(schools, ADDRESS) == ("active", True, 2)
        # Each completion was answered with a mail to the address, through the queue.
        rows = await opened_rows(
            schools.pool, schools.sealer,
            "SELECT d.recipient_sealed, b.priority, b.subject FROM deliveries d "
            "JOIN broadcasts b ON b.id = d.broadcast_id"
        )
        assert [r["recipient"] for r in rows] == ["Hogosha.Taro@docomo.ne.jp"] * 2
        assert {r["subject"] for r in rows} == {"【登録完了】メール配信の登録が完了しました"}


async def test_registering_again_never_downgrades_and_undoes_a_leave(
    schools: People, db_url: str
) -> None:
    codes = await _classes(schools)
    confirmed_at = schools.clock.now()
    await add_contact(schools, ADDRESS, confirmed=True)
    await schools.pool.execute("UPDATE contacts SET state = 'left'")
    assert isinstance(schools.clock, FakeClock)
    schools.clock.advance(3600)
    async with pages(schools, page_settings(db_url)) as (site, client):
        link = await _link(site, schools)
        done = await client.post(link, data={"code": codes["鈴木次郎"]})
        assert done.status_code == 200
    assert await _state(schools, ADDRESS) == ("active", True, 1)
    kept = await schools.pool.fetchval("SELECT confirmed_at FROM contacts")
    assert kept == confirmed_at  # the first confirmation is kept, not replaced


async def test_forged_malformed_and_expired_links_are_refused_and_change_nothing(
    schools: People, db_url: str, clock: FakeClock
) -> None:
    codes = await _classes(schools)
    async with pages(schools, page_settings(db_url)) as (site, client):
        link = await _link(site, schools)
        token = link.rpartition("/")[2]
        forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        other_id = site.links.token("register", 999, clock.now() + timedelta(hours=1))
        # An unsubscribe token is no registration token.
        wrong_purpose = site.links.token("unsubscribe", int(token.split(".")[0], 36),
                                         clock.now() + timedelta(hours=1))
        for bad in (forged, "/r/not-a-token", f"/r/{wrong_purpose}"):
            response = await client.post(bad, data={"code": codes["山田一郎"]})
            assert response.status_code == 400, bad
            assert "このリンクは正しくありません" in response.text
        unknown = await client.post(f"/r/{other_id}", data={"code": codes["山田一郎"]})
        assert unknown.status_code == 410
        clock.advance(25 * 3600)
        expired = await client.post(link, data={"code": codes["山田一郎"]})
        assert expired.status_code == 410 and "有効期限が切れています" in expired.text
    assert await _state(schools, ADDRESS) is None
    assert await schools.pool.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_a_wrong_code_says_only_that_and_repeats_are_slowed_then_refused(
    schools: People, db_url: str, clock: FakeClock
) -> None:
    codes = await _classes(schools)
    await schools.pool.execute("UPDATE accounts SET state = 'closed' WHERE id = "
                               "(SELECT min(id) FROM accounts)")
    async with pages(schools, page_settings(db_url)) as (site, client):
        link = await _link(site, schools)
        # A closed account's code, a well-formed unknown code and plain junk read alike.
        answers = []
        for code in (codes["山田一郎"], "KX7M-3QHD-WA9R", "<b>x</b>"):
            r = await client.post(link, data={"code": code})
            assert r.status_code == 400
            answers.append(r.text.split("role=\"alert\">")[1].split("<")[0])
        assert len(set(answers)) == 1 and "登録コードが正しくありません" in answers[0]
        assert FREE_FAILURES == 3
        slowed = await client.post(link, data={"code": "KX7M-3QHD-WA9R"})
        assert slowed.status_code == 400  # the 4th wrong code: counted, now waits 10 s
        blocked = await client.post(link, data={"code": codes["山田花子"]})
        assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "10"
        assert "しばらく受け付けません" in blocked.text
        assert await _state(schools, ADDRESS) is None  # even the right code was not taken
        # Another address from the same network is held back too.
        other = await _link(site, schools, "other@au.com")
        assert (await client.post(other, data={"code": codes["山田花子"]})).status_code == 429
        # Past the wait the right code works (on the same, still unused link).
        clock.advance(11)
        done = await client.post(link, data={"code": codes["山田花子"]})
        assert done.status_code == 200
    assert await _state(schools, ADDRESS) == ("active", True, 1)


async def test_repeated_wrong_codes_lock_the_network_for_an_hour(
    schools: People, db_url: str, clock: FakeClock
) -> None:
    codes = await _classes(schools)
    async with pages(schools, page_settings(db_url)) as (site, client):
        for n in range(LOCK_FAILURES):
            # A new address each time: only the network is common to all.
            link = await _link(site, schools, f"guess{n}@example.jp")
            r = await client.post(link, data={"code": "KX7M-3QHD-WA9R"})
            assert r.status_code == 400, (n, r.status_code)
            clock.advance(600)  # past each wait (at most 320 s before the lock)
        link = await _link(site, schools, "late@example.jp")
        clock.advance(1800)
        r = await client.post(link, data={"code": codes["山田一郎"]})
        assert r.status_code == 429 and "分" in r.text
        clock.advance(1801)
        r = await client.post(link, data={"code": codes["山田一郎"]})
        assert r.status_code == 200


async def test_a_citizen_chooses_public_groups_only(schools: People, db_url: str) -> None:
    public = await add_group(schools, "見守りボランティア", is_public=True)
    school_public = await add_group(schools, "PTA", owner="sho2", is_public=True)
    private = await add_group(schools, "教職員", owner="sho1")
    async with pages(schools, page_settings(db_url)) as (site, client):
        link = await _link(site, schools, "citizen@example.jp", school="sho1")
        page = await client.get(link)
        assert "見守りボランティア" in page.text and "PTA" not in page.text
        for bad in ([str(private.id)], [str(school_public.id)], ["1 OR 1=1"], []):
            r = await client.post(link, data={"kind": "groups", "group": bad})
            assert r.status_code == 400, bad
        assert await _state(schools, "citizen@example.jp") is None
        r = await client.post(link, data={"kind": "groups", "group": [str(public.id)]})
        assert r.status_code == 200 and "見守りボランティア" in r.text
    groups = await schools.pool.fetch("SELECT group_id FROM contact_groups")
    assert [g["group_id"] for g in groups] == [public.id]


async def test_pages_escape_what_they_show(schools: People, db_url: str) -> None:
    await add_group(schools, '<script>alert("x")', is_public=True)
    async with pages(schools, page_settings(db_url)) as (site, client):
        link = await _link(site, schools, "&'x@docomo.ne.jp")
        page = await client.get(link)
        assert "<script>" not in page.text and "&lt;script&gt;alert(&#34;x&#34;)" in page.text
        assert "&amp;&#39;…@docomo.ne.jp" in page.text
        r = await client.post(link, data={"code": "<svg onload=alert(1)>"})
        assert "<svg" not in r.text and "&lt;svg" in r.text
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("known", [True, False])
async def test_one_click_post_unsubscribes_at_once_without_cookie(
    schools: People, db_url: str, known: bool
) -> None:
    from engine.queue import NewBroadcast

    if known:
        await add_contact(schools, ADDRESS, confirmed=True)
    queue = Queue(schools.pool, schools.sealer)
    bid = await queue.enqueue(
        NewBroadcast("kyouiku@city.example.jp", "お知らせ", "本文\n", [ADDRESS]),
        schools.clock.now(), 3600,
    )
    delivery = (await queue.deliveries_of(bid))[0]["id"]
    async with pages(schools, page_settings(db_url)) as (site, client):
        token = site.links.token("unsubscribe", delivery, schools.clock.now() + timedelta(days=1))
        page = await client.get(f"/u/{token}")
        assert page.status_code == 200 and "配信を停止する" in page.text
        r = await client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click",
                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and "配信を停止しました" in r.text
        assert "set-cookie" not in r.headers
        page = await client.get(f"/u/{token}")
        assert "配信を再開する" in page.text
        forged = await client.post(f"/u/{token[:-2]}xx")
        assert forged.status_code == 400
        old = site.links.token("unsubscribe", delivery, schools.clock.now())
        expired = await client.post(f"/u/{old}")
        assert expired.status_code == 410 and "有効期限が切れています" in expired.text
        if known:
            assert await _state(schools, ADDRESS) == ("left", True, 0)
        else:
            listed = await schools.pool.fetchval("SELECT reason FROM suppressions")
            assert listed == "unsubscribed"
        # Registering (the person's own choice again) undoes either.
        codes = await _classes(schools)
        link = await _link(site, schools)
        assert (await client.post(link, data={"code": codes["山田一郎"]})).status_code == 200
        assert await _state(schools, ADDRESS) == ("active", True, 1)
        assert await schools.pool.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_unknown_pages_and_methods_answer_in_japanese_html(
    schools: People, db_url: str
) -> None:
    async with pages(schools, page_settings(db_url)) as (site, client):
        missing = await client.get("/nosuch")
        assert missing.status_code == 404 and "このページはありません" in missing.text
        assert missing.headers["content-type"].startswith("text/html")
        method = await client.put("/r/x")
        assert method.status_code == 405 and "text/html" in method.headers["content-type"]
        link = await _link(site, schools)
        long_code = await client.post(link, data={"code": "A" * 5000})
        assert long_code.status_code == 400 and "登録コードが正しくありません" in long_code.text
