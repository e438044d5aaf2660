"""Sites: which receiving provider a recipient domain belongs to (the MX roll-up).

A site is what the carrier's limits apply to. docomo.ne.jp is one site; so is Gmail, and a
school's Google Workspace domain (MX `aspmx.l.google.com`) is *the same site* as gmail.com,
because the same Google servers count our connections. Domains are matched to a profile by its
domain list first, then by their MX host names against the profile's `mx_patterns`. A domain
that matches no profile gets a site named after its MX hosts' registered domain (`mx1.example.jp`,
`mx2.example.jp` -> `example.jp`), with the default profile, so two domains hosted by one
provider still share one set of limits.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.platform.errors import ConfigError
from engine.throttle.profiles import DEFAULT_PROFILE, Profile

# Second-level labels under which registrations happen one level deeper (example.co.jp,
# example.com.au). A heuristic, not the Public Suffix List: good enough to group MX hosts.
_SECOND_LEVEL = frozenset(
    {"co", "ne", "or", "ac", "ed", "go", "lg", "gr", "ad", "com", "net", "org", "gov", "edu"}
)
# Japanese geographic names (city.shibuya.tokyo.jp): the registration is under the prefecture.
_JP_PREFECTURES = frozenset(
    """aichi akita aomori chiba ehime fukui fukuoka fukushima gifu gunma hiroshima hokkaido
    hyogo ibaraki ishikawa iwate kagawa kagoshima kanagawa kochi kumamoto kyoto mie miyagi
    miyazaki nagano nagasaki nara niigata oita okayama okinawa osaka saga saitama shiga shimane
    shizuoka tochigi tokushima tokyo tottori toyama wakayama yamagata yamaguchi yamanashi""".split()
)


@dataclass(frozen=True, slots=True)
class Site:
    """One receiving provider, as far as limits go: a name and the profile that shapes it."""

    name: str
    profile: Profile


def registered_domain(host: str) -> str:
    """The registered-domain-ish suffix of a host name: `mx1.example.co.jp` -> `example.co.jp`."""
    labels = host.lower().rstrip(".").split(".")
    if len(labels) <= 2:
        return ".".join(labels)
    keep = 2
    tld, second = labels[-1], labels[-2]
    if len(tld) == 2 and (second in _SECOND_LEVEL or (tld == "jp" and second in _JP_PREFECTURES)):
        keep = 3
        # city.shibuya.tokyo.jp: the municipality is the registrant, one label deeper still.
        if tld == "jp" and second in _JP_PREFECTURES and len(labels) >= 4:
            keep = 4
    return ".".join(labels[-keep:])


class SiteMap:
    """Maps a recipient domain and its MX hosts to a Site; results are cached."""

    def __init__(self, profiles: Mapping[str, Profile]) -> None:
        if DEFAULT_PROFILE not in profiles:
            raise ConfigError(f"shaping.profiles.{DEFAULT_PROFILE}: the default profile is missing")
        self._profiles = dict(profiles)
        self._default = profiles[DEFAULT_PROFILE]
        self._by_domain: dict[str, Profile] = {}
        for profile in profiles.values():
            for domain in profile.domains:
                self._by_domain[domain] = profile
        self._sites: dict[str, Site] = {p.name: Site(p.name, p) for p in profiles.values()}
        self._cache: dict[tuple[str, tuple[str, ...]], Site] = {}

    @property
    def profiles(self) -> Mapping[str, Profile]:
        return self._profiles

    def site_for(self, domain: str, mx_hosts: Sequence[str]) -> Site:
        """The site a recipient domain is delivered to, given its MX host names (any order)."""
        domain = domain.lower().rstrip(".")
        hosts = tuple(sorted({h.lower().rstrip(".") for h in mx_hosts if h}))
        key = (domain, hosts)
        site = self._cache.get(key)
        if site is None:
            site = self._resolve(domain, hosts)
            self._cache[key] = site
        return site

    def _resolve(self, domain: str, hosts: tuple[str, ...]) -> Site:
        profile = self._by_domain.get(domain)
        if profile is not None:
            return self._sites[profile.name]
        for host in hosts:
            for candidate in self._profiles.values():
                if any(fnmatch.fnmatchcase(host, pat) for pat in candidate.mx_patterns):
                    return self._sites[candidate.name]
        # No MX at all means the domain itself is the mail host (RFC 5321 implicit MX).
        suffixes = sorted({registered_domain(h) for h in hosts or (domain,)})
        name = "+".join(suffixes)
        site = self._sites.get(name)
        if site is None or site.profile is not self._default:
            # A profile may be called like a registered domain; never let an unknown site
            # borrow it by accident.
            site = Site(name if site is None else f"mx:{name}", self._default)
            self._sites[site.name] = site
        return site
