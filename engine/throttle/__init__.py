"""Traffic shaping: carrier profiles, sites, rate and connection limits, AIMD, egress pools.

Pure logic: no database, no SMTP library. The runner builds one `Shaper`, asks it for a `Grant`
before opening a connection, and reports each outcome as a `Feedback` value.
"""

from __future__ import annotations

from engine.throttle._aimd import AimdSettings, Learned, RateController
from engine.throttle._blocks import BlockSettings
from engine.throttle._bucket import TokenBucket
from engine.throttle._congestion import DetectorSettings, Verdict
from engine.throttle._feedback import (
    Feedback,
    Outcome,
    Signal,
    is_own_fault,
    is_session_limit,
    signal_of,
)
from engine.throttle._pair import SiteState
from engine.throttle._pool import (
    DEFAULT_POOL,
    EgressPool,
    Source,
    Warmup,
    egress_pools,
    pools_from_config,
)
from engine.throttle._shaper import (
    PRIORITY_BULK,
    PRIORITY_EMERGENCY,
    PRIORITY_NORMAL,
    Grant,
    Shaper,
)
from engine.throttle.profiles import (
    BUILTIN_PROFILES,
    DEFAULT_PROFILE,
    Profile,
    QuietWindow,
    load_profiles,
)
from engine.throttle.sites import Site, SiteMap, registered_domain

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_POOL",
    "DEFAULT_PROFILE",
    "PRIORITY_BULK",
    "PRIORITY_EMERGENCY",
    "PRIORITY_NORMAL",
    "AimdSettings",
    "BlockSettings",
    "DetectorSettings",
    "EgressPool",
    "Feedback",
    "Grant",
    "Learned",
    "Outcome",
    "Profile",
    "QuietWindow",
    "RateController",
    "Shaper",
    "Signal",
    "Site",
    "SiteMap",
    "SiteState",
    "Source",
    "TokenBucket",
    "Verdict",
    "Warmup",
    "egress_pools",
    "is_own_fault",
    "is_session_limit",
    "load_profiles",
    "pools_from_config",
    "registered_domain",
    "signal_of",
]
