"""An audit's results: items with an outcome, evidence and advice, per group and cluster."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """An item's verdict, in order of concern."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    NOT_OBSERVABLE = "not observable"
    WARN = "warn"
    FAIL = "fail"


def worst_outcome(outcomes: Iterable[Outcome]) -> Outcome:
    """The most concerning outcome (pass for none at all)."""
    return max(outcomes, key=list(Outcome).index, default=Outcome.PASS)


@dataclass(frozen=True, slots=True)
class Item:
    """One checklist item for one group (or the cluster)."""

    id: str
    title: str
    outcome: Outcome
    evidence: tuple[str, ...]
    advice: str


@dataclass(frozen=True, slots=True)
class GroupAudit:
    """Every item for one group."""

    group: str
    items: tuple[Item, ...]

    def count(self, outcome: Outcome) -> int:
        """How many items came out so."""
        return sum(1 for i in self.items if i.outcome is outcome)


@dataclass(frozen=True, slots=True)
class ClusterAudit:
    """The cluster's own items, then every watched group's."""

    cluster: str
    items: tuple[Item, ...]
    groups: tuple[GroupAudit, ...]
    observed_s: float  # how much history the evidence covers
    errors: tuple[str, ...] = ()  # what could not be read for the audit

    def worst(self) -> Outcome:
        """The most concerning outcome anywhere in the audit."""
        outcomes = [i.outcome for i in self.items] + [
            i.outcome for g in self.groups for i in g.items]
        return worst_outcome(outcomes)
