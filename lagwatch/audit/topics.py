"""Checklist items about the topics a group reads: scaling, keys, retention, compaction and
durability (pure)."""

from __future__ import annotations

from lagwatch.audit.config import AuditConfig
from lagwatch.audit.items import Item, Outcome, worst_outcome
from lagwatch.model import TopicPartition
from lagwatch.report.view import ClusterReport, GroupReport
from lagwatch.text import fmt_duration, plural


def _partitions(report: ClusterReport, topic: str) -> int:
    return sum(1 for t, _ in report.snapshot.offsets if t == topic)


def scaling_item(report: ClusterReport, g: GroupReport) -> Item:
    """Members against partitions: idle members, or no room left to scale out."""
    title = "Partition count matches consumer scaling"
    advice = ("Keep more partitions than members, so the group can scale out when it "
              "falls behind; members beyond the partition count sit idle.")
    members = g.member_list or ()
    if not members:
        return Item("scaling", title, Outcome.NOT_OBSERVABLE,
                    ("the group has no members now",), advice)
    idle = [m for m in members if not m.assignment]
    evidence, outcome = [], Outcome.PASS
    for t in g.topics:
        count = _partitions(report, t.topic)
        owners = sum(1 for m in members if any(tp[0] == t.topic for tp in m.assignment))
        if owners >= count:
            outcome = Outcome.WARN
            evidence.append(f"{t.topic}: {plural(owners, 'member')} own its "
                            f"{plural(count, 'partition')}: no room to scale out")
        else:
            evidence.append(f"{t.topic}: {plural(owners, 'member')} for "
                            f"{plural(count, 'partition')}: room for "
                            f"{count - owners:,} more")
    if idle:
        outcome = Outcome.WARN
        evidence.append(f"{plural(len(idle), 'member')} of {len(members):,} own no "
                        "partition and sit idle")
    return Item("scaling", title, outcome, tuple(evidence), advice)


def key_cardinality_item(report: ClusterReport, topics: list[str], hot_ratio: float) -> Item:
    """Produce skew over a topic's partitions: one hot key shows as one hot partition."""
    title = "Partitioning key has high cardinality"
    advice = ("Choose a key with many values spread evenly (an order id, not a country), "
              "so no partition takes most of the writes.")
    evidence, outcome = [], Outcome.NOT_OBSERVABLE
    for topic in topics:
        skew = report.verdict.produce_skew.get(topic)
        if skew is None:
            evidence.append(f"{topic}: no produce skew known (one partition, or no writes "
                            "in the window)")
            continue
        hot = skew >= hot_ratio
        evidence.append(f"{topic}: the busiest partition takes {skew:.1f}x the mean "
                        f"produce rate of {plural(_partitions(report, topic), 'partition')}"
                        + (": a hot key?" if hot else ""))
        if hot:
            outcome = Outcome.WARN
        elif outcome is Outcome.NOT_OBSERVABLE:
            outcome = Outcome.PASS
    return Item("key_cardinality", title, outcome, tuple(evidence), advice)


def retention_item(report: ClusterReport, topics: list[str], requirement_s: float,
                   log_start_at: dict[TopicPartition, float], now: float) -> Item:
    """retention.ms, and how far back the log really reaches, against the replay need."""
    title = "Retention period matches replay requirements"
    advice = (f"Keep at least {fmt_duration(requirement_s)} (audit.replay_requirement), "
              "or change the requirement to what replays really need.")
    evidence, outcome = [], Outcome.PASS
    for topic in topics:
        r = report.snapshot.retention.get(topic)
        starts = [t for (name, _), t in log_start_at.items() if name == topic]
        reach = (f"; the oldest record is {fmt_duration(now - min(starts))} old"
                 if starts else "")
        if r is None:
            evidence.append(f"{topic}: retention not read")
            outcome = worst_outcome((outcome, Outcome.NOT_OBSERVABLE))
        elif r.retention_s is not None and r.retention_s < requirement_s:
            evidence.append(f"{topic}: keeps {fmt_duration(r.retention_s)} (retention.ms "
                            f"{r.retention_s * 1000:.0f}), less than the replay requirement "
                            f"of {fmt_duration(requirement_s)}{reach}")
            outcome = Outcome.FAIL
        elif r.retention_s is None and r.compacted:
            evidence.append(f"{topic}: compacted: only the latest record of each key is "
                            f"kept{reach}")
            outcome = worst_outcome((outcome, Outcome.WARN))
        else:
            kept = "for ever" if r.retention_s is None else fmt_duration(r.retention_s)
            evidence.append(f"{topic}: keeps {kept}{reach}")
            if r.retention_bytes is not None and starts and now - min(starts) < requirement_s:
                evidence.append(f"{topic}: retention.bytes {r.retention_bytes:,} may delete "
                                "sooner than retention.ms")
                outcome = worst_outcome((outcome, Outcome.WARN))
    return Item("retention_replay", title, outcome, tuple(evidence), advice)


def compaction_item(report: ClusterReport, g: GroupReport) -> Item:
    """A compacted topic read by a group further behind than min.compaction.lag.ms."""
    title = "Log compaction behaviour understood"
    advice = ("Keep the group's time lag below min.compaction.lag.ms on compacted topics, "
              "or raise it: the cleaner may otherwise remove updates the group never read.")
    evidence, outcome = [], Outcome.PASS
    for t in g.topics:
        r = report.snapshot.retention.get(t.topic)
        if r is None or not r.compacted:
            continue
        lag = t.lag_seconds
        behind = lag is not None and lag > r.min_compaction_lag_s
        evidence.append(f"{t.topic}: compacted, min.compaction.lag.ms "
                        f"{r.min_compaction_lag_s * 1000:.0f}; the group is "
                        + ("an unknown time" if lag is None else fmt_duration(lag))
                        + " behind" + (": updates may be compacted away unread" if behind
                                       else ""))
        if behind:
            outcome = Outcome.FAIL
    return Item("compaction", title, outcome,
                tuple(evidence) or ("the group reads no compacted topic",), advice)


def durability_item(report: ClusterReport, topics: list[str], audit: AuditConfig) -> Item:
    """Replication factor, min.insync.replicas and unclean leader election per topic."""
    title = "Topics survive a broker loss"
    advice = (f"Use replication factor {audit.min_replication_factor} or more, "
              f"min.insync.replicas {audit.min_insync_replicas} with acks=all producers, "
              "and unclean.leader.election.enable=false.")
    replication = report.snapshot.meta.replication if report.snapshot.meta else {}
    evidence, outcome = [], Outcome.PASS
    for topic in topics:
        r = report.snapshot.retention.get(topic)
        factor = replication.get(topic)
        isr = r.min_insync_replicas if r else None
        unclean = r.unclean_leader_election if r else None
        evidence.append(f"{topic}: replication factor {_known(factor)}, min.insync.replicas "
                        f"{_known(isr)}, unclean.leader.election.enable {_known(unclean)}")
        if unclean or (factor == 1 < audit.min_replication_factor):
            outcome = Outcome.FAIL
        elif ((factor is not None and factor < audit.min_replication_factor)
              or (isr is not None and isr < audit.min_insync_replicas)):
            outcome = worst_outcome((outcome, Outcome.WARN))
        elif factor is None or isr is None:
            outcome = worst_outcome((outcome, Outcome.NOT_OBSERVABLE))
    return Item("durability", title, outcome, tuple(evidence), advice)


def _known(value: object) -> str:
    if value is None:
        return "unknown"
    return str(value).lower() if isinstance(value, bool) else str(value)
