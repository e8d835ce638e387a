"""The production checklist judged from hand-built polls, and how it is rendered."""

from __future__ import annotations

from datetime import UTC, datetime

from lagwatch.alerting.config import AlertingConfig, SilenceConfig
from lagwatch.audit.checklist import Standards, audit
from lagwatch.audit.config import AuditConfig
from lagwatch.audit.items import ClusterAudit, GroupAudit, Item, Outcome
from lagwatch.audit.render import to_markdown, to_text
from lagwatch.detect.config import DetectionConfig
from lagwatch.detect.findings import HealthSettings
from lagwatch.detect.rebalance import ChurnSettings
from lagwatch.kafka.audit_reads import offsets_partition
from lagwatch.model import ClusterMeta, GroupSnapshot, LogOffsets, Member, Retention, Snapshot
from lagwatch.pipeline import ClusterJudge
from lagwatch.records import OffsetCommit
from lagwatch.serve.documents import audit_document
from lagwatch.simulate import replay

T0 = 1_790_000_000.0
ORDERS = [("orders", p) for p in range(3)]


def polls(commits: list[tuple[float, list[tuple[int, int]]]], *, polls: int = 8,
          retention: Retention | None = None, replication: int = 3,
          members: tuple[Member, ...] | None = None) -> list[Snapshot]:
    """A group reading three partitions of orders, polled every 5 s; ``commits`` are the
    commit requests (time since T0, [(partition, offset)])."""
    shown = members if members is not None else (
        Member("m-1", "billing-1", "10.0.0.1", "pod-1", assignment=tuple(ORDERS[:2])),
        Member("m-2", "billing-2", "10.0.0.2", "pod-2", assignment=tuple(ORDERS[2:])))
    out, committed = [], dict.fromkeys(ORDERS, 0)
    for k in range(polls):
        t = 5.0 * k
        records = tuple((T0 + at, OffsetCommit("billing", "orders", p, offset))
                        for at, batch in commits if t - 5 < at <= t for p, offset in batch)
        for _, r in records:
            committed[("orders", r.partition)] = r.offset or 0
        group = GroupSnapshot("billing", "Stable", members=shown, committed=dict(committed),
                              assignor="cooperative-sticky")
        out.append(Snapshot(
            "prod", T0 + t, 0.1, up=True, groups={"billing": group},
            offsets={tp: LogOffsets(0, 100 * k + 100) for tp in ORDERS},
            retention={"orders": retention or Retention(8 * 86400.0, min_insync_replicas=2,
                                                        unclean_leader_election=False)},
            meta=ClusterMeta("id", 1, (1, 2, 3), 3, replication={"orders": replication}),
            commit_records=records, records_exact=True))
    return out


def audited(snapshots: list[Snapshot], standards: Standards | None = None) -> dict[str, Item]:
    judge = ClusterJudge("prod", DetectionConfig())
    *_, report = replay(snapshots, judge)
    result = audit(report, judge.evidence, standards or STANDARDS, {}, snapshots[-1].taken_at)
    return {i.id: i for i in result.groups[0].items}


STANDARDS = Standards(AuditConfig(), HealthSettings(), ChurnSettings(),
                      AlertingConfig.model_validate(
                          {"receivers": [{"name": "sre", "webhook": {"url": "https://x/h"}}],
                           "default_receivers": ["sre"]}))


def test_a_steady_beat_of_every_partition_looks_like_auto_commit() -> None:
    # Given a commit of all three partitions every 5 s, two of them unchanged at the end
    beats = [(5.0 * k - 1, [(p, 10 * k if k < 7 or p == 0 else 60) for p in range(3)])
             for k in range(1, 8)]
    item = audited(polls(beats))["commit_strategy"]
    assert item.outcome is Outcome.WARN
    assert item.evidence == (
        "looks like auto-commit: a commit request every 5.0s (±0.0s), 7 of 7 with all "
        "3 partitions", "2 of 21 partition commits left the offset where it was")


def test_commits_of_the_partitions_processed_at_odd_times_do_not() -> None:
    # Given commits of one or two partitions as batches are done, at uneven times
    batches = [(1.0, [(0, 10)]), (2.5, [(1, 12), (2, 8)]), (7.0, [(0, 20)]),
               (13.0, [(2, 30)]), (14.0, [(1, 25), (0, 31)])]
    item = audited(polls(batches))["commit_strategy"]
    assert item.outcome is Outcome.PASS
    assert item.evidence == (
        "does not look like auto-commit: a commit request every 3.0s (±1.8s), 0 of 5 with "
        "all 3 partitions", "0 of 7 partition commits left the offset where it was")


def test_a_topic_on_one_replica_kept_a_day_without_a_dlq_fails_three_items() -> None:
    items = audited(polls([], retention=Retention(86400.0, min_insync_replicas=1,
                                                 unclean_leader_election=False),
                          replication=1))
    assert (items["durability"].outcome, items["durability"].evidence) == (Outcome.FAIL, (
        "orders: replication factor 1, min.insync.replicas 1, "
        "unclean.leader.election.enable false",))
    assert (items["retention_replay"].outcome, items["retention_replay"].evidence) == (
        Outcome.FAIL, ("orders: keeps 1d (retention.ms 86400000), less than the replay "
                       "requirement of 7d",))
    assert (items["dlq"].outcome, items["dlq"].evidence) == (Outcome.FAIL, (
        "orders: no dead-letter topic (none named for it by the dlq patterns or dlq.topics)",))
    assert items["commit_strategy"].outcome is Outcome.NOT_OBSERVABLE


def test_members_partitions_and_static_ids() -> None:
    items = audited(polls([]))
    assert (items["static_membership"].outcome, items["static_membership"].evidence) == (
        Outcome.PASS, ("2 of 2 members set group.instance.id: pod-1, pod-2",))
    assert (items["scaling"].outcome, items["scaling"].evidence) == (
        Outcome.PASS, ("orders: 2 members for 3 partitions: room for 1 more",))
    crowd = tuple(Member(f"m-{n}", f"c-{n}", "h", assignment=(tp,) if tp else ())
                  for n, tp in enumerate([*ORDERS, None]))
    items = audited(polls([], members=crowd))
    assert (items["scaling"].outcome, items["scaling"].evidence) == (Outcome.WARN, (
        "orders: 3 members own its 3 partitions: no room to scale out",
        "1 member of 4 own no partition and sit idle"))
    assert (items["static_membership"].outcome, items["static_membership"].evidence) == (
        Outcome.WARN, ("0 of 4 members set group.instance.id",))


def test_lag_alerting_needs_a_receiver_and_no_silence_for_ever() -> None:
    item = audited(polls([]))["lag_alerting"]
    assert (item.outcome, item.evidence) == (Outcome.PASS, ("critical: sre", "warning: sre"))
    nobody = Standards(AuditConfig(), HealthSettings(), ChurnSettings(), AlertingConfig())
    item = audited(polls([]), nobody)["lag_alerting"]
    assert (item.outcome, item.evidence) == (Outcome.FAIL, ("critical: no receiver",
                                                            "warning: no receiver"))
    muted = SilenceConfig(ends=datetime(2099, 1, 1, tzinfo=UTC))
    silenced = Standards(AuditConfig(), HealthSettings(), ChurnSettings(),
                         STANDARDS.alerting, (muted,))
    item = audited(polls([]), silenced)["lag_alerting"]
    assert (item.outcome, item.evidence) == (Outcome.FAIL, (
        "critical: sre", "warning: sre", "silenced until 2099-01-01T00:00:00+00:00"))


def test_the_group_partition_is_java_s_string_hash_made_positive() -> None:
    # the values kafka-clients computes: Utils.abs("...".hashCode()) % 50
    assert [offsets_partition(g, 50) for g in (
        "billing", "payments-service", "é-grüppe", "polygenelubricants")] == [9, 43, 46, 0]


AUDIT = ClusterAudit("prod", (Item("broker_disk", "Broker disk usage", Outcome.PASS,
                                   ("1 log dir, the fullest 40% used",), "Add disk."),),
                     (GroupAudit("billing", (
                         Item("dlq", "Dead letter queue configured", Outcome.FAIL,
                              ("orders: no dead-letter topic",), "Route failures aside."),
                         Item("crash_tests", "Crash tests", Outcome.NOT_OBSERVABLE,
                              ("lagwatch cannot see this from the cluster",), "Test."))),),
                     observed_s=95.0)


def test_text_markdown_and_json_say_the_same() -> None:
    assert to_text([AUDIT]) == (
        "cluster prod: 1 pass (observed over 1m 35s)\n"
        "  [pass] Broker disk usage\n"
        "      1 log dir, the fullest 40% used\n"
        "group billing: 1 not observable, 1 fail\n"
        "  [fail] Dead letter queue configured\n"
        "      orders: no dead-letter topic\n"
        "      -> Route failures aside.\n"
        "  [not observable] Crash tests\n"
        "      lagwatch cannot see this from the cluster")
    assert to_markdown([AUDIT], T0) == (
        "# Production checklist, 2026-09-21T14:13:20Z\n\n"
        "## Cluster `prod`: 1 pass\n\nObserved over 1m 35s.\n\n"
        "- [x] **Broker disk usage**: pass\n"
        "  - 1 log dir, the fullest 40% used\n\n"
        "### Group `billing`: 1 not observable, 1 fail\n\n"
        "- [ ] **Dead letter queue configured**: fail\n"
        "  - orders: no dead-letter topic\n"
        "  - *What to do*: Route failures aside.\n"
        "- [ ] **Crash tests**: not observable\n"
        "  - lagwatch cannot see this from the cluster\n")
    doc = audit_document([AUDIT], T0)["clusters"]["prod"]
    assert doc["summary"] == {"pass": 1, "not observable": 0, "warn": 0, "fail": 0}
    assert doc["groups"]["billing"]["summary"] == {"pass": 0, "not observable": 1,
                                                   "warn": 0, "fail": 1}
    assert doc["groups"]["billing"]["items"][0] == {
        "id": "dlq", "title": "Dead letter queue configured", "outcome": "fail",
        "evidence": ["orders: no dead-letter topic"], "advice": "Route failures aside."}


def test_a_replay_asks_whether_the_handlers_are_idempotent() -> None:
    # Given a group that commits its way to offset 50, then resets partition 0 to 5
    beats = [(5.0 * k - 1, [(p, 10 * k) for p in range(3)]) for k in range(1, 6)]
    beats.append((29.0, [(0, 5)]))
    item = audited(polls(beats, polls=7))["idempotency"]
    assert (item.outcome, item.evidence) == (Outcome.WARN, (
        "replayed 45 messages of orders[0] at 2026-09-21T14:13:50Z: check the handlers are "
        "idempotent",))
