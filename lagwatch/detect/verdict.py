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
    cluster_health,
    compaction_overtakes,
    group_findings,
    hanging_transactions,
    hot_partitions,
    produce_skew,
)
from lagwatch.detect.history import History
from lagwatch.detect.rebalance import Churn
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


def judge(snapshot: Snapshot, history: History, settings: DetectionSettings, memory: Memory, *,
          health: HealthSettings, health_memory: HealthMemory,
          dlqs: Mapping[str, str | None] | None = None,
          commits: CommitClocks | None = None) -> Verdict:
    """Assess every partition, then look for skew, DLQ and cluster trouble.

    ``dlqs`` maps each dead-letter topic in the snapshot to its source topic (or None);
    ``commits`` holds exact commit times when OffsetCommit records are read.
    """
    dlqs = dlqs or {}
    assessments = assess(snapshot, history, settings, memory, frozenset(dlqs),
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
    if snapshot.meta is not None:
        cluster = cluster_health(snapshot.meta, health_memory, health,
                                 snapshot.taken_at) + cluster
    return Verdict(
        assessments=assessments, span_s=history.span_s(), lost_total=dict(memory.lost_total),
        group_findings={gid: found for gid, g in snapshot.groups.items()
                        if (found := (*group_findings(g, assessments.get(gid, {}), health),
                                      *compaction_overtakes(assessments.get(gid, {}),
                                                            snapshot.retention,
                                                            settings.stall_after_s)))},
        cluster_findings=tuple(cluster),
        produce_skew={t: produce_skew(per)[0] for t, per in per_topic.items()
                      if len(per) >= 2},
        produce_rates=rates,
        controller_changes=health_memory.controller_changes, dlqs=dlq_reports,
        log_dir_growth=health_memory.log_dir_growth())


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
