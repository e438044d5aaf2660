"""Which configuration file a command reads, and how it was found.

In this order: the file given with ``--config`` (before or after the subcommand), else the one
in ``MAMORU_CONFIG``, else ``./mamoru.toml`` in the current directory, else
``/etc/mamoru/mamoru.toml``, else none (the built-in defaults). ``Settings.source`` says which
one was used and why, so ``serve`` can print it and a refusal can name it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Looked for when neither ``--config`` nor ``MAMORU_CONFIG`` names a file.
LOCAL_CONFIG = Path("mamoru.toml")
SYSTEM_CONFIG = Path("/etc/mamoru/mamoru.toml")
#: ``Settings.source`` when no file was found.
DEFAULTS = (
    "組み込みの既定値 (built-in defaults: no --config, no MAMORU_CONFIG, "
    "no ./mamoru.toml, no /etc/mamoru/mamoru.toml)"
)


def find_config(
    given: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[Path | None, str]:
    """The file to read (None: the defaults) and how it was chosen, for ``Settings.source``."""
    if given is not None:
        return Path(given), "--config"
    named = env.get("MAMORU_CONFIG")
    if named:
        return Path(named), "MAMORU_CONFIG"
    if LOCAL_CONFIG.is_file():
        return LOCAL_CONFIG.resolve(), "./mamoru.toml"
    system = Path(env.get("MAMORU_TEST_SYSTEM_CONFIG") or SYSTEM_CONFIG)
    if system.is_file():
        return system, "/etc/mamoru"
    return None, DEFAULTS
