"""Every command of the ``mamoru`` app reads the configuration it is given, wherever it is given:
before the subcommand (``mamoru --config X audit verify``), after it, and in MAMORU_CONFIG.

The commands are enumerated from the Typer app itself, so a new command without a row in
``ARGS`` fails ``test_every_command_has_a_row``. The configuration names a database that does
not answer: a command that reads it says so about *that* address (one line, exit 1); one that
ignored it would talk about the default embedded database in ``var/pgdata`` instead.
The commands run in this process (typer's CliRunner): some 120 subprocesses would take
minutes of a shared CPU.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from engine.platform.backup_archive import ArchiveWriter, load_backup_key, new_backup_key


def _leaves(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    # A group has sub-commands (typer vendors click, so no isinstance on click's classes).
    subs: dict[str, Any] | None = getattr(cmd, "commands", None)
    if subs is not None:
        for name, sub in sorted(subs.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield path


COMMANDS = sorted(_leaves(typer.main.get_command(app)))

# Arguments that get each command past its own checks to the point where it opens the
# configuration's database. "{tmp}" is the test's directory.
ARGS: dict[str, list[str]] = {
    "init": [],
    "serve": ["--exit-when-idle", "--workers", "1"],
    "send": ["--sender", "s@example.jp", "--subject", "件名", "--body-file", "{tmp}/body.txt",
             "--to", "a@example.jp"],
    "status": [],
    "deliveries": ["1"],
    "rollover": ["--to-year", "2027", "--dry-run"],
    "notices": ["--school", "001", "--address", "touroku@example.jp", "--out", "{tmp}/n.pdf"],
    "dkim keygen": ["example.jp", "s1", "--dir", "{tmp}/dkim", "--algorithm", "ed25519-sha256"],
    "shaping status": [],
    "suppression list": [],
    "suppression add": ["a@example.jp", "--reason", "test"],
    "suppression remove": ["a@example.jp"],
    "suppression import": ["{tmp}/suppression.csv"],
    "suppression export": [],
    "report errors": [],
    "report monthly": ["--month", "2026-11"],
    "broadcasts list": [],
    "broadcasts cancel": ["1"],
    "broadcasts status": ["1"],
    "broadcasts recipients": ["1"],
    "schools add": ["001", "みなみ小学校", "--kind", "elementary"],
    "schools list": [],
    "schools closed add": ["sho1", "2026-12-24"],
    "schools closed remove": ["sho1", "2026-12-24"],
    "schools closed list": ["sho1"],
    "senders add": ["001", "s@example.jp"],
    "senders remove": ["001", "s@example.jp"],
    "senders list": [],
    "groups add": ["見守り"],
    "groups list": [],
    "accounts import": ["{tmp}/accounts.csv"],
    "accounts export": [],
    "accounts edit": ["1", "--name", "山田"],
    "accounts move": ["1", "--grade", "3", "--class", "2"],
    "accounts close": ["1"],
    "accounts add": ["--school", "001", "--name", "転入生", "--grade", "1"],
    "accounts rate": [],
    "contacts add": ["1", "a@example.jp"],
    "contacts remove": ["a@example.jp"],
    "schools rename": ["001", "きた小学校"],
    "schools close": ["001", "--yes"],
    "schools classes list": ["001"],
    "schools classes add": ["001", "1", "2"],
    "schools classes rename": ["001", "1", "2", "3"],
    "schools classes remove": ["001", "1", "2"],
    "contacts purge": ["--all", "--yes"],
    "contacts invite": [],
    "staff add": ["t1", "--name", "先生", "--role", "board", "--password-stdin"],
    "staff disable": ["t1"],
    "staff reset-password": ["t1", "--password-stdin"],
    "staff list": [],
    "audit verify": [],
    "audit checkpoint": [],
    "audit export": [],
    "audit prune": [],
    "attachments prune": [],
    "queue prune": [],
    "db status": [],
    "db stop": [],
    "backup": ["--to", "{tmp}/backups"],
    "restore": ["{tmp}/mamoru-20261207-023000.backup"],
}

# What shows that a command read the given file, when it is not the unreachable database.
READS_FILE_ONLY = {"dkim keygen"}
# Commands whose success is to report the configured database (exit 0).
REPORTS_DATABASE = {"db status"}


def test_every_command_has_a_row() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert names - set(ARGS) == set(), "add the new command to ARGS (and check it reads --config)"
    assert set(ARGS) - names == set()


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A PostgreSQL URL nobody answers: a port just freed (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://mamoru@127.0.0.1:{port}/nowhere"


@pytest.fixture
def work(tmp_path: Path, dead_url: str) -> Path:
    (tmp_path / "body.txt").write_text("本文です。\n", encoding="utf-8")
    (tmp_path / "suppression.csv").write_text("address,reason\na@example.jp,test\n",
                                              encoding="utf-8")
    (tmp_path / "accounts.csv").write_text(
        "学校,学年,組,番号,氏名,連絡先1\n001,1,1,1,山田太郎,p@example.jp\n", encoding="utf-8"
    )
    new_backup_key(tmp_path / "backup.key")
    # An archive sealed with the configured backup key: restore opens it with that key, then
    # goes to the (unreachable) database.
    with (tmp_path / "mamoru-20261207-023000.backup").open("wb") as out:
        keys = {name: base64.b64encode(bytes(32)).decode() for name in ("people", "link", "audit")}
        writer = ArchiveWriter(out, load_backup_key(tmp_path / "backup.key"),
                               {"format": 1, "keys": keys})
        writer.close()
    (tmp_path / "given.toml").write_text(
        f"""
[database]
url = "{dead_url}"
connect_timeout = "3s"
[metrics]
listen = ""
[http]
listen = ""
[inbound]
listen = ""
[people]
key_file = "{tmp_path}/keys/people.key"
[staff]
audit_key_file = "{tmp_path}/keys/audit.key"
[backup]
key_file = "{tmp_path}/backup.key"
""",
        encoding="utf-8",
    )
    return tmp_path


@pytest.mark.parametrize("where", ["before", "after", "environment"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_command_reads_the_given_configuration(
    command: tuple[str, ...], where: str, work: Path, dead_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = " ".join(command)
    args = [a.replace("{tmp}", str(work)) for a in ARGS[name]]
    cfg = str(work / "given.toml")
    env = {}
    if where == "before":
        argv = ["--config", cfg, *command, *args]
    elif where == "after":
        argv = [*command, *args, "-c", cfg]
    else:
        argv = [*command, *args]
        env["MAMORU_CONFIG"] = cfg
    for var in [v for v in list(os.environ) if v.startswith("MAMORU_")]:
        monkeypatch.delenv(var)
    result = CliRunner().invoke(app, argv, env=env, input="Aa1!long-enough-password-42\n")
    output = result.output
    if name in READS_FILE_ONLY:
        assert result.exit_code == 0, output
        assert cfg in output
        return
    assert dead_url.split("@")[1].split("/")[0] in output, output
    assert "var/pgdata" not in output
    if name in REPORTS_DATABASE:
        assert result.exit_code == 0, output
    else:
        assert result.exit_code in (1, 2), output
