"""The throttle's public names, and the rule that it imports no database or SMTP library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import engine.throttle


def test_public_names_the_runner_uses_are_exported() -> None:
    expected = {
        "Shaper", "Grant", "Feedback", "Outcome", "Site", "SiteMap", "SiteState", "Profile",
        "EgressPool", "Source", "Warmup", "load_profiles", "pools_from_config",
        "PRIORITY_EMERGENCY", "PRIORITY_NORMAL", "PRIORITY_BULK",
    }
    assert expected <= set(engine.throttle.__all__)
    assert all(hasattr(engine.throttle, name) for name in engine.throttle.__all__)


def test_throttle_imports_no_database_or_smtp_library() -> None:
    code = (
        "import sys, engine.throttle; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('aiosmtplib', 'aiosmtpd', 'asyncpg', 'smtplib') "
        "or m in ('engine.platform.db', 'engine.queue')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
