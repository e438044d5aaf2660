"""The exceptions mamoru raises on purpose, one hierarchy for the whole project.

    MamoruError                 anything mamoru reports to a person in one line
    ├── ConfigError             the configuration file or environment is wrong (names the key)
    ├── DatabaseError           PostgreSQL cannot be reached or a migration failed
    ├── QueueError              a broadcast cannot be enqueued or a delivery cannot be found
    ├── InputError              bad input from an operator: addresses, files, payloads
    ├── RoutingError            no way to reach a recipient domain
    │   └── PermanentRoutingError   the domain does not exist or refuses all mail (null MX)
    │       └── NoSuchDomainError   NXDOMAIN (a resolver fault when the domain is known)
    ├── DeliveryError           the SMTP client side failed in a way the runner must record
    ├── DkimError               a signing key is missing or unusable
    └── BounceError             a bounce or feedback mail could not be taken in

Every message says what is wrong and, where it can, what to do about it.
"""

from __future__ import annotations


class MamoruError(Exception):
    """Base of every error mamoru raises on purpose; its text is meant for an operator."""


class ConfigError(MamoruError):
    """The configuration is invalid; the message names the key."""


class DatabaseError(MamoruError):
    """The database is unreachable or its schema could not be brought up to date."""


class QueueError(MamoruError):
    """A queue operation could not be carried out."""


class InputError(MamoruError):
    """Operator input (addresses, files, API payloads) is invalid; nothing was changed."""


class RoutingError(MamoruError):
    """The recipient domain cannot be routed right now (may succeed later)."""


class PermanentRoutingError(RoutingError):
    """The recipient domain can never be routed (NXDOMAIN, null MX)."""


class NoSuchDomainError(PermanentRoutingError):
    """The resolver answered NXDOMAIN. Final for an unknown domain; for a domain known to take
    mail it is the resolver's fault, and the runner defers instead."""


class DeliveryError(MamoruError):
    """The SMTP client side failed."""


class DkimError(MamoruError):
    """A DKIM key is missing, unreadable or of an unsupported kind."""


class BounceError(MamoruError):
    """A bounce, DSN or feedback report could not be taken in."""
