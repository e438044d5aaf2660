"""Postfix and mamoru on the same work, in one invocation: drain N queued mails into a sink.

    python bench/peer_postfix.py --messages 30000 [--workers N] [--sign-per-recipient]

1. Postfix (installed with apt-get if missing; a private instance under /tmp, its own queue and
   ports, the machine's postfix configuration untouched) takes N one-recipient mails over SMTP
   and holds them; then they are released and timed until its queue is empty. Postfix runs
   with its default delivery settings and signs nothing.
2. mamoru drains the same N mails (same body, same recipients) from its queue, DKIM-signing
   every one (RSA-2048), timed from the first claim to the last recorded outcome.

Both deliver to a fresh Postfix ``smtp-sink`` on 127.0.0.1. Prints both times and, last, one
JSON line ``{"messages":N,"postfix_seconds":P,"mamoru_seconds":M,"ratio":P/M}`` — the ratio
above 1 means mamoru was faster. Needs root (Postfix's master runs as root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402
from sink import start_sink  # noqa: E402

POSTFIX = "/usr/sbin/postfix"
HOLD = """# Every mail is put on hold when received, so the timed part is the queue drain alone.
smtpd_end_of_data_restrictions = check_client_access static:HOLD"""


def ensure_postfix() -> None:
    if Path(POSTFIX).exists() and Path("/usr/sbin/smtp-sink").exists():
        return
    print("installing postfix with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    answer = b"postfix postfix/main_mailer_type select No configuration\n"
    subprocess.run(["debconf-set-selections"], input=answer, check=False, env=env)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )


def postfix_instance(
    root: Path, smtpd_port: int, sink_port: int, hold: bool = True, extra: str = ""
) -> Path:
    """Write a private Postfix configuration; with `hold` it holds every mail it receives.

    `extra`: more main.cf lines (e.g. a DKIM milter)."""
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
myhostname = peer.example.jp
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
{HOLD if hold else ""}
default_transport = smtp:[127.0.0.1]:{sink_port}
relayhost =
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
{extra}
""",
        encoding="ascii",
    )
    master = Path("/etc/postfix/master.cf").read_text(encoding="ascii").splitlines()
    lines = []
    for line in master:
        if line.startswith("smtp ") and " inet " in line:
            line = f"127.0.0.1:{smtpd_port} inet n - n - - smtpd"
        lines.append(line)
    (conf / "master.cf").write_text("\n".join(lines) + "\n", encoding="ascii")
    # No chroot: the private queue directory has none of the files a chroot would need.
    subprocess.run(["postconf", "-c", str(conf), "-F", "*/*/chroot = n"], check=True)
    subprocess.run([POSTFIX, "-c", str(conf), "check"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return conf


def queue_files(spool: Path, queues: tuple[str, ...]) -> int:
    n = 0
    for q in queues:
        for _dirpath, _dirs, files in os.walk(spool / q):
            n += len(files)
    return n


async def inject(
    port: int, n: int, message: bytes | Callable[[str, int], bytes], connections: int = 20
) -> None:
    """Submit n one-recipient mails over `connections` SMTP connections; `message` is the
    mail, or a function (recipient, number) -> mail for personal mails."""
    import aiosmtplib

    async def worker(count: int, start: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
        await smtp.connect()
        for i in range(start, start + count):
            recipient = f"hogosha{i}@{throughput.CARRIERS[i % len(throughput.CARRIERS)]}"
            data = message if isinstance(message, bytes) else message(recipient, i)
            await smtp.sendmail(throughput.SENDER, [recipient], data)
        await smtp.quit()

    per = n // connections
    jobs = [worker(per + (1 if i < n % connections else 0), i * per + min(i, n % connections))
            for i in range(connections)]
    await asyncio.gather(*jobs)


def sample_message() -> bytes:
    """The same mail mamoru sends in the benchmark (its template), unsigned."""
    from engine.message.compose import build_template
    from engine.platform.clock import SystemClock
    from engine.queue import BroadcastContent, Priority

    template = build_template(
        BroadcastContent(0, throughput.SENDER, "【緊急】台風接近に伴う下校について",
                         throughput.BODY, Priority.EMERGENCY),
        SystemClock(),
    )
    return template.render("hogosha@docomo.ne.jp", 1)


def run_postfix(n: int, root: Path) -> float:
    smtpd_port = throughput.free_port()
    sink_port = throughput.free_port()
    sink = start_sink("127.0.0.1", sink_port, prefer_postfix=True)
    conf = postfix_instance(root, smtpd_port, sink_port)
    spool = root / "spool"
    try:
        started = subprocess.run([POSTFIX, "-c", str(conf), "start"], capture_output=True,
                                 text=True)
        if started.returncode != 0:
            raise RuntimeError(f"postfix did not start: {started.stderr.strip()}")
        print(f"postfix: injecting {n} mails (held) ...", flush=True)
        asyncio.run(inject(smtpd_port, n, sample_message()))
        deadline = time.monotonic() + 300
        while queue_files(spool, ("hold",)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("postfix did not hold all injected mails")
            time.sleep(0.2)
        print("postfix: releasing the queue ...", flush=True)
        t0 = time.monotonic()
        subprocess.run(["postsuper", "-c", str(conf), "-H", "ALL"], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["postqueue", "-c", str(conf), "-f"], check=True)
        while queue_files(spool, ("incoming", "active", "deferred", "hold", "maildrop")) > 0:
            if time.monotonic() - t0 > 600:
                raise RuntimeError("postfix did not drain its queue in 10 minutes")
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        bounced = queue_files(spool, ("bounce", "defer"))
        if bounced:
            print(f"postfix: warning: {bounced} delivery status files (deferrals?)")
        return elapsed
    finally:
        subprocess.run([POSTFIX, "-c", str(conf), "stop"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink.terminate()
        sink.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--sign-per-recipient", action="store_true")
    parser.add_argument("--database-url", default="", help="an empty database (default: own)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("peer_postfix.py needs root: Postfix's master process runs as root")
    ensure_postfix()
    root = Path(tempfile.mkdtemp(prefix="mamoru-peer-", dir="/tmp"))
    root.chmod(0o755)  # Postfix's own user must reach its queue below it
    try:
        postfix_seconds = run_postfix(args.messages, root / "postfix")
        print(f"postfix: {args.messages} mails drained in {postfix_seconds:.2f} s "
              f"({args.messages / postfix_seconds:.0f}/s, unsigned)", flush=True)
        result = throughput.run(SimpleNamespace(
            messages=args.messages, sink="", workers=args.workers, database_url=args.database_url,
            no_dkim=False, sign_per_recipient=args.sign_per_recipient, aiosmtpd_sink=False,
        ))
    finally:
        if not os.environ.get("MAMORU_BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    mamoru_seconds = float(result["seconds"])  # type: ignore[arg-type]
    ratio = postfix_seconds / mamoru_seconds
    print(f"mamoru:  {args.messages} mails drained in {mamoru_seconds:.2f} s "
          f"(DKIM {result['dkim']})")
    print(f"ratio (postfix / mamoru): {ratio:.2f}")
    print(json.dumps({
        "messages": args.messages,
        "postfix_seconds": round(postfix_seconds, 3),
        "mamoru_seconds": round(mamoru_seconds, 3),
        "ratio": round(ratio, 3),
        "dkim": result["dkim"],
    }))


if __name__ == "__main__":
    main()
