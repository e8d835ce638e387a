"""One poll's full judgement: partition statuses, group and cluster findings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lagwatch.detect.assess import Assessments, assess
from lagwatch.detect.commits import CommitClocks
from lagwatch.detect.dlq import DlqReport, dlq_report
from lagwatch.detect.findings import (
    Finding,
    HealthMemory,
    HealthSettings,
    blind_groups,
    cluster_health,
    compaction_overtakes,
    group_findings,
    hanging_transactions,
    hot_partitions,
    produce_skew,
)
from lagwatch.detect.history import History
from lagwatch.detect.rebalance import Churn, ChurnSettings, RebalanceTracker, churn_finding
from lagwatch.detect.rules import (
    DetectionSettings,
    Memory,
    held_since,
    is_held_by_transaction,
    produce_rate,
)
from lagwatch.model import Snapshot, TopicPartition


@dataclass(frozen=True)
class Verdict:
    """What detection concluded about one successful poll."""

    assessments: Assessments
    span_s: float = 0.0
    lost_total: Mapping[tuple[str, str], int] = field(default_factory=dict)
    group_findings: Mapping[str, tuple[Finding, ...]] = field(default_factory=dict)
    cluster_findings: tuple[Finding, ...] = ()
    produce_skew: Mapping[str, float] = field(default_factory=dict)  # topic -> max/mean
    produce_rates: Mapping[TopicPartition, float] = field(default_factory=dict)  # msgs/s
    controller_changes: int = 0
    dlqs: tuple[DlqReport, ...] = ()
    churn: Mapping[str, Churn] = field(default_factory=dict)
    log_dir_growth: Mapping[tuple[int, str], float] = field(default_factory=dict)


class DetectionMemory:
    """Everything detection remembers about one cluster between polls, besides the history:
    the partition rules' memory (persisted), the cluster rules', each partition's commit
    clock and each group's rebalances."""

    def __init__(self, window_s: float, churn: ChurnSettings) -> None:
        self.rules = Memory()
        self.health = HealthMemory()
        self.commits = CommitClocks(window_s)
        self.rebalances = RebalanceTracker(churn)

    def fold_commits(self, snapshot: Snapshot) -> CommitClocks | None:
        """Fold in this poll's OffsetCommit records; None when the records are not read."""
        for at, record in snapshot.commit_records:
            self.commits.observe(record, at)
        self.commits.forget(set(snapshot.groups))
        return self.commits if snapshot.records_exact else None

    def fold_rebalances(self, snapshot: Snapshot) -> dict[str, Churn]:
        """Count rebalances (exactly from records when read); each group's churn."""
        tracker, now = self.rebalances, snapshot.taken_at
        tracker.exact = snapshot.records_exact
        for at, record in snapshot.group_records:
            tracker.observe_record(record, at)
        for group in snapshot.groups.values():
            tracker.observe_poll(group, now)
        # a group created after this poll listed the groups is already in the records
        tracker.forget(set(snapshot.groups) | {r.group for _, r in snapshot.group_records})
        return {gid: c for gid in snapshot.groups if (c := tracker.churn(gid, now))}


def judge(snapshot: Snapshot, history: History, settings: DetectionSettings,
          memory: DetectionMemory, *, health: HealthSettings,
          dlqs: Mapping[str, str | None] | None = None) -> Verdict:
    """Fold in the poll's records, assess every partition, then look for skew, rebalance
    churn, DLQ and cluster trouble.

    ``dlqs`` maps each dead-letter topic in the snapshot to its source topic (or None).
    """
    dlqs = dlqs or {}
    commits = memory.fold_commits(snapshot)
    churn = memory.fold_rebalances(snapshot)
    assessments = assess(snapshot, history, settings, memory.rules, frozenset(dlqs),
                         commits=commits)
    dlq_reports = tuple(
        dlq_report(topic, source, snapshot, history, assessments,
                   horizon_s=settings.retention_horizon_s, cap_s=settings.max_extrapolation_s)
        for topic, source in sorted(dlqs.items()))
    rates: dict[TopicPartition, float] = {}
    for tp in snapshot.offsets:
        rate = produce_rate(history.end_window(tp))
        if rate is not None:
            rates[tp] = rate
    per_topic: dict[str, dict[int, float]] = {}
    for (topic, partition), rate in rates.items():
        per_topic.setdefault(topic, {})[partition] = rate
    cluster = hot_partitions({tp: r for tp, r in rates.items() if tp[0] not in dlqs}, health)
    cluster += [f for d in dlq_reports for f in d.findings]
    cluster += _hanging(snapshot, history, settings)
    blind = blind_groups(snapshot.groups, memory.health, settings.stall_after_s,
                         snapshot.taken_at)
    if blind is not None:
        cluster.insert(0, blind)
    if snapshot.meta is not None:
        cluster = cluster_health(snapshot.meta, memory.health, health,
                                 snapshot.taken_at) + cluster
    churning = {gid: f for gid, c in churn.items()
                if (f := churn_finding(c, memory.rebalances.settings)) is not None}
    return Verdict(
        assessments=assessments, span_s=history.span_s(),
        lost_total=dict(memory.rules.lost_total),
        group_findings={gid: found for gid, g in snapshot.groups.items()
                        if (found := (*group_findings(g, assessments.get(gid, {}), health),
                                      *compaction_overtakes(assessments.get(gid, {}),
                                                            snapshot.retention,
                                                            settings.stall_after_s),
                                      *((churning[gid],) if gid in churning else ())))},
        cluster_findings=tuple(cluster),
        produce_skew={t: produce_skew(per)[0] for t, per in per_topic.items()
                      if len(per) >= 2},
        produce_rates=rates,
        controller_changes=memory.health.controller_changes, dlqs=dlq_reports, churn=churn,
        log_dir_growth=memory.health.log_dir_growth())


def _hanging(snapshot: Snapshot, history: History, settings: DetectionSettings) -> list[Finding]:
    """Transactions that hold a partition's last stable offset still."""
    held = {tp for tp, lo in snapshot.offsets.items() if lo.held_back}
    since: dict[TopicPartition, float] = {}
    waiting: dict[TopicPartition, list[str]] = {}
    for tp in held:
        lso = snapshot.offsets[tp].last_stable
        t = held_since(history.held_since(tp), snapshot.unread.get((tp, lso))
                       if lso is not None else None)
        if t is not None:
            since[tp] = t
        waiting[tp] = sorted(
            gid for gid, g in snapshot.groups.items()
            if (c := g.committed.get(tp)) is not None and is_held_by_transaction(
                c, snapshot.offsets[tp], snapshot.unread.get((tp, c))))
    return hanging_transactions(snapshot.offsets, since, snapshot.transactions, waiting,
                                after_s=settings.stall_after_s,
                                timeout_s=snapshot.transaction_max_timeout_s,
                                now=snapshot.taken_at)
