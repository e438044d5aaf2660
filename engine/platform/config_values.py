"""Values in the configuration that are not sections: durations, "host:port", networks.

engine/platform/config.py reads the file and its sections with these; other modules parse the
values of sections they own (``[shaping]``, ``[dkim]``) with them too.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from engine.platform.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(key: str, value: Any) -> float:
    """A duration: seconds, or "90s", "15m", "24h", "7d"; errors name ``key``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ConfigError(
            f"{key} must be a duration in seconds or like \"90s\", \"15m\", \"24h\", not {value!r}"
        )
    if seconds < 0:
        raise ConfigError(f"{key} must not be negative")
    return seconds


def parse_host_port(key: str, value: str, default_port: int) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port", or a bare host) and check the port."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"{key}: {value!r} has no host; write it as \"host:port\"")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{key}: {value!r} has an invalid port; write it as \"host:port\"")
    return host, int(port_text)


def parse_networks(key: str, values: list[str]) -> tuple[IPNetwork, ...]:
    """Addresses or networks ("192.0.2.1", "10.0.0.0/8", "::1") as networks; errors name key."""
    out: list[IPNetwork] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{key}: {value!r} is not an IP address or network (write \"10.0.0.5\" or "
                "\"10.0.0.0/8\")"
            ) from None
    return tuple(out)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
