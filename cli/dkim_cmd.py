"""`mamoru dkim`: create DKIM signing keys and show the DNS record each one needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console

from cli.options import ConfigOption, config_path, fail
from engine.message.dkim import (
    ALGORITHMS,
    Algorithm,
    dns_record_name,
    generate_key,
    txt_record_strings,
)
from engine.platform.config import load_settings
from engine.platform.errors import DkimError, MamoruError

app = typer.Typer(
    help="DKIM signing keys: create them and show the DNS TXT record to publish.",
    no_args_is_help=True,
)


@app.callback()
def dkim() -> None:
    """DKIM signing keys: create them and show the DNS TXT record to publish."""
    # A callback keeps `keygen` a sub-command even while it is the only one.


@app.command()
def keygen(
    domain: Annotated[str, typer.Argument(help="Domain of the From address, e.g. example.jp.")],
    selector: Annotated[str, typer.Argument(help="Selector, e.g. s2026 (a new one per key).")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory the private key is written to.")
    ] = Path("var/dkim"),
    algorithm: Annotated[
        str, typer.Option(help=f"Signing algorithm: {' or '.join(ALGORITHMS)}.")
    ] = "rsa-sha256",
    bits: Annotated[int, typer.Option(help="RSA key size in bits.")] = 2048,
    config: ConfigOption = None,
) -> None:
    """Write a new private key and print the DNS TXT record to publish for it."""
    out, err = Console(), Console(stderr=True)
    try:
        # The configuration the key goes into, named in the last line; a broken one is said
        # before any key is written.
        source = load_settings(config_path(config)).source
    except MamoruError as exc:
        fail(str(exc), 1)
    try:
        # generate_key checks the algorithm name and reports a bad one as a DkimError.
        path, record = generate_key(
            domain, selector, directory, algorithm=cast(Algorithm, algorithm), bits=bits
        )
    except DkimError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None

    # soft_wrap: the record is copied into a zone file, so rich must not break its lines.
    quoted = " ".join(f'"{part}"' for part in txt_record_strings(record))
    out.print(f"private key: {path.absolute()} (mode 0600)", markup=False, soft_wrap=True)
    out.print(
        f"TXT record name:  {dns_record_name(domain, selector)}", markup=False, soft_wrap=True
    )
    out.print(f"TXT record value: {quoted}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        f"上記の TXT レコードを DNS に公開し、反映を確認してから設定 {source} の [[dkim.keys]] に"
        "設定してください。",
        markup=False,
        soft_wrap=True,
    )
