"""Passwords: argon2id hashing (argon2-cffi) off the event loop, and what a password must be.

The rule follows NIST SP 800-63B (5.1.1.2): long rather than complicated. A password has at
least 12 characters (any characters, spaces and Japanese included), is not one character
repeated (also when its spaces are left out), is not on the list of common passwords
(``password_list``) and is not the account's login ID; nothing else (no forced mix of
character kinds). The rule is applied wherever a password is set: a new account, a change of
one's own password and an administrator's reset, by the API and the command line alike.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.platform.errors import InputError
from engine.staff.password_list import MIN_LENGTH, common, normal

MAX_LENGTH = 256
_hasher = PasswordHasher()
# Verified against when the login is unknown, so that an unknown login takes as long as a
# wrong password and does not reveal which logins exist.
# Made on first use, not at import: every command line would pay for one argon2 hash.
@functools.cache
def _dummy() -> str:
    return _hasher.hash("mamoru dummy password")


def check_strength(password: str, login: str = "") -> None:
    """InputError (in Japanese, with English) when ``password`` breaks the rule."""
    if len(password) < MIN_LENGTH:
        raise InputError(
            f"パスワードは {MIN_LENGTH} 文字以上にしてください。覚えやすい言葉をいくつか"
            f"つなげた長いものがおすすめです (a password needs at least {MIN_LENGTH} characters)"
        )
    if len(password) > MAX_LENGTH:
        raise InputError(
            f"パスワードが長すぎます ({MAX_LENGTH} 文字まで) "
            f"(a password has at most {MAX_LENGTH} characters)"
        )
    plain = normal(password)
    if len(set(plain)) <= 1:
        raise InputError(
            "同じ文字の繰り返しはパスワードに使えません (a password may not be one character "
            "repeated)"
        )
    if login and plain == normal(login):
        raise InputError(
            "ログイン ID と同じパスワードは使えません (a password may not be the login ID)"
        )
    if plain in common():
        raise InputError(
            "このパスワードはよく使われていて推測されやすいため使えません。別のものにしてください "
            "(this password is on the list of common passwords)"
        )


async def hash_password(password: str, login: str = "") -> str:
    """The argon2id hash of a password that keeps the rule (InputError otherwise)."""
    check_strength(password, login)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; ``stored`` None (unknown login) is always False, after
    the same work as a real check."""
    ok = await asyncio.to_thread(_verify, stored or _dummy(), password)
    return ok and stored is not None


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


async def rehash(password: str) -> str:
    """A fresh hash of a password already accepted (argon2 parameters changed): no rule check,
    so an old password that predates the rule still signs in."""
    return await asyncio.to_thread(_hasher.hash, password)
