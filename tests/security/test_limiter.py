"""The wrong-link limiter: a forged link costs whoever sent it, never a genuine link.

Forged links are counted per source network and per claimed link id; a request whose link
is genuine is served before any of those counts is looked at (admin_api/pages/page_guard.py).
"""

from __future__ import annotations

import secrets

from engine.people.attempts import LOCK_FAILURES

from .conftest import PROXY, Pages


def forged(n: int) -> str:
    """A link of the right shape with a MAC nobody signed, naming delivery ``n``."""
    return f"/m/{n:x}.zzzzzzz.{secrets.token_urlsafe(16)[:22]}"


def with_wrong_mac(link: str) -> str:
    head, _, mac = link.rpartition(".")
    return f"{head}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"


async def test_forged_links_never_block_a_genuine_link_from_the_same_source(
    pages: Pages,
) -> None:
    _, genuine = await pages.two_way_to_guardian()
    async with pages.client("198.51.100.7") as phone:
        answers = [(await phone.get(forged(1000 + i))).status_code
                   for i in range(LOCK_FAILURES + 2)]
        # The first are plain refusals, then the source waits (429), and after
        # LOCK_FAILURES it is locked out for an hour.
        assert answers[0] == 400 and answers[-1] == 429
        # The genuine link from the very same address (a carrier NAT) is served at once.
        page = await phone.get(genuine)
        assert page.status_code == 200 and "遠足" in page.text
        assert (await phone.get(forged(5000))).status_code == 429
        # Still served on every further request (within its own per-link limit).
        assert [(await phone.get(genuine)).status_code for _ in range(3)] == [200] * 3


async def test_forgeries_of_one_link_id_from_many_networks_do_not_block_it(pages: Pages) -> None:
    delivery_id, genuine = await pages.two_way_to_guardian()
    codes = []
    for net in range(LOCK_FAILURES + 2):
        async with pages.client(f"203.0.{net}.9") as attacker:
            codes.append((await attacker.get(with_wrong_mac(genuine))).status_code)
    # The claimed link id is what they share: it is held back after a few ...
    assert codes[0] == 400 and codes[-1] == 429
    # ... for forgeries only: the real link is served from anywhere, even from those networks.
    for peer in ("203.0.0.9", "192.0.2.44"):
        async with pages.client(peer) as phone:
            assert (await phone.get(genuine)).status_code == 200
    # A forgery naming another id from a network that forged nothing is answered plainly.
    async with pages.client("192.0.2.44") as other:
        assert (await other.get(forged(delivery_id + 1))).status_code == 400


async def test_one_networks_forgeries_do_not_block_another_network(pages: Pages) -> None:
    async with pages.client("198.51.100.7") as attacker:
        for i in range(LOCK_FAILURES):
            await attacker.get(forged(2000 + i))
        assert (await attacker.get(forged(3000))).status_code == 429
    async with pages.client("198.51.101.7") as neighbour:
        assert (await neighbour.get(forged(4000))).status_code == 400


async def test_behind_the_trusted_proxy_each_client_counts_for_itself(pages: Pages) -> None:
    _, genuine = await pages.two_way_to_guardian()
    async with pages.client(PROXY) as proxy:
        for i in range(LOCK_FAILURES):
            await proxy.get(forged(6000 + i), headers={"X-Forwarded-For": "203.0.113.5"})
        assert (await proxy.get(
            forged(7000), headers={"X-Forwarded-For": "203.0.113.5"})).status_code == 429
        # Another guardian behind the same proxy is not held back by it ...
        assert (await proxy.get(
            forged(7001), headers={"X-Forwarded-For": "198.51.100.20"})).status_code == 400
        # ... and the attacker's own address still opens a genuine link.
        page = await proxy.get(genuine, headers={"X-Forwarded-For": "203.0.113.5"})
        assert page.status_code == 200


async def test_an_untrusted_peer_cannot_escape_its_count_with_forwarded_headers(
    pages: Pages,
) -> None:
    async with pages.client("192.0.2.9") as attacker:
        for i in range(LOCK_FAILURES):
            await attacker.get(forged(8000 + i), headers={"X-Forwarded-For": f"198.51.{i}.1"})
        # Every request counted against 192.0.2.9 whatever it claimed: now it waits.
        for header in ({"X-Forwarded-For": "203.0.113.77"}, {"Forwarded": "for=203.0.113.78"}):
            assert (await attacker.get(forged(9000), headers=header)).status_code == 429


async def test_an_expired_genuine_link_is_never_counted(pages: Pages) -> None:
    delivery_id, _ = await pages.two_way_to_guardian()
    expired = pages.link(delivery_id, days=-1)
    async with pages.client("198.51.100.7") as phone:
        codes = [(await phone.get(expired)).status_code for _ in range(LOCK_FAILURES + 2)]
    assert codes == [410] * (LOCK_FAILURES + 2)
    assert await pages.people.pool.fetchval("SELECT count(*) FROM registration_attempts") == 0


async def test_forged_file_links_are_counted_like_page_links(pages: Pages) -> None:
    _, genuine = await pages.two_way_to_guardian()
    async with pages.client("198.51.100.8") as phone:
        answers = [(await phone.get(forged(2000 + i) + "/files/1")).status_code
                   for i in range(LOCK_FAILURES + 2)]
        assert answers[0] == 404 and answers[-1] == 429
        # The source is held back on the pages too; the genuine link's file page is served.
        assert (await phone.get(forged(3000))).status_code == 429
        assert (await phone.get(genuine + "/files")).status_code == 200
