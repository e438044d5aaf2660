"""The embedded PostgreSQL (pgserver) in ``[database] data_dir``: find, start, create, watch, stop.

Only ``mamoru init`` creates a database (``create=True``): every other command that finds no
database in its data directory stops and says which directory and configuration it would have
used (``NoDatabase``), instead of silently setting up a second, empty database (and keys) in
whatever directory it was started from.

The server outlives the command that started it (``cleanup_mode=None``), so that a command run
beside ``serve`` does not stop serve's database when it exits. ``mamoru db status`` shows it,
``mamoru db stop`` stops it, and ``serve`` runs a ``Watchdog`` that starts it again when it
dies (a postmaster killed by the OOM killer or by hand).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.platform.errors import DatabaseError

log = logging.getLogger(__name__)


class NoDatabase(DatabaseError):
    """The data directory holds no database and this command may not create one."""


def data_path(data_dir: str | Path) -> Path:
    return Path(data_dir).expanduser().resolve()


def exists(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` holds a PostgreSQL data directory (made by initdb)."""
    return (data_path(data_dir) / "PG_VERSION").is_file()


def missing_message(data_dir: str | Path, source: str = "") -> str:
    """The refusal: which directory, which configuration, and what to do."""
    path = data_path(data_dir)
    config = f" (設定: {source})" if source else ""
    return (
        f"{path} にデータベースがありません{config}。新しく作るときは `mamoru init` を実行して"
        f"ください。既存のデータベースを使うつもりなら --config / MAMORU_CONFIG で正しい設定を"
        f"指定してください (no embedded database in {path}; this command does not create one: "
        f"run `mamoru init` to create it, or give the configuration that names the right "
        f"[database] data_dir or url)"
    )


def _pgserver() -> Any:
    import warnings

    # pgserver's platformdirs warns about XDG_RUNTIME_DIR on servers; it is harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver  # imported here: starting it is slow and only needed without a DSN

    return pgserver


def embedded_dsn(data_dir: str | Path, create: bool = False, source: str = "") -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir`` and return its DSN; with
    ``create`` (``mamoru init`` only) make the database first when there is none."""
    path = data_path(data_dir)
    if not create and not exists(path):
        raise NoDatabase(missing_message(path, source))
    _recover(path)
    pgserver = _pgserver()
    try:
        path.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this process (see the module's text).
        server = pgserver.get_server(path, cleanup_mode=None)
    except Exception as exc:  # pgserver raises plain subprocess and OS errors
        raise DatabaseError(
            f"組み込みデータベースを {path} で起動できません (cannot start the embedded "
            f"PostgreSQL in {path}: {exc}); check the directory is writable, or set "
            f"[database] url"
        ) from exc
    return str(server.get_uri())


def _recover(path: Path, wait: float = 60.0) -> None:
    """Before pgserver joins a server: start one that was killed (its pid file stays behind
    and, as a zombie, its process can still look alive to pgserver) on its former socket,
    and wait for one that is still recovering to take connections."""
    import time

    deadline = time.monotonic() + wait
    while exists(path) and (found := _postmaster(path)) is not None:
        _pid, port, socket_dir, state = found
        if not _answers(port, socket_dir):
            restart(path)
            return
        if state == "ready" or time.monotonic() > deadline:
            return
        time.sleep(0.2)


@dataclass(frozen=True)
class Status:
    """What ``mamoru db status`` shows of one data directory."""

    path: Path
    exists: bool
    running: bool
    pid: int | None = None
    port: int | None = None
    socket_dir: str = ""
    size_bytes: int = 0


def _postmaster(path: Path) -> tuple[int, int | None, str, str] | None:
    """(pid, port, socket directory, state) from ``postmaster.pid``, None when there is none.
    The state (the eighth line) is "ready" once connections are taken; "starting" while the
    server recovers after a crash, when it already answers on its socket (with an error)."""
    try:
        lines = (path / "postmaster.pid").read_text("utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DatabaseError(f"{path}/postmaster.pid cannot be read: {exc.strerror}") from None
    if len(lines) < 5 or not lines[0].strip().isdigit():
        return None
    port = int(lines[3]) if lines[3].strip().isdigit() else None
    state = lines[7].strip() if len(lines) > 7 else "starting"
    return int(lines[0]), port, lines[4].strip(), state


def _answers(port: int | None, socket_dir: str) -> bool:
    """Whether a server accepts connections on the socket (a killed postmaster leaves its
    pid file and socket file behind; only a connection tells it is gone)."""
    if not socket_dir or port is None:
        return False
    target = os.path.join(socket_dir, f".s.PGSQL.{port}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(target)
        except OSError:
            return False
    return True


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def status(data_dir: str | Path) -> Status:
    path = data_path(data_dir)
    if not exists(path):
        return Status(path, exists=False, running=False)
    found = _postmaster(path)
    size = _size(path)
    if found is None:
        return Status(path, exists=True, running=False, size_bytes=size)
    pid, port, socket_dir, state = found
    running = state == "ready" and _answers(port, socket_dir)
    return Status(
        path, exists=True, running=running, pid=pid if running else None, port=port,
        socket_dir=socket_dir, size_bytes=size,
    )


def _system_user() -> str | None:
    # pgserver runs PostgreSQL as its own "pgserver" user when started by root.
    return "pgserver" if os.name == "posix" and os.geteuid() == 0 else None


def stop(data_dir: str | Path) -> bool:
    """Stop the server of ``data_dir`` (fast shutdown: sessions are ended, nothing is lost);
    False when it was not running."""
    import subprocess

    now = status(data_dir)
    if not now.running:
        return False
    try:
        _pgserver().pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=now.path, user=_system_user(), timeout=60
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise DatabaseError(
            f"組み込みデータベース ({now.path}) を停止できません (cannot stop it: {exc})"
        ) from None
    return True


def restart(data_dir: str | Path) -> None:
    """Start the server of an existing ``data_dir`` again on its former socket directory (so
    every process keeps its DSN), after it died."""
    import subprocess

    path = data_path(data_dir)
    found = _postmaster(path)
    if found is None:
        # No pid file: it was stopped cleanly (`mamoru db stop`); pgserver starts it as at
        # first. Its handle may be cached in this process, so ask it to start explicitly.
        pgserver = _pgserver()
        server = pgserver.get_server(path, cleanup_mode=None)
        with pgserver.PostgresServer._lock:
            server.ensure_postgres_running()
        return
    socket_dir = found[2]
    args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(path / "log"), "start"]
    try:
        _pgserver().pg_ctl(args, pgdata=path, user=_system_user(), timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        now = _postmaster(path)
        if now is not None and _answers(now[1], now[2]):
            return  # another process (serve's watchdog, a command) started it meanwhile
        raise DatabaseError(f"cannot restart the embedded PostgreSQL in {path}: {exc}") from None


class Watchdog:
    """A thread of ``serve``'s main process that starts the embedded server again when it stops
    answering. The runners already survive a database outage (they wait and reconnect); this
    ends the outage instead of waiting for someone to restart the server by hand."""

    def __init__(self, data_dir: str | Path, interval: float = 1.0) -> None:
        self.path = data_path(data_dir)
        self.interval = interval
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=70)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if status(self.path).running:
                    continue
                log.warning("embedded PostgreSQL in %s is not running: starting it again",
                            self.path)
                restart(self.path)
                self.restarts += 1
                log.warning("embedded PostgreSQL in %s started again", self.path)
            except Exception as exc:  # tried again at the next tick
                log.warning("embedded PostgreSQL in %s could not be started yet: %s",
                            self.path, exc)
