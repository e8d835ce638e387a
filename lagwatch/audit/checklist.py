"""The production checklist, item by item, judged from what lagwatch saw (pure, no I/O).

Every item gets pass, warn, fail or not observable, the evidence behind it (numbers, names,
settings) and one sentence on what to do. What the cluster cannot show (idempotent
handlers, replay tooling, a shadow environment, crash tests) is listed as not observable,
so that the report is the whole checklist.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagwatch.alerting.config import AlertingConfig, SilenceConfig
from lagwatch.alerting.incidents import IncidentKey, Signal
from lagwatch.alerting.signals import LAG
from lagwatch.audit.config import AuditConfig
from lagwatch.audit.evidence import AuditEvidence, GroupEvidence
from lagwatch.audit.items import ClusterAudit, GroupAudit, Item, Outcome
from lagwatch.audit.topics import (
    compaction_item,
    durability_item,
    key_cardinality_item,
    retention_item,
    scaling_item,
)
from lagwatch.detect.findings import HealthSettings
from lagwatch.detect.rebalance import ChurnSettings
from lagwatch.model import CLASSIC, CONSUMER, TopicPartition
from lagwatch.report.view import ClusterReport, GroupReport
from lagwatch.status import Severity, worst_severity
from lagwatch.text import fmt_duration, fmt_time, plural


@dataclass(frozen=True, slots=True)
class Standards:
    """What the items are judged against: the audit section, lagwatch's own thresholds
    and its alerting (routes and every silence, from the config and the API)."""

    audit: AuditConfig
    health: HealthSettings
    churn: ChurnSettings
    alerting: AlertingConfig
    silences: tuple[SilenceConfig, ...] = ()


UNOBSERVABLE = {
    "replay_tooling": ("Replay strategy documented, state compatibility checked",
                       "Write down how a replay is done and how state is checked before it."),
    "shadow_environment": ("Shadow replay environment available",
                           "Replay into a copy of production first, and compare."),
    "crash_tests": ("Consumer crash mid-batch and lag recovery tested",
                    "Kill a consumer mid-batch in a test and check nothing is lost or "
                    "applied twice."),
}


def audit(report: ClusterReport, evidence: AuditEvidence, standards: Standards,
          log_start_at: dict[TopicPartition, float], now: float) -> ClusterAudit:
    """Judge every checklist item for the cluster and each watched group it reports on.

    ``log_start_at`` holds the timestamp of the record at each partition's log start
    (how far back the log really reaches), where it was read.
    """
    groups = tuple(_group_audit(report, g, evidence, standards, log_start_at=log_start_at,
                                now=now)
                   for g in report.groups if g.group_type in (CLASSIC, CONSUMER))
    return ClusterAudit(report.cluster, _cluster_items(report), groups,
                        report.verdict.span_s)


def _group_audit(report: ClusterReport, g: GroupReport, evidence: AuditEvidence,
                 s: Standards, *, log_start_at: dict[TopicPartition, float],
                 now: float) -> GroupAudit:
    topics = [t.topic for t in g.topics]
    ev = evidence.group(g.group_id)
    items: list[Item] = [
        _idempotency(ev),
        _commit_strategy(ev, evidence.records_read, report.verdict.span_s),
        _dlq(report, topics),
        _poison_pill(ev, report.verdict.span_s),
        _lag_alerting(report.cluster, g.group_id, s, now),
        _static_membership(g),
        _rebalance_settings(g, ev, s),
        scaling_item(report, g),
        key_cardinality_item(report, topics, s.health.hot_partition_ratio),
        retention_item(report, topics, s.audit.replay_requirement, log_start_at, now),
        compaction_item(report, g),
        durability_item(report, topics, s.audit),
    ]
    items += [Item(key, title, Outcome.NOT_OBSERVABLE,
                   ("lagwatch cannot see this from the cluster",), advice)
              for key, (title, advice) in UNOBSERVABLE.items()]
    return GroupAudit(g.group_id, tuple(items))


def _idempotency(ev: GroupEvidence) -> Item:
    title = "Idempotency implemented and tested"
    advice = ("Make handlers safe to run twice on one message (a processed-id table, "
              "upserts) and test it.")
    if not ev.rewinds:
        return Item("idempotency", title, Outcome.NOT_OBSERVABLE,
                    ("lagwatch cannot see whether handlers are idempotent; no replay seen",),
                    advice)
    return Item("idempotency", title, Outcome.WARN, tuple(
        f"replayed {plural(r.messages, 'message')} of {r.tp[0]}[{r.tp[1]}] at "
        f"{fmt_time(r.at)}: check the handlers are idempotent" for r in ev.rewinds), advice)


def _commit_strategy(ev: GroupEvidence, records_read: bool, span_s: float) -> Item:
    title = "Auto-commit disabled; offsets committed after processing"
    advice = ("Set enable.auto.commit=false and commit what was processed, after "
              "processing it, so a crash replays only unfinished work.")
    if not records_read:
        return Item("commit_strategy", title, Outcome.NOT_OBSERVABLE, (
            "lagwatch does not read __consumer_offsets here (read_offsets_topic: false, or "
            "no Read ACL on it), so commits cannot be told apart",), advice)
    rhythm = ev.rhythm()
    if rhythm is None:
        return Item("commit_strategy", title, Outcome.NOT_OBSERVABLE, (
            f"fewer than 3 commit requests seen in {fmt_duration(span_s)}",),
            "Audit over a longer time (--samples, --interval) or ask the daemon.")
    every = plural(rhythm.partitions, "partition")
    beat = (f"a commit request every {rhythm.interval_s:.1f}s (±{rhythm.spread_s:.1f}s), "
            f"{rhythm.whole} of {rhythm.batches} with all {every}")
    unchanged = (f"{rhythm.unchanged} of {rhythm.commits} partition commits left the offset "
                 "where it was")
    if rhythm.looks_automatic:
        return Item("commit_strategy", title, Outcome.WARN,
                    (f"looks like auto-commit: {beat}", unchanged), advice)
    if rhythm.looks_manual:
        return Item("commit_strategy", title, Outcome.PASS,
                    (f"does not look like auto-commit: {beat}", unchanged), advice)
    return Item("commit_strategy", title, Outcome.NOT_OBSERVABLE,
                (f"cannot tell: {beat}", unchanged), advice)


def _dlq(report: ClusterReport, topics: list[str]) -> Item:
    title = "Dead letter queue configured"
    dlqs = {d.topic: d for d in report.verdict.dlqs}
    sources = [t for t in topics if t not in dlqs]
    if not sources:
        return Item("dlq", title, Outcome.NOT_OBSERVABLE,
                    ("the group reads no topic besides dead-letter queues",),
                    "Nothing to do for a DLQ reader.")
    evidence, outcome = [], Outcome.PASS
    for topic in sources:
        found = [d for d in report.verdict.dlqs if d.source == topic]
        if not found:
            evidence.append(f"{topic}: no dead-letter topic (none named for it by the dlq "
                            "patterns or dlq.topics)")
            outcome = Outcome.FAIL
        for d in found:
            readers = ", ".join(sorted(d.readers)) or "nobody"
            evidence.append(f"{topic} -> {d.topic}: read by {readers}; "
                            f"{plural(d.arrived, 'message')} arrived in the window")
            if not d.readers and outcome is Outcome.PASS:
                outcome = Outcome.WARN
    return Item("dlq", title, outcome, tuple(evidence),
                "Route messages that keep failing to a dead-letter topic (e.g. "
                f"{sources[0]}.DLT), and give it a reader or an alert.")


def _poison_pill(ev: GroupEvidence, span_s: float) -> Item:
    title = "Poison pill handling implemented"
    advice = ("Catch a message that keeps failing, send it to the DLQ and move on, "
              "rather than retrying it for ever.")
    stalls = [f"stalled from {fmt_time(t)}" for t in ev.stalls]
    if ev.stalled:
        return Item("poison_pill", title, Outcome.FAIL,
                    ("stalled now: a partition's offset stands still with messages waiting",
                     *stalls), advice)
    if ev.stalls:
        return Item("poison_pill", title, Outcome.WARN, (
            f"{plural(len(ev.stalls), 'stalled episode')} in {fmt_duration(span_s)}, "
            "recovered since", *stalls), advice)
    seen = [f"no stalled partition in {fmt_duration(span_s)}"]
    if ev.dlq_arrivals_while_moving:
        seen.append(f"{plural(ev.dlq_arrivals_while_moving, 'message')} went to a "
                    "dead-letter topic while the group kept consuming")
    return Item("poison_pill", title, Outcome.PASS, tuple(seen), advice)


def _lag_alerting(cluster: str, group: str, s: Standards, now: float) -> Item:
    title = "Consumer lag alerting configured"
    key = IncidentKey(cluster, group, LAG)
    receivers = {sev: s.alerting.route(Signal(key, sev, "")).receivers
                 for sev in (Severity.CRITICAL, Severity.WARNING)}
    evidence = tuple(f"{sev}: {', '.join(r) if r else 'no receiver'}"
                     for sev, r in receivers.items())
    advice = ("Name a receiver in alerting.default_receivers or a route that matches the "
              "group (lagwatch's own alerting; Prometheus rules are not visible here).")
    muting = [x for x in s.silences if x.mutes(key, now)]
    for_ever = [x for x in muting if x.ends.timestamp() - now > s.audit.max_silence]
    if not receivers[Severity.CRITICAL]:
        return Item("lag_alerting", title, Outcome.FAIL, evidence, advice)
    if muting:
        until = max(x.ends for x in muting).isoformat()
        return Item("lag_alerting", title, Outcome.FAIL if for_ever else Outcome.WARN,
                    (*evidence, f"silenced until {until}"),
                    "End the silence, or shorten it to the maintenance it covers.")
    return Item("lag_alerting", title, Outcome.PASS, evidence, advice)


def _static_membership(g: GroupReport) -> Item:
    title = "Static membership (group.instance.id)"
    advice = ("Set group.instance.id per instance (a pod name, say) so a restart within "
              "the session timeout does not rebalance the group.")
    members = g.member_list or ()
    if not members:
        return Item("static_membership", title, Outcome.NOT_OBSERVABLE,
                    ("the group has no members now",), advice)
    static = sorted(m.group_instance_id for m in members if m.group_instance_id)
    evidence = (f"{len(static)} of {plural(len(members), 'member')} set group.instance.id"
                + (f": {', '.join(static)}" if static else ""),)
    return Item("static_membership", title,
                Outcome.PASS if len(static) == len(members) else Outcome.WARN, evidence, advice)


def _rebalance_settings(g: GroupReport, ev: GroupEvidence, s: Standards) -> Item:
    title = "Rebalance settings and frequency"
    advice = ("Use the cooperative-sticky assignor (or group.protocol=consumer) and a "
              "max.poll.interval.ms well above the slowest batch.")
    per_hour = g.churn.per_hour if g.churn is not None else 0.0
    evidence = [f"{per_hour:.1f} rebalances an hour (the limit is "
                f"{s.churn.max_per_hour:g})"]
    outcome = Outcome.FAIL if per_hour > s.churn.max_per_hour else Outcome.PASS
    if g.group_type == CONSUMER:
        evidence.insert(0, f"consumer protocol (KIP-848): server-side assignor "
                           f"{g.assignor or 'unknown'}, incremental rebalances")
        return Item("rebalance_settings", title, outcome, tuple(evidence), advice)
    if g.assignor is None and ev.metadata is None:
        return Item("rebalance_settings", title, Outcome.NOT_OBSERVABLE, (
            "no assignor known: the group has no members now and no rebalance was "
            "recorded", *evidence), advice)
    assignor = g.assignor or (ev.metadata.protocol if ev.metadata else None) or "unknown"
    eager = assignor != "unknown" and "cooperative" not in assignor
    evidence.insert(0, f"assignor {assignor}"
                    + (" (eager: every rebalance stops the whole group)" if eager else ""))
    short = _timeouts(ev, s, evidence)
    concerns = eager + short
    if outcome is Outcome.PASS and concerns:
        outcome = Outcome.FAIL if concerns == 2 else Outcome.WARN
    return Item("rebalance_settings", title, outcome, tuple(evidence), advice)


def _timeouts(ev: GroupEvidence, s: Standards, evidence: list[str]) -> bool:
    """Add the members' timeouts to the evidence; say whether one is too short."""
    if ev.metadata is None or not ev.metadata.members:
        evidence.append("members' timeouts not known: no rebalance recorded in "
                        "__consumer_offsets")
        return False
    short = False
    for m in ev.metadata.members:
        poll = m.rebalance_timeout_ms
        evidence.append(f"{m.client_id or m.member_id}: session.timeout.ms "
                        f"{m.session_timeout_ms}, max.poll.interval.ms "
                        f"{poll if poll is not None else 'unknown'}")
        short |= poll is not None and poll / 1000 < s.audit.min_rebalance_timeout
    if short:
        evidence.append(f"max.poll.interval.ms below "
                        f"{fmt_duration(s.audit.min_rebalance_timeout)}: a slow batch "
                        "rebalances the group")
    return short


def _cluster_items(report: ClusterReport) -> tuple[Item, ...]:
    findings = report.verdict.cluster_findings
    meta = report.snapshot.meta

    def from_findings(key: str, title: str, kinds: tuple[str, ...], healthy: str,
                      advice: str) -> Item:
        found = [f for f in findings if f.kind in kinds]
        worst = worst_severity(f.severity for f in found)
        outcome = {Severity.NONE: Outcome.PASS, Severity.WARNING: Outcome.WARN,
                   Severity.CRITICAL: Outcome.FAIL}[worst]
        return Item(key, title, outcome, tuple(f.reason for f in found) or (healthy,), advice)

    dirs = meta.log_dirs if meta else ()
    used = [1 - d.usable_bytes / d.total_bytes for d in dirs
            if d.usable_bytes is not None and d.total_bytes]
    disk = (f"{plural(len(dirs), 'log dir')}, the fullest {max(used):.0%} used" if used
            else "no log dir sizes known")
    partitions = meta.partitions if meta else 0
    return (
        from_findings("broker_disk", "Broker disk usage", ("log_dir_filling", "log_dir_offline"),
                      disk, "Add disk or shorten retention before a log dir fills."),
        from_findings("under_replicated", "Under-replicated partitions",
                      ("under_replicated", "under_min_isr", "offline_partitions",
                       "brokers_missing"),
                      f"none of {plural(partitions, 'partition')} under-replicated",
                      "Bring the missing replicas back (a broker down, a slow disk)."),
        from_findings("controller_moves", "Controller election rate", ("controller_changed",),
                      f"{plural(report.verdict.controller_changes, 'controller move')} seen",
                      "Find why the controller moves (network, long GC pauses)."),
    )

