"""Start-up checks ``mamoru serve`` runs once, before any runner process starts.

Each worker process would otherwise find a missing DKIM key or a port in use by itself and
print its own traceback; checked here first, the operator reads one line (a ``ConfigError``
or ``DkimError``) and nothing has started. What is checked:

- what only the delivery path can judge (``check_settings``, which every ``mamoru`` command
  runs when it reads the configuration): the sites ``delivery.tls_required`` names are
  carrier profiles, built in or under ``[shaping.profiles]``;
- every ``[[dkim.keys]]`` private key file loads (the same signer the runners build);
- the metrics port (``metrics.listen``, one for all workers), the inbound SMTP address
  (``inbound.listen``), the submission address (``submission.listen``) and the pages' HTTP
  address (``http.listen``) can be bound now, and the inbound and submission TLS certificates
  load.

A port checked free can still be taken by another program before the worker binds it; the
worker then fails as before. The check makes the usual case, a second ``serve`` or a forgotten
process, one clear line.
"""

from __future__ import annotations

import socket
import ssl

from engine.delivery._tls_policy import TlsPolicy
from engine.message.dkim import DkimSigner, dkim_settings
from engine.platform.config import Settings, parse_host_port
from engine.platform.errors import ConfigError


def check_settings(settings: Settings) -> None:
    """ConfigError for settings that read well but name what the delivery path does not know:
    a ``delivery.tls_required`` site that is no carrier profile (a misspelt ``docmo`` must not
    leave docomo unprotected). Reads no file and opens nothing."""
    if settings.delivery.tls_required:
        TlsPolicy.from_settings(settings.delivery.tls_required, settings.shaping)


def preflight(settings: Settings, workers: int = 1, listening: bool = True) -> None:
    """Raise ``ConfigError``/``DkimError`` naming the first problem; ``listening`` is False
    when the runners will open no port (``serve --exit-when-idle``)."""
    check_settings(settings)
    keys = dkim_settings(settings.dkim).keys
    if keys:
        DkimSigner(keys)
    if not listening:
        return
    if settings.metrics.listen:
        host, port = parse_host_port("metrics.listen", settings.metrics.listen, 9464)
        # One port whatever the number of workers (engine/platform/metrics.AllWorkers).
        _check_free("metrics.listen", settings.metrics.listen, host, port, None)
    if settings.inbound.listen:
        host, port = parse_host_port("inbound.listen", settings.inbound.listen, 25)
        _check_free("inbound.listen", settings.inbound.listen, host, port, None)
        server_tls_context("inbound", settings.inbound.tls_cert, settings.inbound.tls_key)
    if settings.submission.listen:
        host, port = parse_host_port("submission.listen", settings.submission.listen, 587)
        _check_free("submission.listen", settings.submission.listen, host, port, None)
        server_tls_context("submission", settings.submission.tls_cert,
                           settings.submission.tls_key)
    if settings.http.listen:
        host, port = parse_host_port("http.listen", settings.http.listen, 8080)
        _check_free("http.listen", settings.http.listen, host, port, None)


def _check_free(key: str, value: str, host: str, port: int, worker: int | None) -> None:
    # SO_REUSEADDR as the servers themselves set it: a port in TIME_WAIT after a restart is
    # free for them, and must be for the check too.
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"{key} {value}: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            which = f" (worker {worker + 1})" if worker else ""
            raise ConfigError(
                f"{key} {value}: ポート {port}{which} を使えません ({exc.strerror}) / "
                f"port {port}{which} cannot be bound; stop the program using it (another "
                f"mamoru serve?) or choose another port"
            ) from None


def server_tls_context(table: str, cert: str, key: str) -> ssl.SSLContext | None:
    """The TLS context of a listening server configured in ``[table]`` (None without a
    certificate); ConfigError naming the keys when the files cannot be loaded. The inbound and
    submission servers build theirs with it, and the preflight loads it once before them."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{table}.tls_cert/{table}.tls_key cannot be loaded ({cert}, {key}): {exc}; "
            f"give a PEM certificate chain and its private key"
        ) from None
    return context
