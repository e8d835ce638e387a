"""What is wrong in one cluster report, as incident signals (pure).

- a group whose lag status has a severity: kind ``lag``, its severity the status's;
- each group finding with a severity: kind = the finding's kind;
- each cluster finding with a severity: subject = what it is about (a topic, a log dir);
- an unreachable cluster: kind ``cluster_unreachable``, and nothing else from it.

Every signal of a group carries all of the group's lines (its status reasons, which name
each partition, then its findings), so one message shows the whole group.
"""

from __future__ import annotations

from collections.abc import Iterable

from lagwatch.alerting.incidents import UNREACHABLE, IncidentKey, Signal
from lagwatch.report.view import ClusterReport, GroupReport
from lagwatch.status import SEVERITY, Severity
from lagwatch.text import fmt_duration

LAG = "lag"


def signals(report: ClusterReport) -> list[Signal]:
    """Return the signals of one cluster's latest report."""
    cluster = report.cluster
    if not report.up:
        why = report.errors[0].message if report.errors else "no successful poll"
        return [Signal(IncidentKey(cluster, "", UNREACHABLE), Severity.CRITICAL,
                       f"cluster {cluster} is unreachable", (why,))]
    out = []
    for g in report.groups:
        out += _group_signals(cluster, g)
    out += [Signal(IncidentKey(cluster, f.subject, f.kind), f.severity,
                   f"{cluster}: {f.kind.replace('_', ' ')}"
                   + (f" on {f.subject}" if f.subject else ""), (f.reason,))
            for f in report.verdict.cluster_findings if f.severity is not Severity.NONE]
    return out


def _group_signals(cluster: str, g: GroupReport) -> list[Signal]:
    findings = [f for f in g.findings if f.severity is not Severity.NONE]
    lines = (*g.reasons, *(f.reason for f in findings))
    if SEVERITY[g.status] is Severity.NONE:
        lines = tuple(f.reason for f in findings)
    facts = group_facts(g)
    out = []
    if SEVERITY[g.status] is not Severity.NONE:
        out.append(Signal(IncidentKey(cluster, g.group_id, LAG), SEVERITY[g.status],
                          f"{g.group_id} is {g.status}", lines, facts, g.group_id))
    out += [Signal(IncidentKey(cluster, g.group_id, f.kind), f.severity,
                   f"{g.group_id}: {f.kind.replace('_', ' ')}",
                   (f.reason, *(x for x in lines if x != f.reason)), facts, g.group_id)
            for f in findings]
    return out


def group_facts(g: GroupReport) -> tuple[tuple[str, str], ...]:
    """The key numbers of a group, rendered for people."""
    facts: list[tuple[str, str]] = [("status", str(g.status))]
    if g.lag_messages is not None:
        facts.append(("lag", f"{g.lag_messages:,} messages"))
    if g.lag_seconds is not None:
        facts.append(("time lag", fmt_duration(g.lag_seconds)))
    consume = _total(t.consume_rate for t in g.topics)
    produce = _total(t.produce_rate for t in g.topics)
    if consume is not None and produce is not None:
        facts.append(("consume / produce", f"{consume:,.1f} / {produce:,.1f} msg/s"))
    etas = [t.catchup_eta_s for t in g.topics if t.lag_messages]
    if etas:
        facts.append(("catch-up ETA", "not catching up" if None in etas
                      else fmt_duration(max(e for e in etas if e is not None))))
    if g.members is not None:
        facts.append(("members", str(g.members)))
    return tuple(facts)


def _total(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
