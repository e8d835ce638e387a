"""TLS and basic auth for lagwatch's HTTP port, configured as every Prometheus exporter is:
the web configuration file of Prometheus's exporter-toolkit (``--web.config.file``).

    tls_server_config:
      cert_file: /etc/lagwatch/tls.crt
      key_file: /etc/lagwatch/tls.key
      client_ca_file: /etc/lagwatch/clients-ca.crt     # mTLS
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...                           # bcrypt (htpasswd -nBC 10 "")

The certificate, key and client CA are read again when their files change (checked at
most once a second, at a handshake), so a rotated certificate is served without a
restart.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from pydantic import Field, ValidationError, field_validator

from lagwatch.configtypes import (
    Strict,
    TextFileError,
    describe,
    load_yaml,
    read_secret_file,
    read_utf8,
)

log = logging.getLogger(__name__)
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# exporter-toolkit's client_auth_type values lagwatch serves: it always verifies a client
# certificate it asks for, so the two types that accept any certificate are refused
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class WebConfigError(ValueError):
    """The web configuration file cannot be used; the message names the key."""


class TlsServerConfig(Strict):
    """The certificate lagwatch serves, and whether clients must show theirs."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: str = "NoClientCert"
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        read_secret_file(path)
        return path

    @field_validator("client_auth_type")
    @classmethod
    def _served(cls, kind: str) -> str:
        if kind not in _CLIENT_AUTH:
            raise ValueError(f"{kind!r} is not served: use NoClientCert, "
                             "VerifyClientCertIfGiven or RequireAndVerifyClientCert (lagwatch "
                             "verifies every client certificate it asks for)")
        return kind

    def context(self) -> ssl.SSLContext:
        """Build a server context from the files as they are now."""
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise WebConfigError("tls_server_config.client_ca_file: required to verify "
                                 f"client certificates ({self.client_auth_type})")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _VERSIONS[self.min_version]
        context.maximum_version = _VERSIONS[self.max_version]
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                context.load_verify_locations(self.client_ca_file)
        except ssl.SSLError as exc:
            raise WebConfigError(f"tls_server_config: cannot use {self.cert_file} with "
                                 f"{self.key_file}: {exc.reason or exc}") from None
        context.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        return context

    def files(self) -> list[str]:
        """The files the context is built from."""
        return [f for f in (self.cert_file, self.key_file, self.client_ca_file) if f]


class WebConfig(Strict):
    """The exporter-toolkit web configuration: TLS, and users with bcrypt passwords."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if ":" in user or not user:
                raise ValueError(f"user {user!r}: a name must be non-empty, without ':'")
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
                raise ValueError(f"user {user!r}: the password must be a bcrypt hash "
                                 "($2y$..., 60 characters; htpasswd -nBC 10 \"\" makes one)")
        return users


def load_web_config(path: str) -> WebConfig:
    """Read and validate a web configuration file; raise WebConfigError naming the key."""
    try:
        raw = load_yaml(read_utf8(path)) or {}
    except OSError as exc:
        raise WebConfigError(f"cannot read {path}: {exc.strerror}") from None
    except TextFileError as exc:
        raise WebConfigError(f"{path} {exc}") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())  # PyYAML's errors span lines, quote the text
        raise WebConfigError(f"{path} is not valid YAML: {problem[:300]}") from None
    try:
        return WebConfig.model_validate(raw)
    except ValidationError as exc:
        raise WebConfigError(describe(exc)) from None


class ReloadingTls:
    """A server SSLContext whose certificate, key and client CA follow their files.

    ``context`` is handed to the server once. At each handshake (its SNI callback, which
    OpenSSL calls with or without a server name) the files' modification times are
    compared at most once a second; when one changed, a new context is built from them
    and the connection switches to it. A file that is half-written or wrong keeps the
    previous context serving.
    """

    def __init__(self, config: TlsServerConfig) -> None:
        self.config = config
        self.context = config.context()
        self._current = self.context
        self._stamp = self._stamps()
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self.context.sni_callback = self._on_hello
        self.reloads = 0
        self.failed = 0  # handshakes that began and never completed
        self._pending: dict[int, weakref.finalize[Any, Any]] = {}

    def _stamps(self) -> tuple[float, ...]:
        try:
            return tuple(Path(f).stat().st_mtime for f in self.config.files())
        except OSError:
            return ()

    def _on_hello(self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None,
                  _context: ssl.SSLContext) -> None:
        self.refresh(time.monotonic())
        if self._current is not self.context:
            connection.context = self._current
        key = id(connection)
        self._pending[key] = weakref.finalize(connection, self._never_completed, key)

    def completed(self, connection: object) -> None:
        """A handshake completed: the connection is served."""
        pending = self._pending.pop(id(connection), None)
        if pending is not None:
            pending.detach()

    def _never_completed(self, key: int) -> None:
        # asyncio drops a failed handshake silently; one line, for whoever debugs a client
        self._pending.pop(key, None)
        self.failed += 1
        log.debug("http: a TLS handshake failed (no client certificate, one the client CA "
                  "does not trust, or no common TLS version)")

    def refresh(self, now: float) -> None:
        """Build a new context if a file changed since the last check (at most 1/s)."""
        with self._lock:
            if now - self._checked < 1.0:
                return
            self._checked = now
            stamp = self._stamps()
            if stamp == self._stamp or not stamp:
                return
            try:
                self._current = self.config.context()
            except WebConfigError:
                return  # keep serving the previous certificate; try again next second
            self._stamp = stamp
            self.reloads += 1


class BasicUsers:
    """Checks basic-auth credentials against bcrypt hashes.

    A bcrypt check is slow on purpose (tens of milliseconds), so it must not be a way to
    starve the daemon: every pair checked is remembered by its SHA-256, as exporter-toolkit
    does, passed or failed (``known`` answers without bcrypt), and an unknown user name
    costs one bcrypt check as a known one does, so timing does not tell them apart.
    """

    _REMEMBERED = 4096  # pairs of each outcome; the oldest forgotten first

    def __init__(self, users: dict[str, str]) -> None:
        self.users = {u: h.replace("$2y$", "$2b$", 1).encode() for u, h in users.items()}
        self._verdicts: dict[bool, dict[bytes, None]] = {True: {}, False: {}}
        self._lock = threading.Lock()
        self.checks = 0  # bcrypt checks run (each tens of milliseconds of CPU)
        # the cost of the slowest configured hash: an unknown user pays it too
        rounds = max((int(h.split(b"$")[2]) for h in self.users.values()), default=4)
        self._decoy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds)) if users else b""

    def __bool__(self) -> bool:
        return bool(self.users)

    def _key(self, user: str, password: str) -> bytes:
        hashed = self.users.get(user, self._decoy)
        return hashlib.sha256(b"\0".join((hashed, user.encode(), password.encode()))).digest()

    def known(self, user: str, password: str) -> bool | None:
        """The verdict on a pair checked before, without bcrypt; None when not known."""
        key = self._key(user, password)
        with self._lock:
            for verdict, remembered in self._verdicts.items():
                if key in remembered:
                    return verdict
        return None

    def check(self, user: str, password: str) -> bool:
        """Say whether the password is the user's (a bcrypt check unless known)."""
        verdict = self.known(user, password)
        if verdict is not None:
            return verdict
        with self._lock:
            self.checks += 1
        hashed = self.users.get(user)
        passed = bcrypt.checkpw(password.encode(), hashed or self._decoy) and hashed is not None
        with self._lock:
            remembered = self._verdicts[passed]
            remembered[self._key(user, password)] = None
            if len(remembered) > self._REMEMBERED:
                del remembered[next(iter(remembered))]
        return passed
