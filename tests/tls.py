"""Self-signed certificates for loopback TLS servers in tests (made with openssl)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and localhost and its key; return both paths."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Return a server-side TLS context for a certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
