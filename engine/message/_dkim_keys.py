"""DKIM keys: the configured key files, loaded and checked once, new keys and their DNS records.

A key file problem is a `DkimError` that names the file and says what to do (`mamoru dkim
keygen`, the mode, the algorithm). `load_key` leaves only the private-key step for
signing (engine/message/dkim.py): RSA-SHA256 with PKCS#1 v1.5 over a prehashed digest, or
Ed25519 (RFC 8463).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from engine.platform.errors import DkimError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "DkimKey",
    "LoadedKey",
    "dns_record_name",
    "generate_key",
    "load_key",
    "txt_record_strings",
]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

_MIN_RSA_BITS = 1024  # RFC 8301: verifiers must reject smaller keys
_MAX_RSA_BITS = 4096
# Selectors and domains end up in DNS names, tag values and key file names: letters, digits,
# hyphens and dots only (IDN domains in their xn-- form), which also keeps "../" out of paths.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_LABELS = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_TXT_STRING_MAX = 255  # RFC 1035: one character-string in a TXT record


@dataclass(frozen=True)
class DkimKey:
    """One signing key as the configuration gives it (a `[[dkim.keys]]` table)."""

    domain: str
    selector: str
    private_key: Path
    algorithm: Algorithm = "rsa-sha256"


@dataclass(frozen=True)
class LoadedKey:
    """A key with everything that does not depend on the message computed in advance."""

    tag_prefix: bytes  # b"v=1; a=...; c=relaxed/relaxed; d=...; s=...;"
    sign_digest: Callable[[bytes], bytes]  # SHA-256 digest of the header data -> signature


def dns_record_name(domain: str, selector: str) -> str:
    """The DNS name at which the public key of `selector` for `domain` is published."""
    return f"{selector}._domainkey.{domain}"


def txt_record_strings(record: str) -> list[str]:
    """Split a TXT record value into the <=255-character strings a zone file needs.

    DNS joins them back without separators, which is what DKIM verifiers read.
    """
    return [record[i : i + _TXT_STRING_MAX] for i in range(0, len(record), _TXT_STRING_MAX)]


def load_key(key: DkimKey) -> LoadedKey:
    if key.algorithm not in ALGORITHMS:
        raise DkimError(
            f"DKIM key {key.private_key} for {key.domain}: algorithm {key.algorithm!r} is not "
            f"supported: use one of {', '.join(ALGORITHMS)}"
        )
    _check_name("domain", key.domain)
    _check_name("selector", key.selector)
    path = key.private_key
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise DkimError(
            f"DKIM key file {path} not found: run `mamoru dkim keygen {key.domain} "
            f"{key.selector}` and point private_key at the file it writes"
        ) from None
    except OSError as exc:
        raise DkimError(
            f"DKIM key file {path} cannot be read ({exc.strerror}): make it a file readable by "
            "the user mamoru runs as (mode 0600)"
        ) from None
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise DkimError(
            f"DKIM key file {path} is encrypted: mamoru needs it unencrypted "
            f"(protect it with mode 0600), e.g. `openssl pkey -in {path} -out NEW.pem`"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DkimError(
            f"DKIM key file {path} is not a PEM private key ({exc}): run `mamoru dkim keygen "
            f"{key.domain} NEW_SELECTOR` for a fresh key, or fix the file"
        ) from None

    prefix = b"v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;" % (
        key.algorithm.encode(),
        key.domain.lower().encode(),
        key.selector.encode(),
    )
    if key.algorithm == "rsa-sha256":
        if not isinstance(private, rsa.RSAPrivateKey):
            raise _wrong_kind(key, private, "an RSA")
        if private.key_size < _MIN_RSA_BITS:
            raise DkimError(
                f"DKIM key file {path} holds a {private.key_size}-bit RSA key, which receivers "
                f"reject: run `mamoru dkim keygen {key.domain} NEW_SELECTOR --bits 2048`"
            )
        rsa_key = private
        pkcs1, prehashed = padding.PKCS1v15(), Prehashed(hashes.SHA256())

        def sign_rsa(digest: bytes) -> bytes:
            return rsa_key.sign(digest, pkcs1, prehashed)

        return LoadedKey(prefix, sign_rsa)
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise _wrong_kind(key, private, "an Ed25519")
    # RFC 8463: Ed25519 signs the SHA-256 digest of the header data, not the data itself.
    return LoadedKey(prefix, private.sign)


def _wrong_kind(key: DkimKey, private: object, wanted: str) -> DkimError:
    found = type(private).__name__.removeprefix("_").replace("PrivateKey", "")
    other = "ed25519-sha256" if key.algorithm == "rsa-sha256" else "rsa-sha256"
    return DkimError(
        f"DKIM key file {key.private_key} holds an {found} key but {key.domain} selector "
        f"{key.selector} is configured with algorithm {key.algorithm}, which needs {wanted} "
        f'key: set algorithm = "{other}" if the key is right, or point private_key at '
        f"{wanted} key"
    )


def _check_name(what: str, value: str) -> None:
    if not _LABELS.fullmatch(value):
        raise DkimError(
            f"DKIM {what} {value!r} is not usable: use letters, digits, hyphens and dots only "
            "(write internationalised domains in their xn-- form)"
        )


def generate_key(
    domain: str,
    selector: str,
    directory: Path,
    algorithm: Algorithm = "rsa-sha256",
    bits: int = 2048,
) -> tuple[Path, str]:
    """Write a new private key for `selector` of `domain` and return it with its DNS record.

    The key goes to DIRECTORY/DOMAIN.SELECTOR.pem (PKCS#8 PEM, mode 0600); an existing file
    is never overwritten. Returns (path, TXT record value to publish at
    `dns_record_name(domain, selector)`), e.g. "v=DKIM1; k=rsa; p=MIIB...". `bits` applies
    to RSA only.
    """
    if algorithm not in ALGORITHMS:
        raise DkimError(
            f"DKIM algorithm {algorithm!r} is not supported: use one of {', '.join(ALGORITHMS)}"
        )
    _check_name("domain", domain)
    _check_name("selector", selector)
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa-sha256":
        if not _MIN_RSA_BITS <= bits <= _MAX_RSA_BITS:
            raise DkimError(
                f"RSA key size {bits} is not usable for DKIM: choose {_MIN_RSA_BITS} to "
                f"{_MAX_RSA_BITS} bits (2048 is what receivers expect)"
            )
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        public = base64.b64encode(
            private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        record = f"v=DKIM1; k=rsa; p={public.decode()}"
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        # RFC 8463: the p= of an Ed25519 key is the bare 32-byte public key.
        public = base64.b64encode(
            private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )
        record = f"v=DKIM1; k=ed25519; p={public.decode()}"
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{domain}.{selector}.pem"
    _write_new_private_file(path, pem, domain)
    return path, record


def _write_new_private_file(path: Path, data: bytes, domain: str) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: a key that may already be published in DNS must never be replaced silently.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DkimError(
            f"DKIM key file {path} already exists and was left as it is: to rotate keys choose "
            f"a new selector (`mamoru dkim keygen {domain} NEW_SELECTOR`)"
        ) from None
    except OSError as exc:
        raise DkimError(
            f"cannot create DKIM key file {path} ({exc.strerror}): choose a writable --dir"
        ) from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # the umask may only narrow it, but be explicit
        out.write(data)
