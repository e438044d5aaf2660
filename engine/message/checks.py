"""Checks of what an operator asks to send, before anything is stored.

A subject with a character that Python's email package treats as a line break (``\\v \\f
\\x1c-\\x1e \\x85 U+2028 U+2029``) or any other control character would be accepted, then fail to
render on every attempt and expire after a day of retries, emergency mail included. NUL or
undecodable bytes (a command line in another encoding) are refused the same way. A mail
larger than a carrier accepts would be refused by it at every attempt; it is refused here, with
the advice to attach files as links. Every problem is an ``InputError`` of one line, Japanese
first.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from engine.platform.errors import InputError
from engine.throttle.profiles import Profile

__all__ = [
    "MAX_SUBJECT", "check_body", "check_sender_name", "check_size", "check_subject", "size_cap",
]

# Unicode categories refused in a subject: controls (Cc, which includes \t \v \f \x1c-\x1e
# \x85), line and paragraph separators, and surrogates (undecodable bytes from the command
# line arrive as lone surrogates).
_REFUSED_IN_SUBJECT = frozenset({"Cc", "Zl", "Zp", "Cs"})
_MB = 1_000_000
# A display name is a school's or a board's name; longer is a mistake (a pasted text).
MAX_SENDER_NAME = 200
# The one limit of a subject, for the staff API, the screens and `mamoru send` alike: phones
# show about 20-40 characters of it; longer is a pasted text.
MAX_SUBJECT = 200


def check_subject(subject: str, option: str = "--subject") -> None:
    """InputError if the subject is empty, longer than ``MAX_SUBJECT`` characters, or not one
    line of printable text."""
    _check_line(subject, option, "件名", "subject")
    if len(subject.strip()) > MAX_SUBJECT:
        raise InputError(
            f"{option}: 件名は {MAX_SUBJECT} 文字までです（{len(subject.strip())} 文字） / "
            f"the subject has {len(subject.strip())} characters, at most {MAX_SUBJECT}"
        )


def check_sender_name(name: str, option: str = "--sender-name") -> None:
    """InputError if the From display name is empty, longer than ``MAX_SENDER_NAME``
    characters, or not one line of printable text."""
    _check_line(name, option, "差出人名", "sender name")
    if len(name.strip()) > MAX_SENDER_NAME:
        raise InputError(
            f"{option}: 差出人名は {MAX_SENDER_NAME} 文字までです（{len(name.strip())} 文字） / "
            f"the sender name has {len(name.strip())} characters, at most {MAX_SENDER_NAME}"
        )


def _check_line(text: str, option: str, what_ja: str, what: str) -> None:
    if not text.strip():
        raise InputError(f"{option} が空です / the {what} is empty")
    for position, char in enumerate(text, start=1):
        category = unicodedata.category(char)
        if category not in _REFUSED_IN_SUBJECT:
            continue
        if category == "Cs":
            raise InputError(
                f"{option} が UTF-8 として読めません（{position} 文字目） / the {what} is not "
                "valid UTF-8: write it in UTF-8"
            )
        raise InputError(
            f"{option} に改行または制御文字 U+{ord(char):04X} があります（{position} 文字目）。"
            f"{what_ja}は改行のない 1 行で書いてください / the {what} contains the control or "
            f"line-break character U+{ord(char):04X} at position {position}: a {what} is one "
            "line without control characters"
        )


def check_body(body: str, option: str = "--body-file") -> None:
    """InputError if the body is empty or holds NUL or undecodable characters."""
    if not body.strip():
        raise InputError(f"{option} の本文が空です / the body is empty: there is nothing to send")
    if "\0" in body:
        line = body.count("\n", 0, body.index("\0")) + 1
        raise InputError(
            f"{option} の {line} 行目に NUL 文字があります / line {line} of the body contains "
            "a NUL character: save the text again as plain UTF-8"
        )
    for char in body:
        if "\ud800" <= char <= "\udfff":
            raise InputError(
                f"{option} が UTF-8 として読めません / the body is not valid UTF-8 text"
            )


def size_cap(domains: Iterable[str], profiles: Mapping[str, Profile]) -> tuple[int, str] | None:
    """The smallest message size cap among the sites of `domains`: (bytes, profile name)."""
    caps = [
        (profile.max_message_size, profile.name)
        for profile in profiles.values()
        if profile.max_message_size > 0 and profile.domains
    ]
    if not caps:
        return None
    found: tuple[int, str] | None = None
    for domain in {d.lower() for d in domains}:
        for cap, name in caps:
            profile = profiles[name]
            if any(domain == d or domain.endswith("." + d) for d in profile.domains):
                if found is None or cap < found[0]:
                    found = (cap, name)
    return found


def check_size(size: int, cap: tuple[int, str] | None) -> None:
    """InputError if a mail of `size` bytes is over the audience's smallest carrier cap."""
    if cap is None or size <= cap[0]:
        return
    limit, site = cap
    raise InputError(
        f"メールが大きすぎます（約 {size / _MB:.1f} MB）。宛先の {site} は {limit / _MB:.1f} MB "
        "までしか受け取りません。添付ファイルは本文に入れず、リンクとして添付してください / the "
        f"mail (about {size / _MB:.1f} MB) is over the {limit / _MB:.1f} MB that {site} accepts: "
        "attach files as links instead of putting them in the mail"
    )
