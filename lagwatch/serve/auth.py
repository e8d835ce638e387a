"""Who may use the HTTP endpoints: lagwatch's own credentials (http.auth) or the web
configuration file's basic_auth_users, checked in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from lagwatch.serve.config import HttpAuth
from lagwatch.serve.webconfig import BasicUsers

_OPEN = ("/healthz", "/readyz")  # probes answer without credentials


class Credentials:
    """Who may read the API (and, if asked, /metrics) and change silences."""

    def __init__(self, auth: HttpAuth | None, users: BasicUsers) -> None:
        self.auth, self.users = auth, users

    @property
    def configured(self) -> bool:
        """Whether any credential is configured (writes need one)."""
        return self.auth is not None or bool(self.users)

    def needed(self, path: str) -> bool:
        """Whether a request for ``path`` must carry credentials."""
        if self.users:  # as exporter-toolkit: everything, but lagwatch's probes
            return path not in _OPEN
        return self.auth is not None and (
            path.startswith("/api/") or (path == "/metrics" and self.auth.protect_metrics))

    def accept(self, authorization: str) -> bool:
        """Say whether an Authorization header carries valid credentials."""
        scheme, _, value = authorization.partition(" ")
        if self.auth is not None and self.auth.username is None:
            token = self.auth.secret("bearer_token") or ""
            return scheme.lower() == "bearer" and hmac.compare_digest(
                value.encode(), token.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if self.users:
            return self.users.check(user, password)
        assert self.auth is not None
        return hmac.compare_digest(f"{user}:{password}".encode(),
                                   f"{self.auth.username}:{self.auth.secret('password')}".encode())

    def challenge(self) -> str:
        bearer = self.auth is not None and self.auth.username is None and not self.users
        return 'Bearer realm="lagwatch"' if bearer else 'Basic realm="lagwatch"'
