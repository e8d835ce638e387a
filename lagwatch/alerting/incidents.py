"""Incidents: findings over time become pending → firing → resolved (pure, ``now`` passed in).

A *signal* is one thing wrong in one evaluation: a group's lag status, one of its findings,
or a cluster finding. Signals with the same key (cluster, subject, kind) are the same
incident across evaluations. The book decides, at each evaluation, which notifications are
due, to which receivers:

- an incident is *pending* until its signal has held for ``for_s``, then *fires*: one
  ``trigger`` to each receiver its route names;
- while firing it sends ``repeat`` every route's repeat interval, and ``escalate`` when
  its severity rises above what was last sent (a receiver that only takes the higher
  severity gets its first ``trigger`` then);
- it *resolves* once its signal has been absent for ``resolve_after_s`` of evaluations
  with data, and it has fired for at least ``min_firing_s``: one ``resolve`` to every
  receiver that was told of it. A signal that comes back meanwhile cancels the clearing
  (hysteresis), so lag flapping around a boundary fires once and resolves once;
- while its cluster cannot be read, a group or topic incident neither fires nor resolves:
  missing data is not good news. The cluster's own ``cluster_unreachable`` incident does.
  Nor does a group's incident while the group's status is unknown (too little history);
- a silenced incident fires and resolves as usual but notifies nobody, and a resolve only
  goes to receivers that were told of the trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from lagwatch.status import Severity, severity_rank

UNREACHABLE = "cluster_unreachable"


class Phase(StrEnum):
    """Where an incident is in its life."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Action(StrEnum):
    """What a notification tells a receiver."""

    TRIGGER = "trigger"
    REPEAT = "repeat"
    ESCALATE = "escalate"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True, order=True)
class IncidentKey:
    """Which incident: a group or topic (``subject``; "" for the whole cluster) and kind."""

    cluster: str
    subject: str
    kind: str

    @property
    def id(self) -> str:
        """Return the stable text form, e.g. ``prod/billing/lag``."""
        return f"{self.cluster}/{self.subject}/{self.kind}"


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing wrong in one evaluation, with what a notification should say about it."""

    key: IncidentKey
    severity: Severity
    title: str
    lines: tuple[str, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()  # (label, rendered value): the key numbers
    group: str | None = None  # the consumer group, when the subject is one


@dataclass(frozen=True, slots=True)
class Timings:
    """Lifecycle timings (the ``alerting`` config section), in seconds."""

    for_s: float = 60.0
    resolve_after_s: float = 120.0
    min_firing_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Route:
    """Where an incident's notifications go, and how often they repeat."""

    receivers: tuple[str, ...]
    repeat_interval_s: float


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident's state; replaced, never mutated."""

    signal: Signal
    phase: Phase
    first_seen: float
    fired_at: float | None = None
    clearing_since: float | None = None
    resolved_at: float | None = None
    silenced: bool = False
    notified: Mapping[str, tuple[float, Severity]] = field(default_factory=dict)
    """Receiver -> (time and severity of the last notification it was sent)."""

    @property
    def key(self) -> IncidentKey:
        """Return the incident's key."""
        return self.signal.key


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one receiver."""

    receiver: str
    action: Action
    incident: Incident


Router = Callable[[Signal], Route]
Silencer = Callable[[IncidentKey], bool]


class IncidentBook:
    """Every open incident, evaluated against each new set of signals."""

    def __init__(self, settings: Timings) -> None:
        self.settings = settings
        self.open: dict[IncidentKey, Incident] = {}

    def evaluate(self, cluster: str, signals: Iterable[Signal], now: float, *,
                 reachable: bool, route: Router, silenced: Silencer,
                 unjudged: frozenset[str] = frozenset(),
                 owned: Callable[[Signal], bool] = lambda _s: True) -> list[Notification]:
        """Evaluate one cluster's signals; return the notifications now due.

        An incident of a group in ``unjudged`` (its status is unknown: too little history,
        as on a replica that just took the group's shard over) is held like one of an
        unreachable cluster. An incident whose subject this replica no longer owns
        (``owned``, with ha) is handed over: dropped from the book without a word, its new
        owner carries it on.
        """
        seen = {s.key: s for s in merge(signals)}
        out: list[Notification] = []
        for key in sorted(set(seen) | {k for k in self.open if k.cluster == cluster}):
            signal = seen.get(key)
            if not owned(signal or self.open[key].signal):
                self.open.pop(key, None)
                continue
            if signal is None and key.kind != UNREACHABLE and (
                    not reachable or self.open[key].signal.group in unjudged):
                self._hold(key)
                continue
            incident = self._step(key, signal, now, silenced(key))
            if incident is not None:
                incident, due = _due(incident, route, now)
                out += due
            if incident is None or incident.phase is Phase.RESOLVED:
                self.open.pop(key, None)
            else:
                self.open[key] = incident
        return out

    def _hold(self, key: IncidentKey) -> None:
        """No data: keep the incident as it is, and forget any clearing seen before."""
        self.open[key] = replace(self.open[key], clearing_since=None)

    def _step(self, key: IncidentKey, signal: Signal | None, now: float,
              silenced: bool) -> Incident | None:
        s, incident = self.settings, self.open.get(key)
        if signal is not None:
            if incident is None:
                incident = Incident(signal, Phase.PENDING, first_seen=now)
            incident = replace(incident, signal=signal, clearing_since=None,
                               silenced=silenced)
            if incident.phase is Phase.PENDING and now - incident.first_seen >= s.for_s:
                incident = replace(incident, phase=Phase.FIRING, fired_at=now)
            return incident
        if incident is None or incident.phase is Phase.PENDING:
            return None  # cleared before it fired: nobody was told
        clearing = incident.clearing_since if incident.clearing_since is not None else now
        incident = replace(incident, clearing_since=clearing, silenced=silenced)
        fired_at = incident.fired_at if incident.fired_at is not None else now
        if now - clearing >= s.resolve_after_s and now - fired_at >= s.min_firing_s:
            return replace(incident, phase=Phase.RESOLVED, resolved_at=now)
        return incident

    # persistence --------------------------------------------------------------------------
    def dump(self) -> list[dict[str, Any]]:
        """Return the open incidents as JSON-ready dicts."""
        return [dump_incident(i) for i in self.open.values()]

    def load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Restore the open incidents dumped by ``dump``."""
        self.open = {i.key: i for i in map(load_incident, rows)}


def _due(incident: Incident, route: Router, now: float
         ) -> tuple[Incident, list[Notification]]:
    """The notifications an incident's state calls for, and the incident that sent them."""
    if incident.phase is Phase.PENDING:
        return incident, []
    if incident.phase is Phase.RESOLVED:
        return incident, [Notification(r, Action.RESOLVE, incident) for r in incident.notified]
    if incident.silenced or incident.clearing_since is not None:
        return incident, []
    target = route(incident.signal)
    severity = incident.signal.severity
    notified = dict(incident.notified)
    actions: list[tuple[str, Action]] = []
    for receiver in target.receivers:
        last = notified.get(receiver)
        if last is None:
            actions.append((receiver, Action.TRIGGER))
        elif severity_rank(severity) > severity_rank(last[1]):
            actions.append((receiver, Action.ESCALATE))
        elif now - last[0] >= target.repeat_interval_s:
            actions.append((receiver, Action.REPEAT))
        else:
            continue
        notified[receiver] = (now, severity)
    incident = replace(incident, notified=notified)
    return incident, [Notification(r, a, incident) for r, a in actions]


def merge(signals: Iterable[Signal]) -> list[Signal]:
    """Fold signals with the same key into one: worst severity, every line."""
    merged: dict[IncidentKey, Signal] = {}
    for s in signals:
        before = merged.get(s.key)
        if before is None:
            merged[s.key] = s
            continue
        worse = severity_rank(s.severity) > severity_rank(before.severity)
        merged[s.key] = replace(before, severity=s.severity if worse else before.severity,
                                lines=before.lines + tuple(x for x in s.lines
                                                           if x not in before.lines))
    return list(merged.values())


def dump_incident(i: Incident) -> dict[str, Any]:
    """An incident as a JSON-ready dict."""
    s = i.signal
    return {"key": [s.key.cluster, s.key.subject, s.key.kind], "severity": str(s.severity),
            "title": s.title, "lines": list(s.lines), "facts": [list(f) for f in s.facts],
            "group": s.group, "phase": str(i.phase), "first_seen": i.first_seen,
            "fired_at": i.fired_at, "clearing_since": i.clearing_since,
            "silenced": i.silenced,
            "notified": {r: [t, str(sev)] for r, (t, sev) in i.notified.items()}}


def load_incident(row: Mapping[str, Any]) -> Incident:
    """The incident ``dump_incident`` wrote (raises KeyError, TypeError or ValueError for
    anything else)."""
    signal = Signal(IncidentKey(*row["key"]), Severity(row["severity"]), row["title"],
                    tuple(row["lines"]), tuple((a, b) for a, b in row["facts"]), row["group"])
    return Incident(signal, Phase(row["phase"]), row["first_seen"], row["fired_at"],
                    row["clearing_since"], silenced=row["silenced"],
                    notified={r: (t, Severity(sev)) for r, (t, sev) in row["notified"].items()})
