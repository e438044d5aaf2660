"""PostgreSQL failover mid-broadcast (docs/operation.md section 17, issue 23): bench/failover.py
at a tiny size. A streaming replica made with pg_basebackup -R is promoted after the primary
is stopped hard; serve, given both hosts with target_session_attrs=read-write, reconnects to
the promoted one and finishes the broadcast: nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from commands import ROOT

from engine.platform.pg_tools import embedded_bin_dir


@pytest.mark.slow
def test_serve_finishes_a_broadcast_on_the_promoted_replica() -> None:
    bindir = embedded_bin_dir()
    if bindir is None or not (bindir / "pg_basebackup").exists():
        pytest.skip("pg_basebackup not found (the embedded PostgreSQL's binaries are missing)")
    done = subprocess.run(
        [sys.executable, "bench/failover.py", "--messages", "50", "--concurrency", "5",
         "--sink-delay", "0.05", "--promote-after", "1", "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The crash came mid-broadcast: some mails before it, some only after the promotion.
    assert 0 < result["received_before_crash"] < 50
    assert result["serve_finished"]
    assert result["lost"] == 0
    assert result["states_on_new_primary"] == {"delivered": 50}
    resumed = result["seconds_from_promotion_to_resumed"]
    assert resumed is not None and resumed < 10
    # Only mails in flight at the crash can arrive twice (concurrency 5).
    assert result["duplicates"] <= 5
