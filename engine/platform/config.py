"""Settings: one TOML file plus ``MAMORU_*`` environment overrides, validated at start.

The file is given by ``--config FILE`` or ``MAMORU_CONFIG``. Every scalar key can be overridden
from the environment as ``MAMORU_<SECTION>_<KEY>`` (upper case), e.g. ``MAMORU_DATABASE_URL`` or
``MAMORU_QUEUE_LEASE_SECONDS``. Tables of free-form keys (``[routing.transport]``) and the
sections owned by other modules (``[shaping]``, ``[[egress.sources]]``, ``[[dkim.keys]]``) are
set in the file only.

Errors name the key (``queue.lease_seconds``) and say what is wrong, so an operator can fix the
file without reading code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.platform.config_checks import ATTACHMENT_TYPES as ATTACHMENT_TYPES
from engine.platform.config_checks import check_attachments, check_backup
from engine.platform.config_ops import HostSettings, LogSettings, check_host_and_log
from engine.platform.config_search import find_config
from engine.platform.config_values import IPNetwork as IPNetwork
from engine.platform.config_values import is_loopback
from engine.platform.config_values import parse_duration as parse_duration
from engine.platform.config_values import parse_host_port as parse_host_port
from engine.platform.config_values import parse_networks as parse_networks
from engine.platform.errors import ConfigError

# Environment variables with this prefix that are not settings.
_RESERVED_ENV = ("MAMORU_CONFIG", "MAMORU_TEST_")


class Duration(float):
    """Seconds; written in the file as a number or as a string such as "90s", "15m", "24h"."""


@dataclass(frozen=True)
class DatabaseSettings:
    # Empty: the embedded PostgreSQL (pgserver) in data_dir.
    url: str = ""
    data_dir: str = "var/pgdata"
    pool_min: int = 2
    pool_max: int = 10
    connect_timeout: Duration = Duration(10.0)


@dataclass(frozen=True)
class QueueSettings:
    claim_batch: int = 500
    lease_seconds: Duration = Duration(300.0)
    poll_interval: Duration = Duration(1.0)
    # How long a delivery may keep being retried after its send time before it fails "expired".
    max_age: Duration = Duration(86400.0)
    # Exponential backoff for temporary failures: base * 2**(attempt-1), capped, with jitter.
    retry_base: Duration = Duration(180.0)
    retry_max: Duration = Duration(900.0)
    # Outcomes are written in batches of at most this many, at least every flush_interval.
    flush_batch: int = 500
    flush_interval: Duration = Duration(0.1)
    # Finished broadcasts (and all their rows) older than this leave (engine/queue/retention.py).
    keep: Duration = Duration(396 * 86400.0)  # 13 months


@dataclass(frozen=True)
class DeliverySettings:
    helo: str = "localhost"
    concurrency: int = 500
    connections_per_host: int = 20
    messages_per_connection: int = 100
    connect_timeout: Duration = Duration(15.0)
    command_timeout: Duration = Duration(60.0)
    data_timeout: Duration = Duration(180.0)
    # "opportunistic": STARTTLS when offered, without certificate checks (as MTAs do);
    # "off": never.
    starttls: str = "opportunistic"
    # Receiving sites (carrier profile names: "docomo") and MX hosts (host names, domains
    # they end in, *-patterns) that only get mail over TLS (engine/delivery/_tls_policy.py):
    # when they do not offer STARTTLS or the handshake fails, the mail waits (deferred), never
    # plain text. The site names are checked by engine.delivery.preflight.check_settings.
    tls_required: list[str] = field(default_factory=list)
    # Send MAIL, RCPT and DATA together when the receiver offers PIPELINING (RFC 2920).
    pipelining: bool = True
    # Graceful shutdown waits this long for in-flight mails before giving them back to the queue.
    shutdown_grace: Duration = Duration(30.0)


@dataclass(frozen=True)
class RoutingSettings:
    # Domain (or "*") -> "host:port". Overrides MX lookup.
    transport: dict[str, str] = field(default_factory=dict)
    dns_timeout: Duration = Duration(10.0)
    # Upper bound on how long a DNS answer is cached, whatever its TTL says.
    cache_max_ttl: Duration = Duration(3600.0)


@dataclass(frozen=True)
class MessageSettings:
    # Domain of Message-IDs; empty: the sender's domain.
    id_domain: str = ""
    # Return-Path domain for VERP addresses; empty: the sender's domain.
    bounce_domain: str = ""
    # Key for the VERP token's and the personal links' HMAC; empty: the link key file
    # ([people] link_key_file, engine/platform/link_key.py).
    verp_secret: str = ""


@dataclass(frozen=True)
class InboundSettings:
    """The inbound SMTP server: bounces to VERP addresses and mail to service addresses."""

    # host:port; empty disables the inbound server.
    listen: str = "127.0.0.1:2526"
    hostname: str = "localhost"
    max_message_size: int = 10 * 1024 * 1024
    max_connections_per_client: int = 10
    # PEM files for STARTTLS; both empty: no STARTTLS offered.
    tls_cert: str = ""
    tls_key: str = ""
    # Addresses that accept mail besides the VERP return paths, e.g. "touroku@school.example.jp".
    service_addresses: list[str] = field(default_factory=list)
    # The empty-mail desks (registration, report address) answer at most this many mails a
    # minute each, and at most desk_per_sender_hour an hour to one sender; the rest are not
    # answered (forged senders must not turn the desk into a mail cannon).
    desk_per_minute: int = 30
    desk_per_sender_hour: int = 3


@dataclass(frozen=True)
class SubmissionSettings:
    """SMTP submission for applications (inbound/submission.py): a mail to a group address
    becomes a broadcast, sent with an API key over STARTTLS."""

    # host:port (587 in production); empty: no submission server.
    listen: str = ""
    hostname: str = "localhost"
    # Group addresses are <audience>@<school code>.<domain> and <audience>@<domain> (board).
    domain: str = ""
    # PEM files for STARTTLS; AUTH is only taken after STARTTLS.
    tls_cert: str = ""
    tls_key: str = ""
    # Development/tests only: AUTH without TLS, and only when listen is a loopback address.
    allow_plain_auth: bool = False
    # Largest mail taken (SIZE); SoftBank's cap is 1 MB, so a larger text could not reach all.
    max_message_size: int = 1024 * 1024
    # Mails per API key per minute; more get a temporary 451 reply.
    rate_per_minute: int = 10


@dataclass(frozen=True)
class SuppressionSettings:
    """When failures put an address on the suppression list."""

    # Soft failures (mailbox full, ...) suppress an address after this many within soft_window.
    soft_threshold: int = 5
    soft_window: Duration = Duration(7 * 86400.0)


@dataclass(frozen=True)
class PeopleSettings:
    """Personal data of boards, schools, accounts and contacts (engine/people,
    engine/platform/sealing.py)."""

    # The 32-byte key that seals names and addresses, as base64; empty: read from key_file.
    key: str = ""
    # Created with mode 0600 on first use when missing. Back it up apart from the database:
    # without it the stored names and addresses cannot be read.
    key_file: str = "var/keys/people.key"
    # The key that signs personal links and VERP addresses (engine/platform/link_key.py),
    # created with mode 0600 on first use; empty: "link.key" beside key_file. Back it up with
    # the people key; every host of one serve needs the same file.
    link_key_file: str = ""
    # Registration by empty mail: the board's address (e.g. "entry@city.example.jp"); the
    # inbound server also takes "entry-<school code>@" the same domain. Empty: no registration.
    registration_address: str = ""
    # From of the replies (link, completion); empty: the registration address itself.
    registration_sender: str = ""
    # How long a registration link works.
    registration_link_hours: int = 24
    # An empty mail here from a registered contact is answered with the link to its report
    # page (欠席・遅刻・早退・健康連絡, inbound/report_desk.py). Empty: not taken.
    report_address: str = ""


@dataclass(frozen=True)
class StaffSettings:
    """Staff accounts, sessions and the audit log (engine/staff, engine/staff/audit.py)."""

    # A session ends this long after login (logout or disabling the account ends it earlier).
    session_ttl: Duration = Duration(8 * 3600.0)
    # ... and this long after its last request (sliding); at most session_ttl.
    idle_timeout: Duration = Duration(30 * 60.0)
    # After this many wrong passwords or codes in a row for one login from one source (IPv4
    # address, IPv6 /64), that source waits before its next try for that login: 30 s, doubling
    # with each further failure up to lockout_time. Other sources are never delayed
    # (engine/staff/backoff.py).
    max_failures: int = 5
    lockout_time: Duration = Duration(15 * 60.0)
    # A password older than this must be changed after sign-in before anything else; 0: never.
    password_max_age: Duration = Duration(0.0)
    # Key of the audit log's HMAC chain as text; empty: read from audit_key_file (made 0600 on
    # first use). Kept out of the database, so that whoever can write the database cannot
    # rewrite the chain.
    audit_key: str = ""
    audit_key_file: str = "var/keys/audit.key"
    # Where the chain's newest entry is written once a day (and by `mamoru audit checkpoint`),
    # so that removing the newest entries shows; empty: no checkpoints.
    audit_checkpoints: str = "var/keys/audit.checkpoints"
    # Audit entries older than this are pruned; at least 90 days.
    audit_keep: Duration = Duration(400 * 86400.0)


@dataclass(frozen=True)
class AttachmentSettings:
    """Files sent with a broadcast as personal download links (engine/staff/attachments.py)."""

    # Largest file, all files of one broadcast together, and how many files, in bytes.
    max_size: int = 10 * 1024 * 1024
    max_total: int = 20 * 1024 * 1024
    max_files: int = 5
    # Kinds accepted, recognised by their content: pdf, jpeg, png, text, docx, xlsx.
    types: list[str] = field(
        default_factory=lambda: ["pdf", "jpeg", "png", "text", "docx", "xlsx"]
    )
    # A download link works this many days after the broadcast was made.
    link_days: int = 30
    # Files (and their download log) are deleted this many days after the broadcast was made.
    keep_days: int = 90


@dataclass(frozen=True)
class BackupSettings:
    """`mamoru backup` / `mamoru restore` and serve's daily backup (engine/staff/backup.py)."""

    # Where archives are written and their generations kept (`mamoru backup --to DIR`
    # overrides it); best another disk or a mounted backup store, not the database's disk.
    dir: str = "var/backups"
    # The key that encrypts the archives: 32 bytes as base64, made by `mamoru backup
    # --new-key`. Its copy is kept off this host (docs/operation.md): without it no archive
    # can be opened, and it is never the people key. Empty: no backups.
    key_file: str = ""
    # Archives of this many days (the newest of each day) are kept; older ones are removed
    # after a new backup succeeded. Between 7 and 31.
    keep_daily: int = 14
    # serve takes a backup every day at this time, Japan time ("02:30"); empty: never.
    daily_at: str = ""
    # Folder of pg_dump and pg_restore; empty: the embedded server's (pgserver) or the ones on
    # PATH, whichever is new enough for the server.
    pg_bin_dir: str = ""


@dataclass(frozen=True)
class MetricsSettings:
    # host:port for the Prometheus endpoint; empty disables it.
    listen: str = "127.0.0.1:9464"
    # /readyz turns "not ready" once an (egress address, site) has been blocked this long.
    block_alarm: Duration = Duration(1800.0)


@dataclass(frozen=True)
class HttpSettings:
    """The guardians' pages and the API (served by a later release)."""

    # Base of the personal links in mails, e.g. "https://mail.city.example.jp"; empty: mails
    # carry no personal links (and no one-click unsubscribe).
    public_url: str = ""
    # host:port the HTTP server will listen on.
    listen: str = "127.0.0.1:8080"
    # An http:// public_url is refused: RFC 8058 one-click unsubscribe needs https, and the
    # personal links carry tokens. Only a test set-up on loopback may allow it.
    allow_insecure_public_url: bool = False
    # Reverse proxies (addresses or networks, "10.0.0.0/8", "::1") whose X-Forwarded-For /
    # Forwarded headers name the client (admin_api/proxies.py); from any other peer those
    # headers are ignored. Empty: the peer is the client.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    message: MessageSettings = field(default_factory=MessageSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    submission: SubmissionSettings = field(default_factory=SubmissionSettings)
    suppression: SuppressionSettings = field(default_factory=SuppressionSettings)
    people: PeopleSettings = field(default_factory=PeopleSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    host: HostSettings = field(default_factory=HostSettings)
    log: LogSettings = field(default_factory=LogSettings)
    # Owned and validated by other modules (throttle, dkim): kept as given.
    shaping: dict[str, Any] = field(default_factory=dict)
    egress: dict[str, Any] = field(default_factory=dict)
    dkim: dict[str, Any] = field(default_factory=dict)
    source: str = "(defaults)"


_FREE_SECTIONS = ("shaping", "egress", "dkim")


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the TOML file (``path``, else ``MAMORU_CONFIG``, ``./mamoru.toml``,
    ``/etc/mamoru/mamoru.toml``: engine/platform/config_search.py), apply environment overrides,
    validate."""
    env = os.environ if environ is None else environ
    found, how = find_config(path, env)
    raw: dict[str, Any] = {}
    source = how
    if found is not None:
        p = found
        try:
            with p.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {p} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"configuration file {p} cannot be read: {exc.strerror}") from None
        source = f"{p} ({how})"
    _apply_environment(raw, env)
    return _build_settings(raw, source)


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    known: dict[str, tuple[str, str]] = {}
    for section in dataclasses.fields(Settings):
        sub = _section_type(section.name)
        if sub is None:
            continue
        for key, tp in typing.get_type_hints(sub).items():
            if _is_scalar(tp):
                known[f"MAMORU_{section.name}_{key}".upper()] = (section.name, key)
    for name, value in env.items():
        if not name.startswith("MAMORU_") or name.startswith(_RESERVED_ENV):
            continue
        if name not in known:
            raise ConfigError(
                f"environment variable {name} is not a mamoru setting "
                f"(known: MAMORU_<SECTION>_<KEY>, e.g. MAMORU_DATABASE_URL)"
            )
        section_name, key = known[name]
        section_raw = raw.setdefault(section_name, {})
        if not isinstance(section_raw, dict):
            raise ConfigError(f"[{section_name}] must be a table")
        section_raw[key] = _EnvValue(value)


class _EnvValue(str):
    """A value from the environment: converted from text to the key's type."""


def _section_type(name: str) -> type[Any] | None:
    hints = typing.get_type_hints(Settings)
    t = hints.get(name)
    if isinstance(t, type) and dataclasses.is_dataclass(t):
        return t
    return None


def _is_scalar(tp: Any) -> bool:
    # Lists can be set from the environment too, as comma-separated text.
    return tp in (str, int, float, bool, Duration) or typing.get_origin(tp) is list


def _build_settings(raw: dict[str, Any], source: str) -> Settings:
    values: dict[str, Any] = {"source": source}
    hints = typing.get_type_hints(Settings)
    for key, value in raw.items():
        if key == "source" or key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(Settings) if f.name != "source")
            raise ConfigError(f"unknown section [{key}] (known sections: {known})")
        if key in _FREE_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            values[key] = value
            continue
        section_type = hints[key]
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, like [{key}]")
        values[key] = _build_section(key, section_type, value)
    settings = Settings(**values)
    _check(settings)
    return settings


def _build_section(name: str, cls: type[Any], raw: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in hints:
            known = ", ".join(hints)
            raise ConfigError(f"unknown key {name}.{key} (known keys in [{name}]: {known})")
        kwargs[key] = _convert(f"{name}.{key}", hints[key], value)
    return cls(**kwargs)


def _convert(key: str, tp: Any, value: Any) -> Any:
    from_env = isinstance(value, _EnvValue)
    if tp is Duration:
        return Duration(parse_duration(key, value))
    if tp is bool:
        if from_env:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    if tp is int:
        if from_env:
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"{key} must be a whole number, not {value!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be a whole number, not {value!r}")
    if tp is float:
        try:
            if from_env or (isinstance(value, int | float) and not isinstance(value, bool)):
                return float(value)
        except ValueError:
            pass
        raise ConfigError(f"{key} must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, str):
            return str(value)
        raise ConfigError(f"{key} must be a string, not {value!r}")
    origin = typing.get_origin(tp)
    if origin is list:
        if from_env:
            return [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, like [\"a@example.jp\"]")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{key} must be a table of strings, like {key}.\"*\" = \"host:25\"")
        return dict(value)
    if isinstance(tp, types.UnionType):  # pragma: no cover - no such fields yet
        raise ConfigError(f"{key}: unsupported type")
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover


def _check(s: Settings) -> None:
    positive = {
        "database.pool_min": s.database.pool_min,
        "database.pool_max": s.database.pool_max,
        "queue.claim_batch": s.queue.claim_batch,
        "queue.flush_batch": s.queue.flush_batch,
        "delivery.concurrency": s.delivery.concurrency,
        "delivery.connections_per_host": s.delivery.connections_per_host,
        "delivery.messages_per_connection": s.delivery.messages_per_connection,
    }
    for key, v in positive.items():
        if v < 1:
            raise ConfigError(f"{key} must be at least 1, not {v}")
    if s.database.pool_min > s.database.pool_max:
        raise ConfigError("database.pool_min must not be larger than database.pool_max")
    if s.queue.lease_seconds < 1:
        raise ConfigError("queue.lease_seconds must be at least 1 second")
    if s.queue.retry_base <= 0 or s.queue.retry_max < s.queue.retry_base:
        raise ConfigError("queue.retry_base must be > 0 and queue.retry_max >= queue.retry_base")
    if s.delivery.starttls not in ("opportunistic", "off"):
        raise ConfigError(
            f"delivery.starttls must be \"opportunistic\" or \"off\", not {s.delivery.starttls!r}"
        )
    if not all(isinstance(entry, str) for entry in s.delivery.tls_required):
        raise ConfigError("delivery.tls_required must be a list of site or MX host names")
    for domain, target in s.routing.transport.items():
        parse_host_port(f"routing.transport.{domain}", target, 25)
    if s.metrics.listen:
        parse_host_port("metrics.listen", s.metrics.listen, 9464)
    if s.inbound.listen:
        parse_host_port("inbound.listen", s.inbound.listen, 25)
    if bool(s.inbound.tls_cert) != bool(s.inbound.tls_key):
        raise ConfigError("inbound.tls_cert and inbound.tls_key must be given together")
    if s.inbound.max_message_size < 1024:
        raise ConfigError("inbound.max_message_size must be at least 1024 bytes")
    _check_submission(s.submission)
    if s.http.public_url and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9_./~-]*)?",
                                               s.http.public_url):
        raise ConfigError(
            f"http.public_url {s.http.public_url!r} is not a usable base URL: write it like "
            "\"https://mail.city.example.jp\" (no query, no spaces)"
        )
    if s.http.public_url.startswith("http://") and not s.http.allow_insecure_public_url:
        raise ConfigError(
            f"http.public_url {s.http.public_url!r} は https:// で始めてください。"
            "ワンクリック配信停止 (RFC 8058) と個人用リンクには https が必要です / "
            "http.public_url must be https://: RFC 8058 one-click unsubscribe requires it and "
            "the personal links carry tokens (a test set-up may set "
            "[http] allow_insecure_public_url = true)"
        )
    if s.http.listen:
        parse_host_port("http.listen", s.http.listen, 8080)
    parse_networks("http.trusted_proxies", s.http.trusted_proxies)
    if s.inbound.desk_per_minute < 1 or s.inbound.desk_per_sender_hour < 1:
        raise ConfigError("inbound.desk_per_minute and inbound.desk_per_sender_hour must be "
                          "at least 1")
    if s.suppression.soft_threshold < 1:
        raise ConfigError("suppression.soft_threshold must be at least 1")
    if s.people.registration_address and "@" not in s.people.registration_address:
        raise ConfigError(
            f"people.registration_address {s.people.registration_address!r} is not an address"
        )
    if s.people.registration_address and not s.http.public_url:
        raise ConfigError(
            "people.registration_address needs http.public_url (the base of the registration "
            "links in the replies)"
        )
    if s.people.report_address and (
        "@" not in s.people.report_address or not s.http.public_url
    ):
        raise ConfigError(
            f"people.report_address {s.people.report_address!r} must be an address, and needs "
            "http.public_url (the base of the report page's link)"
        )
    if not 1 <= s.people.registration_link_hours <= 24 * 14:
        raise ConfigError("people.registration_link_hours must be between 1 and 336")
    if not s.people.key and not s.people.key_file:
        raise ConfigError("people.key or people.key_file must be set")
    if s.staff.max_failures < 1:
        raise ConfigError("staff.max_failures must be at least 1")
    if s.staff.session_ttl < 60:
        raise ConfigError("staff.session_ttl must be at least 60 seconds")
    if not 60 <= s.staff.idle_timeout <= s.staff.session_ttl:
        raise ConfigError(
            "staff.idle_timeout must be at least 60 seconds and at most staff.session_ttl"
        )
    if s.staff.lockout_time < 30:
        raise ConfigError("staff.lockout_time must be at least 30 seconds (the first wait)")
    if 0 < s.staff.password_max_age < 86400:
        raise ConfigError("staff.password_max_age must be 0 (never) or at least 1 day (\"1d\")")
    if s.queue.keep < 31 * 86400:
        raise ConfigError("queue.keep must be at least 31 days (\"31d\" or more)")
    if s.staff.audit_keep < 90 * 86400:
        raise ConfigError("staff.audit_keep must be at least 90 days (\"90d\" or more)")
    a = s.attachments
    check_attachments(a.max_size, a.max_total, a.max_files, a.link_days, a.keep_days, a.types)
    check_host_and_log(s.host, s.log)
    check_backup(s.backup.keep_daily, s.backup.daily_at, s.backup.key_file, {
        "people.key_file": s.people.key_file,
        "people.link_key_file": s.people.link_key_file,
        "staff.audit_key_file": s.staff.audit_key_file,
    })


def _check_submission(sub: SubmissionSettings) -> None:
    if not sub.listen:
        return
    host, _ = parse_host_port("submission.listen", sub.listen, 587)
    if not sub.domain or "@" in sub.domain or "." not in sub.domain:
        raise ConfigError(
            "submission.domain must be a domain like \"mail.city.example.jp\" when "
            "submission.listen is set (group addresses are <audience>@<school>.<domain>)"
        )
    if bool(sub.tls_cert) != bool(sub.tls_key):
        raise ConfigError("submission.tls_cert and submission.tls_key must be given together")
    if not sub.tls_cert and not sub.allow_plain_auth:
        raise ConfigError(
            "submission.tls_cert/tls_key are needed: API keys are only taken over STARTTLS"
        )
    if sub.allow_plain_auth and not is_loopback(host):
        raise ConfigError(
            "submission.allow_plain_auth is for development on a loopback address only "
            f"(not {host!r})"
        )
    if sub.max_message_size < 1024:
        raise ConfigError("submission.max_message_size must be at least 1024 bytes")
    if sub.rate_per_minute < 1:
        raise ConfigError("submission.rate_per_minute must be at least 1")
