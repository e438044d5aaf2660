"""Running the mamoru command in tests: configuration files and subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from support import TEST_AUDIT_KEY, TEST_LINK_KEY_FILE, TEST_PEOPLE_KEY

ROOT = Path(__file__).resolve().parent.parent


def config_file(
    tmp_path: Path,
    db_url: str,
    target: str,
    queue: str = "",
    delivery: str = "",
    inbound: str = "",
    people_key: str = TEST_PEOPLE_KEY,
    http: str = "",
) -> Path:
    """A configuration file for the test database, routing everything to ``target``."""
    p = tmp_path / "mamoru.toml"
    p.write_text(
        f"""
[database]
url = "{db_url}"
pool_min = 1
pool_max = 4

[queue]
poll_interval = "50ms"
retry_base = "50ms"
retry_max = "200ms"
{queue}

[delivery]
connect_timeout = "2s"
command_timeout = "2s"
data_timeout = "2s"
{delivery}

[routing.transport]
"*" = "{target}"

[metrics]
listen = ""

[http]
listen = ""
{http}

[shaping]
enabled = false

[inbound]
listen = "{inbound}"

[dkim]
# The test servers are ours; DKIM is tested in tests/message/test_dkim.py and
# tests/message/test_message.py.
allow_unsigned = true

[people]
# The key the tests' own engines use (tests/support.py): one database, one key.
key = "{people_key}"
link_key_file = "{TEST_LINK_KEY_FILE}"

[staff]
audit_key = "{TEST_AUDIT_KEY}"
audit_checkpoints = "{tmp_path / 'audit.checkpoints'}"
""",
        encoding="utf-8",
    )
    return p


def mamoru(
    *args: str | Path, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, args)], input=stdin,
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )


async def run_mamoru(*args: str | Path, stdin: str = "") -> tuple[int, str, str]:
    """``mamoru`` in a thread, for async tests: (exit code, stdout, stderr)."""
    done = await asyncio.to_thread(mamoru, *args, stdin=stdin)
    return done.returncode, done.stdout, done.stderr
