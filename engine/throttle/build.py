"""The shaper the configuration asks for: adaptive per carrier, or fixed limits only.

``[shaping] enabled = false`` is for a relay or a test server the operator controls: then
nothing adapts — no cuts, no suspensions, no learned connection or session caps — and the only
limits are ``delivery.connections_per_host`` and ``delivery.messages_per_connection``.
"""

from __future__ import annotations

from engine.platform.clock import Clock
from engine.platform.config import Settings
from engine.platform.errors import ConfigError
from engine.throttle._pool import egress_pools
from engine.throttle._shaper import Shaper
from engine.throttle.profiles import DEFAULT_PROFILE, Profile
from engine.throttle.sites import SiteMap


def shaping_enabled(settings: Settings) -> bool:
    enabled = settings.shaping.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("shaping.enabled must be true or false")
    return enabled


def build_shaper(settings: Settings, clock: Clock) -> Shaper:
    """An adaptive shaper from ``[shaping]`` and ``[egress]``, or the fixed one when
    shaping is off."""
    if not shaping_enabled(settings):
        return unlimited_shaper(settings, clock)
    shaping = {k: v for k, v in settings.shaping.items() if k != "enabled"}
    return Shaper.from_settings(
        shaping, settings.egress, clock, default_helo=settings.delivery.helo
    )


def unlimited_shaper(settings: Settings, clock: Clock) -> Shaper:
    """One profile for every site, no rate limit and no adaptation: only the configured
    connection and per-connection message counts hold."""
    d = settings.delivery
    profile = Profile(
        name=DEFAULT_PROFILE,
        max_connections=d.connections_per_host,
        max_messages_per_connection=d.messages_per_connection,
        max_rate=1e9,
        initial_rate=1e9,
    )
    pools = egress_pools(settings.egress, d.helo)
    return Shaper(SiteMap({DEFAULT_PROFILE: profile}), pools, clock, adaptive=False)
