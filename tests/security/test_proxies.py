"""Who the client is behind a reverse proxy: [http] trusted_proxies, Forwarded, X-Forwarded-For."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.requests import Request
from support import make_settings

from admin_api.proxies import client_address, forwarded_client, trusted_networks
from engine.platform.config import load_settings, parse_networks
from engine.platform.errors import ConfigError

TRUSTED = parse_networks("test", ["10.0.0.0/8", "2001:db8:ffff::/48"])


def request(peer: str, headers: dict[str, str], trusted: list[str]) -> Request:
    app = FastAPI()
    app.state.trusted_proxies = parse_networks("test", trusted)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "app": app, "client": (peer, 1234), "headers": raw})


def test_headers_are_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.5", "Forwarded": "for=203.0.113.6"}
    assert client_address(request("198.51.100.7", spoofed, [])) == "198.51.100.7"
    assert client_address(request("198.51.100.7", spoofed, ["10.0.0.1"])) == "198.51.100.7"
    assert client_address(request("10.0.0.1", spoofed, ["10.0.0.1"])) == "203.0.113.6"
    assert client_address(request("10.0.0.1", {}, ["10.0.0.1"])) == "10.0.0.1"


@pytest.mark.parametrize(("xff", "client"), [
    ("203.0.113.5", "203.0.113.5"),
    # What the client wrote itself is to the left of what our proxies appended: never believed.
    ("1.2.3.4, 203.0.113.5", "203.0.113.5"),
    ("1.2.3.4, 203.0.113.5, 10.1.2.3", "203.0.113.5"),
    ("203.0.113.5,10.9.9.9 , 10.1.2.3", "203.0.113.5"),
    # Every hop one of ours: the left-most.
    ("10.4.4.4, 10.1.2.3", "10.4.4.4"),
    ("[2001:db8::1]:4711, 2001:db8:ffff::2", "2001:db8::1"),
])
def test_x_forwarded_for_gives_the_right_most_untrusted_hop(xff: str, client: str) -> None:
    assert forwarded_client("10.0.0.1", [], [xff], TRUSTED) == client


def test_forwarded_is_read_before_x_forwarded_for() -> None:
    forwarded = ['for=1.2.3.4;proto=https, for="[2001:db8::7]:4711";by=10.0.0.1', "for=10.2.2.2"]
    assert forwarded_client("10.0.0.1", forwarded, ["9.9.9.9"], TRUSTED) == "2001:db8::7"
    assert forwarded_client("10.0.0.1", ["for=unknown"], [], TRUSTED) == "unknown"
    # Several X-Forwarded-For header lines are one list, in order.
    assert forwarded_client("10.0.0.1", [], ["1.1.1.1", "203.0.113.9, 10.0.0.2"],
                            TRUSTED) == "203.0.113.9"


def test_trusted_proxies_is_checked_when_the_settings_are_read() -> None:
    with pytest.raises(ConfigError, match="http.trusted_proxies.*not an IP address"):
        load_settings(None, environ={"MAMORU_HTTP_TRUSTED_PROXIES": "10.0.0.1,proxy.local"})
    settings = load_settings(None, environ={"MAMORU_HTTP_TRUSTED_PROXIES": "10.0.0.1, ::1"})
    assert [str(n) for n in trusted_networks(settings)] == ["10.0.0.1/32", "::1/128"]
    assert trusted_networks(make_settings("")) == ()
