"""Sites: matching by domain, by MX pattern (roll-up), and grouping unknown domains."""

from __future__ import annotations

from engine.throttle.profiles import load_profiles
from engine.throttle.sites import SiteMap, registered_domain


def site_map() -> SiteMap:
    return SiteMap(load_profiles({}))


def test_carrier_domains_map_to_their_profile_site() -> None:
    sites = site_map()
    assert sites.site_for("docomo.ne.jp", ["mfsmax.docomo.ne.jp"]).name == "docomo"
    assert sites.site_for("ezweb.ne.jp", []).name == "au"
    assert sites.site_for("i.softbank.jp", ["mx.example"]).name == "softbank"
    assert sites.site_for("DISNEY.ne.jp.", []).profile.name == "softbank"


def test_a_school_google_workspace_domain_is_the_gmail_site() -> None:
    sites = site_map()
    school = sites.site_for(
        "school.example.ed.jp", ["ASPMX.L.GOOGLE.COM.", "alt1.aspmx.l.google.com"]
    )
    assert school.name == "gmail"
    assert school is sites.site_for("gmail.com", ["gmail-smtp-in.l.google.com"])


def test_microsoft_365_domains_roll_up_to_outlook() -> None:
    site = site_map().site_for(
        "board.example.lg.jp", ["board-example-lg-jp.mail.protection.outlook.com"]
    )
    assert site.name == "outlook"


def test_unknown_domains_with_the_same_mx_suffix_share_one_default_site() -> None:
    sites = site_map()
    a = sites.site_for("a-school.jp", ["mx1.example.jp", "mx2.example.jp"])
    b = sites.site_for("b-school.jp", ["mx2.example.jp"])
    c = sites.site_for("c-school.jp", ["mx.other.co.jp"])
    assert a is b
    assert a.name == "example.jp"
    assert a.profile.name == "default"
    assert c.name == "other.co.jp"


def test_domain_without_mx_is_its_own_site() -> None:
    assert site_map().site_for("mail.city.example.tokyo.jp", []).name == "city.example.tokyo.jp"


def test_registered_domain_handles_japanese_second_levels() -> None:
    assert registered_domain("mx1.example.co.jp") == "example.co.jp"
    assert registered_domain("mx.city.shibuya.tokyo.jp") == "city.shibuya.tokyo.jp"
    assert registered_domain("mx.example.com") == "example.com"
    assert registered_domain("localhost") == "localhost"


def test_site_lookups_are_cached() -> None:
    sites = site_map()
    first = sites.site_for("x.example", ["mx.example.net"])
    assert sites.site_for("X.example", ["MX.example.net."]) is first
