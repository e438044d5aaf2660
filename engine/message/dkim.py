"""DKIM signing of outbound mail: one key operation per mail, and as little else as possible.

Every mail of a broadcast has the same header fields but a few of its own (To, Message-ID,
its personal List-Unsubscribe) and, with personal links, its own body:

    signer = DkimSigner(keys, clock, expiry)         # loads and checks every key file once
    prepared = signer.prepare_body(body)             # relaxed body hash (per body)
    signature = signer.sign_parts(own, common, prepared, from_domain)   # per mail
    # or signer.sign_fields(own_fields, ...) with the own fields already split
    # or signer.sign(header_block, prepared, from_domain) for any header block

Every field of SIGNED_HEADERS is oversigned and signatures carry x= (expiry). Work that is the
same for every mail is done once and remembered: the shared fields are parsed and
canonicalised once per broadcast, and the h= list and which fields enter the hash in which
order once per shape of header, and the tags but t=, x= and bh= are folded once per key and
shape (the per-mail ones go on lines of their own). Per mail remain the mail's own fields
(one-line values are canonicalised without regular expressions; anything else goes through
dkimpy's canonicalisation, whose body canonicalisation and folding are used too) and the
RSA-SHA256 (PKCS#1 v1.5) or Ed25519 (RFC 8463) private-key step, done by `cryptography`
(OpenSSL) rather than dkimpy's pure-Python modular exponentiation.

Keys are loaded and checked by engine/message/_dkim_keys.py (names re-exported here).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dkim
from dkim.canonicalization import Relaxed

from engine.message._dkim_keys import (
    ALGORITHMS,
    Algorithm,
    DkimKey,
    LoadedKey,
    dns_record_name,
    generate_key,
    load_key,
    txt_record_strings,
)
from engine.platform.clock import Clock, SystemClock
from engine.platform.config import Duration, parse_duration
from engine.platform.errors import ConfigError, DkimError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_EXPIRY",
    "SIGNED_HEADERS",
    "Algorithm",
    "BodyHead",
    "DkimKey",
    "DkimSettings",
    "DkimSigner",
    "PreparedBody",
    "dkim_settings",
    "dns_record_name",
    "generate_key",
    "txt_record_strings",
]

#: Header fields signed, lower-case as they appear in h=. Each is listed once more than it
#: is present ("oversigned"; an absent one is listed once): a verifier then hashes an empty
#: field for the extra entry, so a field added after signing (a second Subject or To, a
#: Reply-To that was not there) breaks the signature instead of being shown to the reader.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"in-reply-to",
    b"references",
    b"auto-submitted",
    b"feedback-id",
)
_SIGNED_SET = frozenset(SIGNED_HEADERS)
#: The default lifetime of a signature (x= - t=): long enough for any retry (max_age is 24 h)
#: and for a guardian's mail client to check it days later, short enough that a captured mail
#: cannot be replayed with a valid signature for ever.
DEFAULT_EXPIRY = 7 * 86400

_HEADER_NAME = b"DKIM-Signature"
# dkimpy's fold() counts the field name against its 72-column line; ": " follows the name.
_NAME_WIDTH = len(_HEADER_NAME) + 2
_BARE_LF = re.compile(rb"(?<!\r)\n")
# A header block of "Name:value" fields, each CRLF-terminated and perhaps folded onto
# continuation lines (which start with a space or tab), with no stray CR or LF: what the
# template writes per mail (List-Unsubscribe is folded after its comma).
_SIMPLE_BLOCK = re.compile(rb"(?:[!-9;-~]+:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)*")


class BodyHead:
    """The start of bodies that many mails share (a broadcast's text before the personal
    links, base64-encoded): its SHA-256 state is computed once, so each mail hashes only its
    own tail (``DkimSigner.prepare_body(tail, head)``)."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        # Canonical as it is (base64 lines: no space, no tab, CRLF line ends): then the
        # relaxed form of head + tail is head + the tail's relaxed form.
        self.canonical = not head or (
            b" " not in head
            and b"\t" not in head
            and head.endswith(b"\r\n")
            and head.count(b"\n") == head.count(b"\r\n")
        )
        self.state = hashlib.sha256(head)


@dataclass(frozen=True)
class PreparedBody:
    """The relaxed-canonicalised body hash of one broadcast, shared by all its recipients.

    Both supported algorithms hash with SHA-256, so one hash serves every key.
    """

    body_hash: bytes  # base64 of SHA-256 over the relaxed body: the bh= value


class DkimSigner:
    """Signs mail for the configured domains; cheap to call once per recipient.

    Several keys may be configured for one domain (say RSA and Ed25519 during a migration):
    each gives its own DKIM-Signature header.
    """

    def __init__(
        self, keys: Iterable[DkimKey], clock: Clock | None = None, expiry: int = DEFAULT_EXPIRY
    ) -> None:
        """`expiry`: seconds from signing until the signature expires (x=); 0: no x= tag."""
        self._clock: Clock = clock or SystemClock()
        self._expiry = expiry
        self._by_domain: dict[str, list[LoadedKey]] = {}
        seen: dict[tuple[str, str], Path] = {}
        for key in keys:
            where = (key.domain.lower(), key.selector.lower())
            if where in seen:
                raise DkimError(
                    f"DKIM keys {seen[where]} and {key.private_key} are both configured for "
                    f"selector {key.selector!r} of {key.domain}: give each key its own selector"
                )
            seen[where] = key.private_key
            self._by_domain.setdefault(where[0], []).append(load_key(key))

    @property
    def domains(self) -> frozenset[str]:
        """The (lower-case) domains this signer has at least one key for."""
        return frozenset(self._by_domain)

    def signs_for(self, domain: str) -> bool:
        """Whether mail from `domain` gets at least one DKIM signature."""
        return domain.lower() in self._by_domain

    def prepare_body(self, body: bytes, head: BodyHead | None = None) -> PreparedBody:
        """Hash the body once for a whole broadcast (relaxed canonicalisation, SHA-256).

        `body` is everything after the empty line that ends the header, before SMTP dot
        stuffing. Bare LF line ends are hashed as CRLF because that is how they go on the wire.
        With `head`, the body is ``head.head + body``: a tail that is canonical as it is (base64
        lines) is hashed on from the head's state, the head is not hashed again.
        """
        if head is not None:
            if (
                head.canonical
                and len(body) > 2
                and b" " not in body
                and b"\t" not in body
                and body.endswith(b"\r\n")
                and not body.endswith(b"\r\n\r\n")
                and body.count(b"\n") == body.count(b"\r\n")
            ):
                state = head.state.copy()
                state.update(body)
                return PreparedBody(base64.b64encode(state.digest()))
            body = head.head + body
        if body.count(b"\n") != body.count(b"\r\n"):
            body = _BARE_LF.sub(b"\r\n", body)
        if (
            b" " not in body
            and b"\t" not in body
            and body.endswith(b"\r\n")
            and not body.endswith(b"\r\n\r\n")
        ):
            # Already canonical (base64 lines, one CRLF at the end: nothing to strip or
            # collapse): skips dkimpy's regular expressions for bodies encoded per recipient.
            canonical = body
        else:
            canonical = Relaxed.canonicalize_body(body)
        return PreparedBody(base64.b64encode(hashlib.sha256(canonical).digest()))

    def sign(
        self,
        header_block: bytes,
        prepared: PreparedBody,
        domain: str,
        leave_out: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """Return the DKIM-Signature header line(s) to prepend to `header_block`.

        `header_block` is the message header, CRLF-terminated lines without the empty line
        that ends it; `domain` is the domain of its From address. One signature is made per
        key configured for that domain; a domain without keys gets b"" (mail goes unsigned).
        Every field of `SIGNED_HEADERS` is oversigned, except the (lower-case) names in
        `leave_out`: those are neither signed nor listed, for a signature shared by mails
        that each add their own such fields later (the shared-signature mode).
        """
        return self.sign_parts(header_block, b"", prepared, domain, leave_out)

    def sign_parts(
        self,
        own: bytes,
        common: bytes,
        prepared: PreparedBody,
        domain: str,
        leave_out: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """`sign(own + common, ...)`, for a header block whose `common` part is shared by
        many mails: that part is parsed once and remembered, only `own` per mail."""
        if domain.lower() not in self._by_domain:
            return b""
        return self.sign_fields(_parse_header_block(own, domain), common, prepared, domain,
                                leave_out)

    def sign_fields(
        self,
        own: list[tuple[bytes, bytes]],
        common: bytes,
        prepared: PreparedBody,
        domain: str,
        leave_out: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """`sign_parts` for own fields given already split into (name, value), the value as
        dkimpy's parser gives it (with its leading space, its folds and its CRLF): what the
        template writes per mail, so no header block is parsed per mail."""
        keys = self._by_domain.get(domain.lower())
        if not keys:
            return b""
        fields = _signable(own)
        if common:
            fields = fields + _common_fields(common, domain)
        if leave_out:
            fields = [field for field in fields if field[0] not in leave_out]
        plan = _plan(tuple(name for name, _ in fields), leave_out)
        if plan is None:
            raise DkimError(
                f"cannot DKIM-sign mail from {domain}: the message has no From header; "
                "this is a bug in whatever built the message"
            )
        include, order = plan
        signed_data = b"".join([fields[i][1] for i in order])
        now = int(self._clock.now().timestamp())
        # The tags that differ per mail (t=, x=, bh=) come last, each line of them written
        # here; the rest (v=, a=, c=, d=, s= and the long h=) is folded once per key and h=.
        if self._expiry > 0:
            times = b"t=%d; x=%d;" % (now, now + self._expiry)
        else:
            times = b"t=%d;" % now
        body_hash = b"bh=" + prepared.body_hash + b";"
        return b"".join(
            [_signature_header(key, include, times, body_hash, signed_data) for key in keys]
        )


def _parse_header_block(header_block: bytes, domain: str) -> list[tuple[bytes, bytes]]:
    if not header_block:
        return []
    if _SIMPLE_BLOCK.fullmatch(header_block):
        # Split here, the same result as dkimpy's parser (the value with its leading space,
        # its folds and its CRLF) for less: a mail's own fields are parsed once per mail.
        fields: list[tuple[bytes, bytes]] = []
        for line in header_block[:-2].split(b"\r\n"):
            if line[:1] in (b" ", b"\t"):
                name, value = fields[-1]
                fields[-1] = (name, value + line + b"\r\n")
            else:
                name, _, value = line.partition(b":")
                fields.append((name, value + b"\r\n"))
        return fields
    try:
        headers, _ = dkim.rfc822_parse(header_block)
    except dkim.MessageFormatError as exc:
        raise DkimError(
            f"cannot DKIM-sign mail from {domain}: its header block is malformed ({exc}); "
            "this is a bug in whatever built the message"
        ) from exc
    return [(bytes(name), bytes(value)) for name, value in headers]


def _signable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(lower-case name, canonical field) of the fields that are signed, in message order."""
    return [
        (lower, _canonical_header(name, value))
        for name, value in headers
        if (lower := name.lower()) in _SIGNED_SET
    ]


@functools.lru_cache(maxsize=64)
def _common_fields(common: bytes, domain: str) -> list[tuple[bytes, bytes]]:
    """`_signable` of the shared part of a broadcast's header blocks, computed once (callers
    must not change the list: it is returned to every caller)."""
    return _signable(_parse_header_block(common, domain))


@functools.lru_cache(maxsize=256)
def _plan(
    names: tuple[bytes, ...], leave_out: frozenset[bytes]
) -> tuple[bytes, tuple[int, ...]] | None:
    """For fields with these names (in message order): the h= value, every name of
    SIGNED_HEADERS listed once more than present (oversigning), and which fields enter the
    hash in h= order: for a name listed k times, its last k instances from the bottom up (RFC
    6376 §5.4.2). None without From. The same for every mail of a broadcast, so memoised."""
    if b"from" not in names:
        return None
    positions: dict[bytes, list[int]] = {}
    for i, name in enumerate(names):
        positions.setdefault(name, []).append(i)
    include = [
        name
        for name in SIGNED_HEADERS
        if name not in leave_out
        for _ in range(len(positions.get(name, ())) + 1)
    ]
    order = []
    for name in include:
        found = positions.get(name)
        if found:
            order.append(found.pop())
    return b" : ".join(include), tuple(order)


def _canonical_header(name: bytes, value: bytes) -> bytes:
    """One header field, relaxed-canonicalised, as it enters the header hash.

    A value without tabs whose folds (CRLF before a space) leave no run of spaces (what the
    template writes per mail) is only unfolded and loses its outer spaces; anything else goes
    through dkimpy's canonicalisation.
    """
    if value.endswith(b"\r\n") and b"\t" not in value:
        unfolded = value[:-2].replace(b"\r\n ", b" ")
        if b"  " not in unfolded and b"\r" not in unfolded and b"\n" not in unfolded:
            return name.lower() + b":" + unfolded.strip(b" ") + b"\r\n"
    return _canonical_header_dkimpy(name, value)


@functools.lru_cache(maxsize=4096)
def _canonical_header_dkimpy(name: bytes, value: bytes) -> bytes:
    """Memoised because the recipients of a broadcast share most of their header fields: the
    regular expressions run once per broadcast instead of once per mail."""
    ((name, value),) = Relaxed.canonicalize_headers([(name, value)])
    return bytes(name + b":" + value)


@functools.lru_cache(maxsize=256)
def _fixed_tags(prefix: bytes, include: bytes) -> tuple[bytes, bytes]:
    """The tags that are the same for every mail of a key and a shape of header (v=, a=, c=,
    d=, s=, h=), and dkimpy's folding of them: folded once, not per mail."""
    tags = prefix + b" h=" + include + b";"
    return tags, dkim.fold(tags, namelen=_NAME_WIDTH)


def _signature_header(
    key: LoadedKey, include: bytes, times: bytes, body_hash: bytes, signed_data: bytes
) -> bytes:
    # The fixed tags as dkimpy folds them, then t= (x=) and bh= on lines of their own, then
    # b= on its own, so the part that is hashed (everything up to "b=") is exactly what is
    # sent; dkimpy's fold() only breaks at spaces, and each line break written here stands
    # for one space, where relaxed canonicalisation turns the break back into that space.
    fixed, folded = _fixed_tags(key.tag_prefix, include)
    # Relaxed canonicalisation of that field: the folds become the single spaces they replaced
    # (the tags hold no tab and no run of spaces), so the canonical form is known without
    # running the regular expressions. The field is hashed last and without its CRLF (RFC 6376
    # 3.7).
    digest = hashlib.sha256(
        b"%sdkim-signature:%s %s %s b=" % (signed_data, fixed, times, body_hash)
    ).digest()
    signature = _fold_unbroken(base64.b64encode(key.sign_digest(digest)))
    return b"%s: %s\r\n %s\r\n %s\r\n b=%s\r\n" % (
        _HEADER_NAME, folded, times, body_hash, signature
    )


def _fold_unbroken(value: bytes) -> bytes:
    """``dkim.fold(value, namelen=3)`` for a value without spaces or line breaks (the b=
    value, base64): 69 characters on the first line (behind " b="), then 71 per line, cut
    by slicing rather than by dkimpy's search for a space on every line."""
    if len(value) <= 69:
        return value
    lines = [value[:69]]
    lines += [value[i : i + 71] for i in range(69, len(value), 71)]
    return b"\r\n ".join(lines)


@dataclass(frozen=True)
class DkimSettings:
    """The `[dkim]` section: the keys, how mails are signed, and what happens without a key."""

    keys: tuple[DkimKey, ...] = ()
    # True (default): every mail is signed on its own, all its fields oversigned, at one
    # private-key operation (about 0.85 ms for RSA-2048) per mail. False (`shared_signature =
    # true`, or the older `sign_per_recipient = false`): mails without personal fields share
    # one signature per broadcast that leaves To and Message-ID out, so a captured mail's
    # signature also "verifies" with another To: a replay risk, for non-personal mail only.
    # Mail with personal fields (List-Unsubscribe) is always signed on its own.
    sign_per_recipient: bool = True
    # Seconds a signature stays valid (x=); 0: no expiry.
    expiry: int = DEFAULT_EXPIRY
    # Whether mail from a sender domain without a key may go out unsigned.
    allow_unsigned: bool = False

    def signer(self, clock: Clock | None = None) -> DkimSigner | None:
        """The signer for these keys (None without keys); key problems raise DkimError."""
        return DkimSigner(self.keys, clock, self.expiry) if self.keys else None

    def unsigned_domains(self, domains: Iterable[str]) -> list[str]:
        """The sender domains among `domains` that no key signs for, sorted."""
        have = {key.domain.lower() for key in self.keys}
        return sorted({d.lower() for d in domains} - have)


_KEY_FIELDS = {"domain", "selector", "private_key", "algorithm"}
_SECTION_KEYS = ("keys", "sign_per_recipient", "shared_signature", "expiry", "allow_unsigned")


def dkim_settings(raw: Mapping[str, object]) -> DkimSettings:
    """Read the `[dkim]` section of the configuration; ConfigError names the bad key."""
    unknown = set(raw) - set(_SECTION_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key dkim.{sorted(unknown)[0]} (known keys in [dkim]: "
            f"{', '.join(_SECTION_KEYS)})"
        )
    flags: dict[str, bool] = {}
    for name in ("sign_per_recipient", "shared_signature", "allow_unsigned"):
        value = raw.get(name)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"dkim.{name} must be true or false")
        if value is not None:
            flags[name] = value
    if flags.get("sign_per_recipient") is True and flags.get("shared_signature") is True:
        raise ConfigError(
            "dkim.sign_per_recipient = true and dkim.shared_signature = true contradict each "
            "other: keep only shared_signature (or neither, for the default: every mail signed "
            "on its own)"
        )
    per_recipient = not (
        flags.get("shared_signature", False) or flags.get("sign_per_recipient") is False
    )
    expiry = Duration(parse_duration("dkim.expiry", raw.get("expiry", DEFAULT_EXPIRY)))
    if 0 < expiry < 3600:
        raise ConfigError(
            "dkim.expiry must be at least 1h (a signature must outlive the retries), or 0 for "
            "no expiry"
        )
    tables = raw.get("keys", [])
    if not isinstance(tables, list):
        raise ConfigError("dkim.keys must be an array of tables, written [[dkim.keys]]")
    keys: list[DkimKey] = []
    for i, table in enumerate(tables):
        where = f"dkim.keys[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table with domain, selector and private_key")
        extra = set(table) - _KEY_FIELDS
        if extra:
            raise ConfigError(f"unknown key {where}.{sorted(extra)[0]}")
        for field in ("domain", "selector", "private_key"):
            if not isinstance(table.get(field), str) or not table[field]:
                raise ConfigError(f"{where}.{field} is missing or not a string")
        algorithm = table.get("algorithm", "rsa-sha256")
        if algorithm not in ALGORITHMS:
            raise ConfigError(
                f"{where}.algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}"
            )
        keys.append(
            DkimKey(table["domain"], table["selector"], Path(table["private_key"]), algorithm)
        )
    return DkimSettings(
        tuple(keys), per_recipient, int(expiry), flags.get("allow_unsigned", False)
    )
