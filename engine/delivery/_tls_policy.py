"""Where mail must never go in plain text: ``delivery.tls_required``, by site or by MX host.

Each entry of the list is one of

- a **site** (no dot): the name of a carrier profile, built in (``docomo``, ``au``,
  ``softbank``, ``gmail`` ...) or added under ``[shaping.profiles.NAME]``. A recipient domain
  belongs to a site by the profile's domain list or its MX host patterns, exactly as the shaper
  groups them (``engine/throttle/sites``), whether or not shaping is on;
- an **MX host**: a host name (``mx1.example.jp``), a domain its MX hosts end in
  (``example.jp`` matches ``mx1.example.jp``), or a pattern (``*.mail.example.jp``).

Delivery to such a destination uses STARTTLS or nothing: when the server does not offer it,
refuses it or the handshake fails, the mail is deferred with a note saying so
(``engine/delivery``). An entry that is neither a known site nor a host name is a
ConfigError that names it, so a misspelt ``docmo`` cannot silently leave docomo unprotected.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.platform.errors import ConfigError
from engine.throttle.profiles import DEFAULT_PROFILE, Profile, load_profiles
from engine.throttle.sites import SiteMap

__all__ = ["TlsPolicy"]

# Host names and patterns; colons for IPv6 literals (a transport map may point at ::1).
_HOST_PATTERN = re.compile(r"[a-z0-9*?:](?:[a-z0-9*?.:-]*[a-z0-9*?:])?")


@dataclass(frozen=True)
class TlsPolicy:
    """The sites and MX host patterns that only get mail over TLS."""

    sites: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()
    site_map: SiteMap | None = None

    @classmethod
    def parse(
        cls, entries: Sequence[str], profiles: Mapping[str, Profile] | None = None
    ) -> TlsPolicy:
        """The policy of `entries` (``delivery.tls_required``); `profiles` are the carrier
        profiles that name the sites (default: the built-in ones). ConfigError for an entry
        that is neither."""
        profiles = profiles if profiles is not None else load_profiles({})
        named = sorted(name for name in profiles if name != DEFAULT_PROFILE)
        sites: set[str] = set()
        hosts: list[str] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".") if isinstance(raw, str) else ""
            if not any(mark in entry for mark in ".*?:"):
                if entry in named:
                    sites.add(entry)
                    continue
                raise ConfigError(
                    f"delivery.tls_required: {raw!r} は既知のサイトでも MX ホスト名でも"
                    f"ありません / is neither a known site ({', '.join(named)}) nor an MX host "
                    "name or domain (with a dot, e.g. mx1.example.jp, example.jp or "
                    "*.example.jp)"
                )
            if not _HOST_PATTERN.fullmatch(entry) or ".." in entry:
                raise ConfigError(
                    f"delivery.tls_required: {raw!r} は MX ホスト名として使えません / is not a "
                    "usable MX host name or pattern: letters, digits, hyphens, dots, * and ? "
                    "only (write internationalised names in their xn-- form)"
                )
            hosts.append(entry)
        site_map = SiteMap(profiles) if sites else None
        return cls(frozenset(sites), tuple(hosts), site_map)

    @classmethod
    def hosts_of(cls, entries: Sequence[str]) -> TlsPolicy:
        """Only the MX host entries of `entries` (site names are the lanes' business; the
        configuration has checked them)."""
        hosts = tuple(
            entry
            for raw in entries
            if any(mark in (entry := raw.strip().lower().rstrip(".")) for mark in ".*?:")
        )
        return cls(hosts=hosts)

    @classmethod
    def from_settings(cls, entries: Sequence[str], shaping: Mapping[str, object]) -> TlsPolicy:
        """The policy with the sites of the configuration's ``[shaping.profiles]`` too."""
        overrides = shaping.get("profiles", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError("shaping.profiles must be a table of profiles")
        return cls.parse(entries, load_profiles(overrides))

    def site_requiring(self, domain: str, mx_hosts: Sequence[str]) -> str | None:
        """The site of `domain` (with these MX hosts) if the policy names it, else None."""
        if self.site_map is None:
            return None
        name = self.site_map.site_for(domain, mx_hosts).name
        return name if name in self.sites else None

    def host_requiring(self, host: str) -> str | None:
        """The entry that makes `host` TLS-only (exact, a domain it ends in, or a pattern
        it matches), else None."""
        host = host.lower().rstrip(".")
        for entry in self.hosts:
            if host == entry or host.endswith("." + entry):
                return entry
            if ("*" in entry or "?" in entry) and fnmatch.fnmatchcase(host, entry):
                return entry
        return None
