from __future__ import annotations

import pytest

from engine.platform.address import normalise_address, smtp_path
from engine.platform.errors import InputError


def test_domain_is_lower_cased_and_local_part_kept() -> None:
    assert normalise_address(" Taro.Yamada@DOCOMO.ne.jp ") == "Taro.Yamada@docomo.ne.jp"


@pytest.mark.parametrize("legacy", ["foo..bar@docomo.ne.jp", "foo.@ezweb.ne.jp", ".x@au.com"])
def test_legacy_carrier_addresses_are_accepted_and_quoted(legacy: str) -> None:
    addr = normalise_address(legacy)
    assert addr == legacy
    local, _, domain = smtp_path(addr).rpartition("@")
    assert local.startswith('"') and local.endswith('"')
    assert domain == legacy.rpartition("@")[2]


def test_ordinary_address_is_not_quoted() -> None:
    assert smtp_path("hanako@example.jp") == "hanako@example.jp"


@pytest.mark.parametrize(
    "bad",
    ["", "nobody", "a@b@c.jp", "@example.jp", "a b@example.jp", "a@localhost", "a@exa_mple.jp",
     "a@-x.jp", "<a@example.jp>"],
)
def test_invalid_addresses_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InputError):
        normalise_address(bad)


def test_international_domain_is_converted_to_ascii() -> None:
    assert normalise_address("info@例え.jp") == "info@xn--r8jz45g.jp"
