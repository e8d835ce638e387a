"""The status model (the README's *Statuses*): names, severities and which is worse."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Status(StrEnum):
    """How one partition, or one group as its worst partition, is doing."""

    OK = "ok"
    IDLE = "idle"
    UNKNOWN = "unknown"
    LAGGING = "lagging"
    REWOUND = "rewound"
    AT_RISK = "at_risk"
    STALLED = "stalled"
    STOPPED = "stopped"
    DATA_LOSS = "data_loss"


class Severity(StrEnum):
    """What a status asks of people: nothing, a look, or action now."""

    NONE = "none"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY: dict[Status, Severity] = {
    Status.OK: Severity.NONE,
    Status.IDLE: Severity.NONE,
    Status.UNKNOWN: Severity.NONE,
    Status.LAGGING: Severity.WARNING,
    Status.REWOUND: Severity.WARNING,
    Status.AT_RISK: Severity.WARNING,
    Status.STALLED: Severity.CRITICAL,
    Status.STOPPED: Severity.CRITICAL,
    Status.DATA_LOSS: Severity.CRITICAL,
}

# Enum order is the order of concern: a later status outranks an earlier one.
_RANK = {status: rank for rank, status in enumerate(Status)}


def rank(status: Status) -> int:
    """Return how concerning a status is; higher is worse."""
    return _RANK[status]


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}


def severity_rank(severity: Severity) -> int:
    """Return how pressing a severity is: 0 none, 1 warning, 2 critical."""
    return _SEVERITY_RANK[severity]


def worst_severity(severities: Iterable[Severity]) -> Severity:
    """Return the most pressing severity, or none for none at all."""
    return max(severities, key=severity_rank, default=Severity.NONE)


def worst(statuses: Iterable[Status]) -> Status:
    """Return the most concerning status, or ok for none at all."""
    return max(statuses, key=rank, default=Status.OK)
