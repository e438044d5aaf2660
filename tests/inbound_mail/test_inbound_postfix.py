"""A real MTA's bounce: Postfix accepts our mail, its next hop refuses the recipient, and the DSN
Postfix writes comes back to the VERP address at the inbound server."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from inbound_helpers import engine_with_inbound, enqueue
from sinks import Sink, free_port
from support import opened_row, opened_rows, wait_until

POSTFIX = "/usr/sbin/postfix"


def _postfix_config(root: Path, smtpd_port: int, next_hop: str, bounce_hop: str) -> Path:
    """A private Postfix that relays everything to ``next_hop`` and mail for the bounce domain
    (city.example.jp) to ``bounce_hop``; the machine's own Postfix is not touched."""
    conf = root / "etc"
    conf.mkdir(parents=True)
    (root / "spool").mkdir()
    (root / "data").mkdir()
    shutil.chown(root / "data", user="postfix")
    (conf / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.example.jp
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = smtp:[{next_hop.replace(':', ']:')}
transport_maps = inline:{{ city.example.jp=smtp:[{bounce_hop.replace(':', ']:')} }}
relayhost =
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
""",
        encoding="ascii",
    )
    master = Path("/etc/postfix/master.cf").read_text(encoding="ascii").splitlines()
    lines = [
        f"127.0.0.1:{smtpd_port} inet n - n - - smtpd"
        if line.startswith("smtp ") and " inet " in line else line
        for line in master
    ]
    (conf / "master.cf").write_text("\n".join(lines) + "\n", encoding="ascii")
    subprocess.run(["postconf", "-c", str(conf), "-F", "*/*/chroot = n"], check=True)
    return conf


@pytest.fixture
def postfix_root() -> Iterator[Path]:
    if not Path(POSTFIX).exists():
        pytest.skip("postfix not installed: apt-get install postfix")
    if os.geteuid() != 0:
        pytest.skip("postfix test needs root: Postfix's master process runs as root")
    root = Path(tempfile.mkdtemp(prefix="mamoru-pf-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
async def test_postfix_bounce_for_an_unknown_user_reaches_the_inbound_server(
    db_url: str, postfix_root: Path
) -> None:
    relay_port = free_port()
    routing = {"transport": {"*": f"127.0.0.1:{relay_port}"}}
    with Sink() as sink:
        async with engine_with_inbound(db_url, routing=routing) as (eng, inbound):
            conf = _postfix_config(
                postfix_root, relay_port, sink.address, f"{inbound.host}:{inbound.port}"
            )
            started = await asyncio.to_thread(
                subprocess.run, [POSTFIX, "-c", str(conf), "start"], capture_output=True,
                text=True,
            )
            if started.returncode != 0:
                pytest.fail(f"postfix did not start: {started.stderr.strip()}")
            try:
                bid = await enqueue(eng, ["reject-me@example.jp", "ok@example.jp"])
                runner = await eng.runner()
                stats = await asyncio.wait_for(runner.run(exit_when_idle=True), timeout=30)
                assert stats.delivered == 2  # Postfix took both

                async def bounced() -> bool:
                    row = (await eng.queue.deliveries_of(bid))[0]
                    return bool(row["state"] == "failed")

                await wait_until(bounced, timeout=30, interval=0.1)
                rows = {r["recipient"]: r for r in await eng.queue.deliveries_of(bid)}
                bounce = await opened_row(eng.pool, eng.queue.sealer, "SELECT * FROM bounces")
                suppressed = (await opened_rows(
                    eng.pool, eng.queue.sealer, "SELECT address_sealed FROM suppressions"
                ))[0]["address"]
            finally:
                await asyncio.to_thread(
                    subprocess.run, [POSTFIX, "-c", str(conf), "stop"], capture_output=True
                )
    bad = rows["reject-me@example.jp"]
    assert (bad["reason"], bad["category"], bad["last_status"]) == (
        "userunknown", "unknown_user", "5.1.1"
    )
    assert rows["ok@example.jp"]["state"] == "delivered"
    assert (bounce["kind"], bounce["delivery_id"], bounce["mail_from"]) == ("dsn", bad["id"], "")
    assert bounce["recipient"] == "reject-me@example.jp"
    assert suppressed == "reject-me@example.jp"
    assert [r.rcpt for r in sink.handler.received] == ["ok@example.jp"]
