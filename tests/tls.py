"""Certificates for TLS tests, made with openssl: a CA, and certificates it signs.

``authority(dir)`` writes a CA, a server certificate for 127.0.0.1 and localhost, and a
client certificate, all signed by that CA; ``self_signed`` writes one self-signed pair.
Keys are unencrypted PEM.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

SAN = "subjectAltName=IP:127.0.0.1,DNS:localhost"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and localhost and its key; return both paths."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-addext", SAN, "-keyout", str(key), "-out", str(cert))
    return cert, key


@dataclass(frozen=True)
class Authority:
    """A CA and what it signed."""

    ca: Path
    server_cert: Path
    server_key: Path
    server_pem: Path  # key and certificate in one file, as Kafka's PEM keystore wants
    client_cert: Path
    client_key: Path


def authority(directory: Path, name: str = "test") -> Authority:
    """Write a CA and a server and a client certificate it signs."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = self_signed(directory, f"{name}-ca")
    signed = {}
    for role, extension in (("server", SAN), ("client", "extendedKeyUsage=clientAuth")):
        key, csr = directory / f"{name}-{role}.key", directory / f"{name}-{role}.csr"
        cert, ext = directory / f"{name}-{role}.crt", directory / f"{name}-{role}.ext"
        ext.write_text(extension.replace("=", " = ", 1) + "\n")
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj",
                 f"/CN={name}-{role}", "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
        signed[role] = (cert, key)
    pem = directory / f"{name}-server.pem"
    pem.write_text(signed["server"][1].read_text() + signed["server"][0].read_text())
    return Authority(ca, *signed["server"], pem, *signed["client"])


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Return a server-side TLS context for a certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
