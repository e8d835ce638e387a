"""Dead-letter queues: what arrives in them, who reads them, what is about to expire.

DLQs are low-volume and bursty, so they get their own rules: any arrival is news, and no
lag trend is judged on a handful of messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from lagwatch.detect.findings import Finding
from lagwatch.detect.history import History
from lagwatch.detect.rules import Assessment, produce_rate, time_lag
from lagwatch.model import Retention, Snapshot, TopicPartition
from lagwatch.status import Severity, Status, worst
from lagwatch.text import fmt_duration

_TROUBLED = {Status.STALLED, Status.STOPPED, Status.LAGGING}


@dataclass(frozen=True, slots=True)
class DlqReport:
    """One dead-letter topic over the window."""

    topic: str
    source: str | None
    arrived: int
    inflow_rate: float | None
    unread: int
    oldest_unread_s: float | None
    readers: Mapping[str, Status]
    findings: tuple[Finding, ...]


def dlq_report(topic: str, source: str | None, snapshot: Snapshot, history: History,
               assessments: Mapping[str, Mapping[TopicPartition, Assessment]], *,
               horizon_s: float, cap_s: float) -> DlqReport:
    """Judge one DLQ from its offsets, its history and the groups that read it."""
    tps = sorted(tp for tp in snapshot.offsets if tp[0] == topic)
    windows = {tp: history.end_window(tp) for tp in tps}
    arrived = sum(w.values[-1] - w.values[0] for w in windows.values() if w)
    rates = [r for w in windows.values() if (r := produce_rate(w)) is not None]
    inflow = sum(rates) if rates else None
    readers = {gid: [a for tp, a in per.items() if tp[0] == topic]
               for gid, per in assessments.items()}
    readers = {gid: found for gid, found in readers.items() if found}
    if readers:
        unread = max(sum(a.lag_messages or 0 for a in found) for found in readers.values())
        ages = [a.lag_seconds for found in readers.values() for a in found
                if a.lag_seconds is not None]
    else:
        unread = sum(snapshot.offsets[tp].log_end - snapshot.offsets[tp].log_start
                     for tp in tps)
        ages = [age for tp in tps
                if (age := time_lag(snapshot.offsets[tp].log_start, windows[tp],
                                    snapshot.taken_at, produce_rate(windows[tp]),
                                    cap_s)[0]) is not None]
    oldest = max(ages) if ages and unread else None
    statuses = {gid: worst(a.status for a in found) for gid, found in readers.items()}
    report = DlqReport(topic, source, arrived, inflow, unread, oldest, statuses, ())
    return replace(report, findings=_findings(report, snapshot.retention.get(topic),
                                              horizon_s, history.span_s()))


def _findings(d: DlqReport, retention: Retention | None, horizon_s: float,
              span_s: float) -> tuple[Finding, ...]:
    topic, source, arrived, inflow = d.topic, d.source, d.arrived, d.inflow_rate
    unread, oldest, readers = d.unread, d.oldest_unread_s, d.readers
    found = []
    if arrived > 0:
        who = f"the consumers of {source}" if source else "some consumer"
        rate = f" ({inflow:,.2f} msg/s)" if inflow is not None else ""
        found.append(Finding("dlq_inflow", Severity.WARNING,
                             f"{arrived:,} messages arrived in {topic} over the last "
                             f"{fmt_duration(span_s)}{rate}: {who} fail on some messages",
                             subject=topic))
    if not readers and unread > 0:
        found.append(Finding("dlq_unconsumed", Severity.WARNING,
                             f"{topic} holds {unread:,} messages and no consumer group "
                             f"reads it", subject=topic))
    for group, status in sorted(readers.items()):
        if status in _TROUBLED:
            found.append(Finding("dlq_consumer_lagging", Severity.WARNING,
                                 f"group {group} reading {topic} is {status} with {unread:,} "
                                 f"messages unread", subject=topic))
    if (retention is not None and retention.retention_s is not None and oldest is not None
            and retention.retention_s - oldest <= horizon_s):
        left = max(0.0, retention.retention_s - oldest)
        found.append(Finding("dlq_expiring", Severity.WARNING,
                             f"the oldest unread message in {topic} is "
                             f"{fmt_duration(oldest)} old; retention "
                             f"({fmt_duration(retention.retention_s)}) deletes it "
                             + ("now" if left == 0 else f"in {fmt_duration(left)}"),
                             subject=topic))
    return tuple(found)
