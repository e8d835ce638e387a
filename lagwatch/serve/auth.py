"""Who may use the HTTP endpoints: lagwatch's own credentials (http.auth) or the web
configuration file's basic_auth_users, checked in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
import threading

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
        """Say whether an Authorization header carries valid credentials (with
        basic_auth_users, a bcrypt check unless the pair is known: see ``known``)."""
        verdict = self.known(authorization)
        if verdict is not None:
            return verdict
        user, password = _basic(authorization) or ("", "")
        return self.users.check(user, password)

    def known(self, authorization: str) -> bool | None:
        """The verdict when it costs nothing (a token, lagwatch's own password, a pair
        checked before); None when a bcrypt check must decide."""
        scheme, _, value = authorization.partition(" ")
        if self.auth is not None and self.auth.username is None:
            token = self.auth.secret("bearer_token") or ""
            return scheme.lower() == "bearer" and hmac.compare_digest(
                value.encode(), token.encode())
        pair = _basic(authorization)
        if pair is None:
            return False
        user, password = pair
        if self.users:
            return self.users.known(user, password)
        assert self.auth is not None
        return hmac.compare_digest(f"{user}:{password}".encode(),
                                   f"{self.auth.username}:{self.auth.secret('password')}".encode())

    def challenge(self) -> str:
        bearer = self.auth is not None and self.auth.username is None and not self.users
        return 'Bearer realm="lagwatch"' if bearer else 'Basic realm="lagwatch"'


def _basic(authorization: str) -> tuple[str, str] | None:
    """The user and password of a Basic Authorization header; None for anything else."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class FailedLogins:
    """bcrypt-checked logins per client address over a sliding window: an attempt counts
    from its start (so attempts at once cannot slip past the limit), and is forgiven when
    it passes; past ``limit`` failed ones, a client's new passwords are refused without a
    check until the window clears. Bounded: the clients seen longest ago are forgotten
    first."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, clients: int = 10_000) -> None:
        self.limit, self.window_s, self.clients = limit, window_s, clients
        self._failed: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def attempt(self, client: str, now: float) -> float:
        """Start a check for the client: 0 when it may go on (counted as failed until
        ``passed``), else how many seconds it must wait."""
        with self._lock:
            recent = [t for t in self._failed.pop(client, ()) if now - t < self.window_s]
            if len(recent) >= self.limit:
                self._failed[client] = recent
                return recent[0] + self.window_s - now
            self._failed[client] = [*recent, now]  # newest client last
            while len(self._failed) > self.clients:
                del self._failed[next(iter(self._failed))]
            return 0.0

    def passed(self, client: str) -> None:
        """The client's latest attempt passed: it does not count."""
        with self._lock:
            if self._failed.get(client):
                self._failed[client].pop()
