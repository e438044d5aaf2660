"""Registration codes: the secret printed on a child's notice that links an address to it.

Twelve characters from an alphabet without look-alikes (no 0/O, 1/I/L, 2/Z, 5/S, 8/B), shown
in three groups of four (``KX7M-3QHD-WA9R``): 25^12 ≈ 2^55 codes, drawn with ``secrets``, so
guessing one is hopeless once wrong guesses are rate-limited. Typed codes are forgiving:
lower case, full-width characters, spaces and hyphens are accepted.
"""

from __future__ import annotations

import secrets
import unicodedata

from engine.platform.errors import InputError

ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
LENGTH = 12


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return display(raw)


def display(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, LENGTH, 4))


def normalise_code(text: str) -> str:
    """The code as stored (upper case, grouped with hyphens), or InputError saying why."""
    plain = unicodedata.normalize("NFKC", text).upper()
    plain = "".join(ch for ch in plain if ch not in " -\u30fc\u2010\u2212")
    if len(plain) != LENGTH or any(ch not in ALPHABET for ch in plain):
        raise InputError(
            f"登録コード「{text.strip()}」の形が正しくありません "
            f"(a registration code is {LENGTH} letters and digits, e.g. KX7M-3QHD-WA9R)"
        )
    return display(plain)
