"""Turn a Snapshot into per-group lag and status: the one view export, API and CLI share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from lagwatch.detect.findings import Finding
from lagwatch.detect.rebalance import Churn
from lagwatch.detect.rules import Assessment
from lagwatch.detect.verdict import Verdict
from lagwatch.model import CLASSIC, GroupSnapshot, Member, PollError, Snapshot, TopicPartition
from lagwatch.status import SEVERITY, Severity, Status, rank, worst, worst_severity
from lagwatch.text import fmt_duration, plural

N = TypeVar("N", int, float)


@dataclass(slots=True)
class PartitionReport:
    """Offsets, lag and status of one group on one partition. None means not known, never 0.
    Never changed once made (not ``frozen``, as ``Assessment``: one per group-partition)."""

    topic: str
    partition: int
    committed: int | None
    log_start: int | None
    log_end: int | None
    assessment: Assessment
    last_stable: int | None = None

    @property
    def status(self) -> Status:
        """Return the partition's status."""
        return self.assessment.status

    @property
    def lag_messages(self) -> int | None:
        """Return log end - committed (>= 0)."""
        return self.assessment.lag_messages

    @property
    def lag_seconds(self) -> float | None:
        """Return the estimated time lag."""
        return self.assessment.lag_seconds


@dataclass(frozen=True, slots=True)
class TopicReport:
    """One group's lag on one topic: the sum (messages) and the max (seconds).

    The totals are worked out once, when the report is built: every scrape of /metrics
    and every API call reads them, often many times between two polls.
    """

    topic: str
    partitions: tuple[PartitionReport, ...]
    lag_messages: int | None = field(init=False)  # summed over the partitions that know it
    lag_seconds: float | None = field(init=False)  # the largest known time lag
    produce_rate: float | None = field(init=False)  # summed over the known rates
    consume_rate: float | None = field(init=False)  # summed over the known rates
    catchup_eta_s: float | None = field(init=False)  # the slowest partition's; None: never
    retention_eta_s: float | None = field(init=False)  # the soonest deletion of unread data

    def __post_init__(self) -> None:
        # One pass over the partitions (a report holds every group-partition of a cluster):
        # sums of the known values, in partition order; None when none is known.
        lag = lag_s = produce = consume = retention = slowest = None
        behind = unknown_eta = False  # a partition behind; one whose ETA is not known
        for p in self.partitions:
            a = p.assessment
            if (m := a.lag_messages) is not None:
                lag = m if lag is None else lag + m
                if m:
                    behind = True
                    if (eta := a.catchup_eta_s) is None:
                        unknown_eta = True
                    elif slowest is None or eta > slowest:
                        slowest = eta
            if (s := a.lag_seconds) is not None and (lag_s is None or s > lag_s):
                lag_s = s
            if (r := a.produce_rate) is not None:
                produce = r if produce is None else produce + r
            if (r := a.consume_rate) is not None:
                consume = r if consume is None else consume + r
            if (e := a.retention_eta_s) is not None and (retention is None or e < retention):
                retention = e
        if not behind:  # caught up everywhere it is known, as a partition's ETA says
            catchup = 0.0 if lag is not None else None
        else:
            catchup = None if unknown_eta else slowest
        for name, value in (("lag_messages", lag), ("lag_seconds", lag_s),
                            ("produce_rate", produce), ("consume_rate", consume),
                            ("catchup_eta_s", catchup), ("retention_eta_s", retention)):
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class GroupReport:
    """A group's status (its worst partition), the sentences behind it, and its lag."""

    group_id: str
    state: str
    member_list: tuple[Member, ...] | None  # None: the coordinator did not describe them
    status: Status
    reasons: tuple[str, ...]
    topics: tuple[TopicReport, ...]
    findings: tuple[Finding, ...] = ()
    churn: Churn | None = None
    group_type: str = CLASSIC
    epoch: int | None = None  # a consumer-protocol group's epoch
    assignor: str | None = None  # a consumer-protocol group's server-side assignor
    blind: tuple[str, ...] = ()  # what of it the poll could not read (GroupSnapshot.blind)

    @property
    def members(self) -> int | None:
        """Return how many members the group has, if known."""
        return None if self.member_list is None else len(self.member_list)

    @property
    def severity(self) -> Severity:
        """Return the worst of the status's severity and the findings'."""
        return worst_severity([SEVERITY[self.status], *(f.severity for f in self.findings)])

    @property
    def lag_messages(self) -> int | None:
        """Return the lag summed over every topic."""
        return _sum(t.lag_messages for t in self.topics)

    @property
    def lag_seconds(self) -> float | None:
        """Return the largest time lag over every topic."""
        return _max(t.lag_seconds for t in self.topics)


@dataclass(frozen=True, slots=True)
class ClusterReport:
    """Everything known about one cluster after its latest poll.

    ``snapshot`` is the latest successful poll's cluster-wide part: offsets, metadata,
    retention, record counts; ``verdict`` is detection's judgement of it. The snapshot's
    groups and ``__consumer_offsets`` records, and the verdict's assessments, are dropped
    once reported (the group reports carry what they mean): kept, they would hold a
    second copy of every committed offset and assessment, and of every commit since the
    last poll, until the next report. ``errors`` are the latest poll's own.
    """

    cluster: str
    up: bool
    polled_at: float
    last_success: float | None
    groups: tuple[GroupReport, ...]
    snapshot: Snapshot
    errors: tuple[PollError, ...]
    verdict: Verdict = field(default_factory=lambda: Verdict(assessments={}))

    def group(self, group_id: str) -> GroupReport | None:
        """Return one group's report, if the group is watched."""
        return next((g for g in self.groups if g.group_id == group_id), None)


def build_report(snapshot: Snapshot, previous: ClusterReport | None,
                 verdict: Verdict | None) -> ClusterReport:
    """Report on a snapshot and its verdict; a failed poll (no verdict) keeps the previous
    numbers."""
    if not snapshot.up:
        if previous is None:
            return ClusterReport(snapshot.cluster, up=False, polled_at=snapshot.taken_at,
                                 last_success=None, groups=(), snapshot=snapshot,
                                 errors=snapshot.errors)
        return replace(previous, up=False, polled_at=snapshot.taken_at,
                       errors=snapshot.errors)
    if verdict is None:
        raise ValueError(f"cluster {snapshot.cluster}: a successful poll is reported with "
                         "its verdict")
    groups = tuple(replace(_group_report(snapshot, g, verdict.assessments.get(gid, {}),
                                         verdict.span_s, verdict.group_findings.get(gid, ())),
                           churn=verdict.churn.get(gid))
                   for gid, g in sorted(snapshot.groups.items()))
    return ClusterReport(snapshot.cluster, up=True, polled_at=snapshot.taken_at,
                         last_success=snapshot.taken_at, groups=groups,
                         snapshot=replace(snapshot, groups={}, group_records=(),
                                          commit_records=(), unread={}),
                         errors=snapshot.errors, verdict=replace(verdict, assessments={}))


def _group_report(snapshot: Snapshot, group: GroupSnapshot,
                  assessed: dict[TopicPartition, Assessment], span_s: float,
                  findings: tuple[Finding, ...]) -> GroupReport:
    members = None if group.members is None else len(group.members)
    by_topic: dict[str, list[PartitionReport]] = defaultdict(list)
    for tp, assessment in sorted(assessed.items()):
        log = snapshot.offsets.get(tp)
        by_topic[tp[0]].append(PartitionReport(
            tp[0], tp[1], group.committed.get(tp), log.log_start if log else None,
            log.log_end if log else None, assessment, log.last_stable if log else None))
    topics = tuple(TopicReport(t, tuple(parts)) for t, parts in sorted(by_topic.items()))
    partitions = [p for t in topics for p in t.partitions]
    if group.judged:
        status, reasons = worst(p.status for p in partitions), _reasons(partitions, members,
                                                                       span_s)
        if group.blind:  # never ok while part of it cannot be seen
            status = worst((status, Status.UNKNOWN))
            part = "part of this group" if partitions else "this group"
            said = tuple(f"lagwatch cannot judge {part}: {cause}" for cause in group.blind)
            reasons = said + reasons if status is Status.UNKNOWN else reasons + said
    else:
        status, reasons = Status.UNKNOWN, (_not_judged(group.group_type),)
    return GroupReport(group.group_id, group.state, group.members, status, reasons, topics,
                       findings, group_type=group.group_type, epoch=group.epoch,
                       assignor=group.assignor, blind=group.blind)


_UNJUDGED = {
    "share": "share groups (KIP-932) acknowledge records one by one instead of committing "
             "offsets",
    "streams": "streams groups (KIP-1071) are described by StreamsGroupDescribe, which "
               "lagwatch does not read yet",
}


def _not_judged(group_type: str) -> str:
    why = _UNJUDGED.get(group_type, "lagwatch does not know this group type")
    return (f"lagwatch does not judge {group_type} groups: {why}; this group is listed, "
            "not watched")


def _reasons(partitions: list[PartitionReport], members: int | None,
             span_s: float) -> tuple[str, ...]:
    """One sentence per status present, worst first, with the numbers behind it."""
    by_status: dict[Status, list[PartitionReport]] = defaultdict(list)
    for p in partitions:
        by_status[p.status].append(p)
    reasons = []
    for status in sorted(by_status, key=rank, reverse=True):
        parts = by_status[status]
        if status is Status.DATA_LOSS:
            lost = sum((p.log_start or 0) - (p.committed or 0) for p in parts)
            where = ", ".join(f"{p.topic}[{p.partition}] committed {p.committed:,} "
                              f"but the log starts at {p.log_start:,}" for p in parts)
            was = "was" if lost == 1 else "were"
            reasons.append(f"{plural(lost, 'unread message')} {was} deleted by retention: "
                           f"{where}")
        elif status is Status.STOPPED:
            lag = sum(p.lag_messages or 0 for p in parts)
            verb = "is" if lag == 1 else "are"
            readable = _sum(p.assessment.readable_messages for p in parts)
            if readable is None or readable == lag or any(
                    p.assessment.readable_messages is None for p in parts):
                noun, also = "message", ""
            else:  # transaction markers, aborted records or compaction: fewer to read
                noun, also = "offset", f" ({plural(readable, 'readable message')})"
            reasons.append(f"no active members while {plural(lag, noun)} {verb} unread "
                           f"on {plural(len(parts), 'partition')}{also}")
        elif status is Status.UNKNOWN:
            reasons.extend(_unknown_reasons(parts, members, span_s))
        elif status is not Status.IDLE:  # an ok partition may say why it waits
            reasons.extend(_listed([p.assessment.reason for p in parts
                                    if p.assessment.reason]))
    return tuple(reasons)


def _sum(values: Iterable[N | None]) -> N | None:
    """Sum the known values; None when none is known (never an invented 0)."""
    known = [v for v in values if v is not None]
    return sum(known[1:], known[0]) if known else None


def _max(values: Iterable[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _listed(sentences: list[str], most: int = 5) -> list[str]:
    """The first few partition sentences, then how many more there are."""
    shown = sentences[:most]
    if len(sentences) > most:
        shown.append(f"and {len(sentences) - most:,} more partitions like these")
    return shown


def _unknown_reasons(parts: list[PartitionReport], members: int | None,
                     span_s: float) -> list[str]:
    reasons = []
    if members is None:
        reasons.append("the coordinator did not describe this group's members this poll, "
                       "so a stop cannot be told from one poll")
    uncommitted = [p for p in parts if p.committed is None]
    if uncommitted:
        reasons.append(f"no committed offset yet on {plural(len(uncommitted), 'partition')}: "
                       + ", ".join(f"{p.topic}[{p.partition}]" for p in uncommitted))
    behind = [p for p in parts if p.lag_messages]
    if behind and members != 0:
        lag = sum(p.lag_messages or 0 for p in behind)
        history = (f"{fmt_duration(span_s)} of history is" if span_s > 0
                   else "one poll is")
        reasons.append(f"{plural(lag, 'message')} behind on {plural(len(behind), 'partition')}; "
                       f"{history} not enough to judge whether the group keeps up")
    return reasons
