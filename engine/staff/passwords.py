"""Passwords: argon2id hashing (argon2-cffi) off the event loop, and what a password must be."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.platform.errors import InputError

MIN_LENGTH = 10
_hasher = PasswordHasher()
# Verified against when the login is unknown, so that an unknown login takes as long as a
# wrong password and does not reveal which logins exist.
_DUMMY = _hasher.hash("mamoru dummy password")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InputError(
            f"パスワードは {MIN_LENGTH} 文字以上にしてください "
            f"(a password needs at least {MIN_LENGTH} characters)"
        )
    if len(password) > 256:
        raise InputError("パスワードが長すぎます (a password has at most 256 characters)")


async def hash_password(password: str) -> str:
    check_strength(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; ``stored`` None (unknown login) is always False."""
    ok = await asyncio.to_thread(_verify, stored or _DUMMY, password)
    return ok and stored is not None


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
