"""What a notification says, independent of where it goes (pure, JSON round-trippable)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from urllib.parse import quote

from lagwatch.alerting.config import LinksConfig
from lagwatch.alerting.incidents import Action, Notification


@dataclass(frozen=True, slots=True)
class Message:
    """One notification's content, as stored in the outbox."""

    incident: str  # the incident key's id, e.g. prod/billing/lag
    cluster: str
    subject: str
    kind: str
    action: str
    severity: str
    title: str
    lines: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...]
    at: float  # when the incident book decided to send it

    @property
    def resolved(self) -> bool:
        """Say whether this message resolves its incident."""
        return self.action == Action.RESOLVE.value

    def headline(self) -> str:
        """Return the one-line summary, e.g. ``[CRITICAL] billing is stalled (prod)``."""
        tag = "RESOLVED" if self.resolved else self.severity.upper()
        verb = {"repeat": " - still firing", "escalate": " - escalated"}.get(self.action, "")
        return f"[{tag}] {self.title} ({self.cluster}){verb}"

    def to_json(self) -> str:
        """Serialise for the outbox."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Message:
        """Read back what ``to_json`` wrote."""
        data = json.loads(text)
        return cls(**{**data, "lines": tuple(data["lines"]),
                      "facts": tuple(tuple(f) for f in data["facts"]),
                      "links": tuple(tuple(x) for x in data["links"])})


def compose(n: Notification, links: LinksConfig, now: float) -> Message:
    """Build the message for one notification."""
    s = n.incident.signal
    return Message(s.key.id, s.key.cluster, s.key.subject, s.key.kind, str(n.action),
                   str(s.severity), s.title, s.lines, s.facts,
                   render_links(links, s.key.cluster, s.key.subject, s.key.kind, s.group), now)


def render_links(links: LinksConfig, cluster: str, subject: str, kind: str,
                 group: str | None) -> tuple[tuple[str, str], ...]:
    """Fill the link templates in; each value is URL-quoted."""
    values = {"cluster": cluster, "subject": subject, "kind": kind, "group": group or ""}
    quoted = {k: quote(v, safe="") for k, v in values.items()}
    return tuple((label, template.format(**quoted))
                 for label, template in (("Dashboard", links.dashboard),
                                         ("Runbook", links.runbook)) if template)


def test_messages(now: float) -> tuple[Message, Message]:
    """A test trigger and its resolve, for ``lagwatch test-notify``."""
    trigger = Message("lagwatch/test-notify/test", "lagwatch", "test-notify", "test",
                      Action.TRIGGER.value, "warning", "lagwatch test notification",
                      ("This is a test from lagwatch test-notify; nothing is wrong.",),
                      (), (), now)
    return trigger, replace(trigger, action=Action.RESOLVE.value)
