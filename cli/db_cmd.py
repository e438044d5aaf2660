"""`mamoru init` and `mamoru db status|stop`: setting up and looking after the database.

``init`` is the one command that creates an embedded database (engine/platform/embedded.py);
every other command refuses to when its data directory holds none. It also makes the key files
a new database needs and prints where everything is. Run again, it changes nothing and says
what is already there, so ``make run`` runs it before every ``serve``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console

from cli.options import ConfigOption, config_path, fail, run
from engine.delivery.preflight import check_settings
from engine.platform.config import Settings, load_settings
from engine.platform.errors import MamoruError

app = typer.Typer(
    help="データベース (the embedded PostgreSQL): status, stop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=True)


def _settings(config: Path | None) -> Settings:
    try:
        loaded = load_settings(config_path(config))
        check_settings(loaded)
        return loaded
    except MamoruError as exc:
        fail(str(exc), 1)


@app.callback()
def db_() -> None:
    """データベース (the embedded PostgreSQL)."""


@app.command()
def status(config: ConfigOption = None) -> None:
    """Where the embedded database is, whether it runs, its pid, socket and size."""
    from engine.platform import embedded
    from engine.platform.db import redact

    settings = _settings(config)
    out.print(f"設定 (configuration): {settings.source}", markup=False)
    if settings.database.url:
        out.print(f"外部の PostgreSQL を使います (external database): "
                  f"{redact(settings.database.url)}; mamoru はこれを起動・停止しません",
                  markup=False)
        return
    try:
        now = embedded.status(settings.database.data_dir)
    except MamoruError as exc:
        fail(str(exc), 1)
    out.print(f"場所 (data directory): {now.path}", markup=False)
    if not now.exists:
        out.print("状態 (state): ありません (no database; `mamoru init` creates it)")
        raise typer.Exit(3)
    out.print(f"大きさ (size): {_size(now.size_bytes)}", markup=False)
    if not now.running:
        out.print("状態 (state): 停止中 (stopped)")
        raise typer.Exit(3)
    out.print(f"状態 (state): 稼働中 (running), pid {now.pid}", markup=False)
    out.print(f"ソケット (socket): {now.socket_dir}/.s.PGSQL.{now.port} (port {now.port}, "
              f"no TCP listener)", markup=False)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@app.command()
def stop(config: ConfigOption = None) -> None:
    """Stop the embedded database (fast shutdown). Stop `serve` first: it restarts it."""
    from engine.platform import embedded
    from engine.platform.db import redact

    settings = _settings(config)
    if settings.database.url:
        fail(f"外部の PostgreSQL ({redact(settings.database.url)}) は mamoru では停止しません "
             f"(an external database is not stopped by mamoru; use its own tools)", 2)
    try:
        stopped = embedded.stop(settings.database.data_dir)
    except MamoruError as exc:
        fail(str(exc), 1)
    where = embedded.data_path(settings.database.data_dir)
    if stopped:
        out.print(f"組み込みデータベースを停止しました (stopped): {where}", markup=False)
    else:
        out.print(f"組み込みデータベースは動いていません (not running): {where}", markup=False)


def init(config: ConfigOption = None) -> None:
    """Create the database, its schema and key files where the configuration says (初期設定)."""
    from engine.platform import embedded
    from engine.platform.db import redact

    settings = _settings(config)
    db = settings.database
    out.print(f"設定 (configuration): {settings.source}", markup=False)
    keys = _key_files(settings)
    had = {label: path.exists() for label, path in keys}
    try:
        if db.url:
            dsn = db.url
            out.print(f"データベース (database): {redact(dsn)} (外部 / external)", markup=False)
        else:
            existed = embedded.exists(db.data_dir)
            dsn = embedded.embedded_dsn(db.data_dir, create=True)
            state = "既にあります (already there)" if existed else "作成しました (created)"
            out.print(f"データベース (database): {embedded.data_path(db.data_dir)} {state}",
                      markup=False)
    except MamoruError as exc:
        fail(str(exc), 1)
    ready = replace(settings, database=replace(db, url=dsn))
    run(lambda: _open_everything(ready))
    for label, path in keys:
        state = "既にあります (already there)" if had[label] else "作成しました (created)"
        out.print(f"{label}: {path.resolve()} {state}", markup=False)
    out.print("鍵ファイルはデータベースとは別に保管してください。失うとデータを読めません "
              "(back the key files up apart from the database: without them the data is lost)")


def _key_files(settings: Settings) -> list[tuple[str, Path]]:
    """The key files this configuration uses (keys given as text in the file are not files)."""
    from engine.platform.link_key import link_key_path

    files: list[tuple[str, Path]] = []
    if not settings.people.key:
        files.append(("個人情報の鍵 (people key)", Path(settings.people.key_file)))
    if not settings.message.verp_secret:
        files.append(("リンクの鍵 (link key)", link_key_path(settings.people)))
    if not settings.staff.audit_key:
        files.append(("監査ログの鍵 (audit key)", Path(settings.staff.audit_key_file)))
    return files


async def _open_everything(settings: Settings) -> None:
    """Migrate the schema and make (or check) every key against the database."""
    from engine.delivery.context import Engine
    from engine.staff.audit_keys import load_audit_key

    engine = await Engine.open(settings)
    try:
        await engine.verp_secret()
        await load_audit_key(engine.pool, settings.staff)
    finally:
        await engine.close()
