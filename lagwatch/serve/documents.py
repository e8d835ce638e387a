"""Every JSON document lagwatch answers with: the status API and ``check --json``
(the README's *HTTP endpoints*), rendered from the reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.incidents import Incident
from lagwatch.audit.items import ClusterAudit, Item, Outcome
from lagwatch.detect.findings import Finding
from lagwatch.detect.rebalance import Churn
from lagwatch.model import Member
from lagwatch.report.view import ClusterReport, GroupReport, PartitionReport


def iso(ts: float | None) -> str | None:
    """Format epoch seconds as an RFC 3339 UTC timestamp."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_document(reports: list[ClusterReport], now: float,
                clusters: list[str] | None = None) -> dict[str, Any]:
    """Render reports as the /api/v1/status document (the README's *HTTP endpoints*).

    A configured cluster not polled yet is listed as down with no groups.
    """
    pending = pending_cluster()
    documents = dict.fromkeys(clusters or (), pending)
    documents.update({r.cluster: cluster_document(r) for r in reports})
    return {"generated_at": iso(now), "clusters": documents}


def pending_cluster() -> dict[str, Any]:
    """A configured cluster not polled yet: down, with no groups."""
    return {"up": False, "last_poll": None, "errors": [], "findings": [], "dlqs": {},
            "groups": {}}


def cluster_document(report: ClusterReport) -> dict[str, Any]:
    """Render one cluster of the status document."""
    return {**cluster_fields(report),
            "groups": {g.group_id: group_document(g) for g in report.groups}}


def cluster_fields(report: ClusterReport) -> dict[str, Any]:
    """Render one cluster of the status document, but its groups."""
    return {
        "up": report.up,
        "last_poll": iso(report.last_success),
        "errors": [str(e) for e in report.errors],
        "findings": findings_document(report.verdict.cluster_findings),
        "dlqs": {d.topic: {"source": d.source, "arrived": d.arrived,
                           "inflow_rate": _rounded(d.inflow_rate), "unread_messages": d.unread,
                           "oldest_unread_seconds": _rounded(d.oldest_unread_s),
                           "consumers": {g: str(s) for g, s in sorted(d.readers.items())}}
                 for d in report.verdict.dlqs},
    }


def _churn_document(churn: Churn | None) -> dict[str, Any] | None:
    if churn is None:
        return None
    return {"total": churn.total, "in_window": churn.in_window,
            "per_hour": round(churn.per_hour, 3),
            "rebalancing_share": round(churn.rebalancing_share, 3), "joined": churn.joined,
            "left": churn.left, "likely_cause": churn.cause, "exact": churn.exact,
            "episodes": churn.episodes}


def findings_document(findings: tuple[Finding, ...]) -> list[dict[str, str]]:
    """Render findings as {kind, severity, reason} objects."""
    return [{"kind": f.kind, "severity": str(f.severity), "reason": f.reason}
            for f in findings]


def group_document(group: GroupReport) -> dict[str, Any]:
    """Render one group of the status document."""
    return {
        "status": str(group.status), "severity": str(group.severity),
        "reasons": list(group.reasons), "findings": findings_document(group.findings),
        "rebalances": _churn_document(group.churn),
        "type": group.group_type, "epoch": group.epoch, "assignor": group.assignor,
        "state": group.state, "members": group.members,
        "member_list": None if group.member_list is None else [
            _member_document(m) for m in group.member_list],
        "lag_messages": group.lag_messages, "lag_seconds": _rounded(group.lag_seconds),
        "topics": {t.topic: {
            "lag_messages": t.lag_messages, "lag_seconds": _rounded(t.lag_seconds),
            "produce_rate": _rounded(t.produce_rate), "consume_rate": _rounded(t.consume_rate),
            "catchup_eta_seconds": _rounded(t.catchup_eta_s),
            "retention_eta_seconds": _rounded(t.retention_eta_s),
            "partitions": {str(p.partition): partition_document(p) for p in t.partitions}}
            for t in group.topics},
    }


def _member_document(m: Member) -> dict[str, Any]:
    return {"member_id": m.member_id, "client_id": m.client_id, "client_host": m.client_host,
            "instance_id": m.group_instance_id, "member_epoch": m.member_epoch,
            "assigned": [list(tp) for tp in m.assignment],
            "target": None if m.target is None else [list(tp) for tp in m.target]}


def partition_document(p: PartitionReport) -> dict[str, Any]:
    """Render one partition of the status document."""
    a = p.assessment
    return {"committed": p.committed, "log_end": p.log_end, "log_start": p.log_start,
            "last_stable": p.last_stable,
            "lag_messages": a.lag_messages, "lag_seconds": _rounded(a.lag_seconds),
            "lag_seconds_extrapolated": a.lag_seconds_extrapolated,
            "lag_seconds_exact": a.lag_seconds_exact,
            "readable_messages": a.readable_messages, "compacted_away": a.compacted_away,
            "produce_rate": _rounded(a.produce_rate), "consume_rate": _rounded(a.consume_rate),
            "catchup_eta_seconds": _rounded(a.catchup_eta_s),
            "retention_eta_seconds": _rounded(a.retention_eta_s),
            "status": str(a.status), "reason": a.reason}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def incident_document(i: Incident, silenced: bool) -> dict[str, Any]:
    """Render one open incident for /api/v1/incidents."""
    s = i.signal
    return {"id": s.key.id, "cluster": s.key.cluster, "subject": s.key.subject,
            "kind": s.key.kind, "severity": str(s.severity), "phase": str(i.phase),
            "title": s.title, "reasons": list(s.lines), "silenced": silenced,
            "first_seen": iso(i.first_seen), "fired_at": iso(i.fired_at),
            "notified": sorted(i.notified)}


def silence_document(silence_id: str, s: SilenceConfig, now: float) -> dict[str, Any]:
    """Render one silence for /api/v1/silences."""
    return {"id": silence_id, "match": {"cluster": s.match.cluster.pattern,
                                        "group": s.match.group.pattern,
                                        "kind": s.match.kind.pattern},
            "starts": s.starts.isoformat() if s.starts else None,
            "ends": s.ends.isoformat(), "comment": s.comment,
            "active": (s.starts is None or s.starts.timestamp() <= now)
            and now < s.ends.timestamp()}


def audit_document(audits: list[ClusterAudit], now: float) -> dict[str, Any]:
    """Render audits as the /api/v1/audit and ``audit --format json`` document."""
    return {"generated_at": iso(now), "clusters": {a.cluster: {
        "observed_seconds": _rounded(a.observed_s),
        "errors": list(a.errors),
        "summary": _outcomes(a.items),
        "items": [_item_document(i) for i in a.items],
        "groups": {g.group: {"summary": _outcomes(g.items),
                             "items": [_item_document(i) for i in g.items]}
                   for g in a.groups}} for a in audits}}


def _outcomes(items: tuple[Item, ...]) -> dict[str, int]:
    return {str(o): sum(1 for i in items if i.outcome is o) for o in Outcome}


def _item_document(i: Item) -> dict[str, Any]:
    return {"id": i.id, "title": i.title, "outcome": str(i.outcome),
            "evidence": list(i.evidence), "advice": i.advice}
