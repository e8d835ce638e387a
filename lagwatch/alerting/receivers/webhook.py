"""A generic webhook: the message as a JSON POST, optionally signed with HMAC-SHA256.

Headers: ``Content-Type: application/json``, ``Idempotency-Key`` (the same for every
attempt at one notification, so a receiver can drop duplicates), and with a secret
``X-Lagwatch-Signature: sha256=<hex of HMAC-SHA256(secret, body)>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import asdict
from typing import Any

from lagwatch.alerting.config import WebhookConfig
from lagwatch.alerting.message import Message
from lagwatch.alerting.retry import DeliveryError, http_error

VERSION = 1


def body_of(m: Message, idempotency_key: str) -> bytes:
    """Return the JSON document a webhook receives."""
    return json.dumps({"version": VERSION, "idempotency_key": idempotency_key,
                       **asdict(m)}, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """Return the X-Lagwatch-Signature header value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookReceiver:
    """One HTTP endpoint."""

    def __init__(self, name: str, config: WebhookConfig) -> None:
        self.name = name
        self.channel = config.shown_url()  # what logs and test-notify show of it
        self._config = config
        self._secret = config.secret()

    def deliver(self, m: Message, ref: dict[str, Any] | None,
                idempotency_key: str = "") -> dict[str, Any] | None:
        """POST the message; any 2xx is accepted."""
        body = body_of(m, idempotency_key)
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                   "User-Agent": "lagwatch"}
        if self._secret:
            headers["X-Lagwatch-Signature"] = signature(self._secret, body)
        # the config only accepts http:// and https:// URLs
        request = urllib.request.Request(self._config.url, data=body,  # noqa: S310
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout):  # noqa: S310
                return ref
        except urllib.error.HTTPError as exc:
            raise http_error(exc.code, f"webhook {self.channel} answered HTTP {exc.code}",
                             exc.headers.get("Retry-After")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError("network", f"webhook {self.channel}: {exc}",
                                retryable=True) from None
