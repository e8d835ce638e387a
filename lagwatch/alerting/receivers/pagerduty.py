"""PagerDuty Events API v2 through PagerDuty's own client (``pagerduty``).

trigger, repeat and escalate send ``trigger`` (PagerDuty folds repeats into the open
alert by its ``dedup_key``); resolve sends ``resolve`` with the same key. The client's own
retry loop is switched off: it sleeps in the caller and retries 429 without limit, so the
outbox retries instead, bounded in attempts and time, and never a 400.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from typing import Any

from pagerduty import EventsApiV2Client
from pagerduty.errors import Error as PagerDutyError

from lagwatch.alerting.config import PagerDutyConfig
from lagwatch.alerting.message import Message
from lagwatch.alerting.retry import DeliveryError, http_error

SUMMARY_LIMIT = 1024
DEDUP_LIMIT = 255
_SEVERITY = {"critical": "critical", "warning": "warning"}


def dedup_key(incident: str) -> str:
    """Return the stable dedup key of an incident (at most 255 characters)."""
    key = f"lagwatch/{incident}"
    if len(key) <= DEDUP_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[:DEDUP_LIMIT - 17]}~{digest}"


class PagerDutyReceiver:
    """One PagerDuty service (its Events API v2 integration)."""

    def __init__(self, name: str, config: PagerDutyConfig, timeout_s: float = 10.0) -> None:
        self.name = name
        self.channel = config.base_url
        verify = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else True
        client = EventsApiV2Client(config.key(), base_url=config.base_url, verify=verify)
        # One HTTP attempt per call: a status listed in ``retry`` with attempts already
        # above ``max_http_attempts`` is returned at once, and a network error raises.
        client.retry = dict.fromkeys((429, 500, 502, 503, 504), 1)
        client.max_http_attempts = -1
        client.max_network_attempts = 0
        client.timeout = int(timeout_s)
        logging.getLogger("pagerduty").setLevel(logging.CRITICAL)  # lagwatch logs outcomes
        self._client = client

    def deliver(self, m: Message, ref: dict[str, Any] | None,
                _key: str = "") -> dict[str, Any] | None:
        """Send one event; PagerDuty needs nothing kept between trigger and resolve."""
        key = dedup_key(m.incident)
        try:
            if m.resolved:
                self._client.send_event("resolve", dedup_key=key)
            else:
                self._client.send_event("trigger", dedup_key=key, payload=payload(m),
                                        links=[{"href": url, "text": label}
                                               for label, url in m.links])
        except PagerDutyError as exc:
            response = exc.response
            if response is None:  # a network error
                raise DeliveryError("network", f"PagerDuty: {exc}"[:300],
                                    retryable=True) from None
            raise http_error(response.status_code, f"PagerDuty answered HTTP "
                             f"{response.status_code}: {response.text[:200]}",
                             response.headers.get("Retry-After")) from None
        return ref


def payload(m: Message) -> dict[str, Any]:
    """The event payload: summary within PagerDuty's limit, severity, source, details."""
    summary = m.headline()
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[:SUMMARY_LIMIT - 1] + "…"
    return {"summary": summary, "severity": _SEVERITY.get(m.severity, "error"),
            "source": f"lagwatch/{m.cluster}", "component": m.subject or m.cluster,
            "group": m.cluster, "class": m.kind,
            "custom_details": {"reasons": list(m.lines), **dict(m.facts),
                               "incident": m.incident}}
