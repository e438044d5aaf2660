"""The list of common passwords a staff password may not be (NIST SP 800-63B, 5.1.1.2).

The list ships as ``common_passwords.txt`` beside this module, one entry a line, in the form
``normal`` makes (NFKC, lower case, no spaces). It is not copied from any leaked-password list:
``generate`` builds it from well-known, public patterns — keyboard walks, digit and alphabet
runs, short units repeated, and the words people most often build passwords from (English and
romanised Japanese: "password", "iloveyou", "sakura", the commonest family names, the school
words of this system) with the suffixes people add (digits, years, "!"). Only entries of at
least 12 characters are kept: shorter ones fail the length rule anyway.

Regenerate after changing the patterns with ``python -m engine.staff.password_list``.
"""

from __future__ import annotations

import functools
import unicodedata
from itertools import product
from pathlib import Path

MIN_LENGTH = 12
LIST_FILE = Path(__file__).with_name("common_passwords.txt")

_WORDS = (
    # English words and phrases seen at the top of every published analysis.
    "password", "passw0rd", "p@ssword", "p@ssw0rd", "pass", "iloveyou", "letmein", "welcome",
    "admin", "administrator", "qwerty", "monkey", "dragon", "sunshine", "princess", "football",
    "baseball", "soccer", "master", "superman", "batman", "trustno1", "starwars", "whatever",
    "shadow", "michael", "charlie", "computer", "internet", "changeme", "secret", "login",
    "hello", "helloworld", "test", "testing", "guest", "user", "root", "default", "summer",
    "winter", "spring", "autumn", "freedom", "love", "loveyou", "iloveu", "abc", "abcd",
    "abcdef", "qwe", "asdf", "zxcv", "qazwsx", "letmein", "access", "security", "welcome1",
    # Romanised Japanese: greetings, seasons, places, characters, school words.
    "sakura", "tokyo", "osaka", "kyoto", "nihon", "nippon", "japan", "fuji", "fujisan",
    "doraemon", "pokemon", "pikachu", "naruto", "hellokitty", "daisuki", "aishiteru",
    "arigatou", "arigato", "konnichiwa", "ohayou", "himawari", "tanpopo", "kawaii",
    "gakkou", "gakko", "sensei", "kyouiku", "kyoiku", "kyouikuiinkai", "shougakkou",
    "chuugakkou", "kouchou", "kyoutou", "seito", "hogosha", "renraku", "mamoru", "mail",
    # The commonest Japanese family names (public statistics).
    "sato", "satou", "suzuki", "takahashi", "tanaka", "watanabe", "ito", "itou", "yamamoto",
    "nakamura", "kobayashi", "kato", "katou", "yoshida", "yamada", "sasaki", "yamaguchi",
    "matsumoto", "inoue", "kimura", "hayashi", "shimizu", "yamazaki", "mori", "abe", "ikeda",
    "hashimoto", "yamashita", "ishikawa", "nakajima", "maeda", "fujita", "ogawa", "goto",
)

_SUFFIXES = (
    "", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789",
    "!", "1!", "123!", "!!", "01", "00", "0000", "111", "777", "@123", "#1", "2525",
)

# Keyboard rows (JIS and US share the letter rows) and common diagonal walks.
_WALKS = (
    "1234567890-^", "qwertyuiop@[", "asdfghjkl;:]", "zxcvbnm,./", "1234567890-=",
    "qwertyuiop[]", "asdfghjkl;'", "1qaz2wsx3edc4rfv5tgb6yhn", "zaq12wsxcde34rfvbgt5",
    "1q2w3e4r5t6y7u8i9o0p", "q1w2e3r4t5y6u7i8o9p0", "qazwsxedcrfvtgbyhnujm",
    "zxcvbnmasdfghjklqwertyuiop", "qwertyuiopasdfghjklzxcvbnm", "!qaz@wsx#edc$rfv",
    "1qazxsw23edcvfr4", "poiuytrewq", "lkjhgfdsa", "mnbvcxz", "0987654321",
)

_UNITS = (
    "12", "123", "1234", "12345", "123456", "abc", "abcd", "qwe", "asd", "zxc", "qwer",
    "asdf", "1q2w", "a1", "ab", "aa11", "xyz", "love", "pass", "0", "01", "007", "69", "99",
    "111", "000", "11", "00", "ha", "la", "na", "yo",
)


def normal(text: str) -> str:
    """The form compared with the list: NFKC (full-width letters become ASCII), lower case,
    without spaces of any kind."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if not ch.isspace())


def generate() -> list[str]:
    """Every entry of the list, sorted (see the module docstring for where they come from)."""
    out: set[str] = set()
    years = [str(y) for y in range(1950, 2041)]
    for word in _WORDS:
        for suffix in (*_SUFFIXES, *years):
            out.add(word + suffix)
            out.add(word.capitalize() + suffix)
        for times in (2, 3):
            out.add(word * times)
        for other in ("123", "1234", "2024", "2025", "2026"):
            out.add(other + word)
    for first, second in product(("i", "ilove", "love", "my", "the"), _WORDS):
        out.add(first + second)
        out.add(first + second + "123")
    for walk in _WALKS:
        for end in range(MIN_LENGTH, len(walk) + 1):
            out.add(walk[:end])
        out.add(walk + walk[::-1])
        out.add(walk * 2)
    digits = "0123456789" * 3
    letters = "abcdefghijklmnopqrstuvwxyz" * 2
    for run in (digits, digits[::-1], letters, letters[::-1]):
        for start in range(10):
            for length in range(MIN_LENGTH, 21):
                out.add(run[start:start + length])
    for unit in _UNITS:
        for length in range(MIN_LENGTH, 25):
            repeated = unit * (length // len(unit) + 1)
            out.add(repeated[:length])
    for a, b in product("0123456789", repeat=2):
        if a != b:
            for length in range(MIN_LENGTH, 17):
                out.add(((a + b) * length)[:length])
    return sorted({n for n in map(normal, out) if len(n) >= MIN_LENGTH})


@functools.cache
def common() -> frozenset[str]:
    """The shipped list, read once."""
    lines = LIST_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


HEADER = (
    "# Common passwords refused for staff accounts (engine/staff/password_list.py).\n"
    "# Generated from public patterns (keyboard walks, runs, repeated units, common words and\n"
    "# names with the usual suffixes); not copied from any leaked list. Do not edit by hand:\n"
    "# python -m engine.staff.password_list\n"
)


if __name__ == "__main__":  # pragma: no cover - a developer's tool
    entries = generate()
    LIST_FILE.write_text(HEADER + "\n".join(entries) + "\n", encoding="utf-8")
    print(f"{len(entries)} entries written to {LIST_FILE}")
