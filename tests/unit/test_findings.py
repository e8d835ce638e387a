"""Findings beyond lag: skew and cluster health, each rule by its case."""

from __future__ import annotations

from lagwatch.detect.findings import (
    Finding,
    HealthMemory,
    HealthSettings,
    assignment_skew,
    cluster_health,
    hot_partitions,
    lag_skew,
)
from lagwatch.model import ClusterMeta, GroupSnapshot, LogDir, Member
from lagwatch.report.view import GroupReport
from lagwatch.status import Severity, Status

S = HealthSettings()


def member(n: int, *partitions: int) -> Member:
    return Member(f"m-{n}", f"client-{n}", f"10.0.0.{n}",
                  assignment=tuple(("orders", p) for p in partitions))


def test_when_one_partition_holds_most_of_the_lag_it_is_named() -> None:
    finding = lag_skew("orders", {0: 3, 1: 12_000, 2: 0, 3: 40}, S)
    assert finding == Finding(
        "skewed", Severity.WARNING,
        "orders[1] holds 100% of the lag on orders (12,000 of 12,043 messages); its 3 sibling "
        "partitions hold at most 40 each")


def test_lag_spread_evenly_or_too_small_to_matter_is_not_skew() -> None:
    assert lag_skew("orders", {0: 500, 1: 600, 2: 550}, S) is None
    assert lag_skew("orders", {0: 0, 1: 90}, S) is None  # under lag_skew_min_messages
    assert lag_skew("orders", {0: 5_000}, S) is None  # one partition: nothing to compare


def test_members_without_partitions_are_reported() -> None:
    group = GroupSnapshot("billing", "Stable",
                          members=(member(1, 0), member(2, 1), member(3), member(4)))
    assert assignment_skew(group) == Finding(
        "skewed", Severity.NONE,
        "2 of 4 members have no partitions (client-3 on 10.0.0.3, client-4 on 10.0.0.4); "
        "the group has 4 members for 2 partitions")


def test_a_lopsided_assignment_is_reported_and_a_fair_one_is_not() -> None:
    lopsided = GroupSnapshot("g", "Stable", members=(member(1, 0, 1, 2, 3, 4), member(2, 5)))
    assert assignment_skew(lopsided) == Finding(
        "skewed", Severity.NONE, "partitions per member range from 1 to 5 across 2 members")
    fair = GroupSnapshot("g", "Stable", members=(member(1, 0, 1), member(2, 2)))
    assert assignment_skew(fair) is None


def test_a_hot_partition_is_flagged_with_its_share_and_ratio() -> None:
    rates = {("orders", 0): 90.0, ("orders", 1): 5.0, ("orders", 2): 5.0,
             ("quiet", 0): 0.1, ("quiet", 1): 0.0,
             ("even", 0): 10.0, ("even", 1): 11.0}
    assert hot_partitions(rates, S) == [Finding(
        "skewed", Severity.WARNING,
        "topic orders: partition 0 takes 90% of the traffic (90.0 of 100.0 msg/s), 2.7x the "
        "mean over 3 partitions", subject="orders")]


def test_cluster_health_reports_missing_brokers_offline_and_under_replicated() -> None:
    memory = HealthMemory()
    healthy = ClusterMeta("c", 1, (1, 2, 3), partitions=10)
    assert cluster_health(healthy, memory, S, now=0.0) == []
    degraded = ClusterMeta("c", 1, (1, 3), partitions=10, offline=(("orders", 4),),
                           under_replicated=(("orders", 0), ("orders", 1)))
    assert cluster_health(degraded, memory, S, now=30.0) == [
        Finding("brokers_missing", Severity.CRITICAL,
                "2 of 3 brokers are registered (missing: 2)"),
        Finding("offline_partitions", Severity.CRITICAL, "1 partition has no leader: orders[4]"),
        Finding("under_replicated", Severity.WARNING,
                "2 partitions are under-replicated: orders[0], orders[1]")]
    assert cluster_health(healthy, memory, S, now=60.0) == []


def test_a_broker_gone_longer_than_the_memory_is_forgotten() -> None:
    memory = HealthMemory()
    cluster_health(ClusterMeta("c", 1, (1, 2), partitions=1), memory, S, now=0.0)
    later = ClusterMeta("c", 1, (1,), partitions=1)
    assert [f.kind for f in cluster_health(later, memory, S, now=60.0)] == ["brokers_missing"]
    assert cluster_health(later, memory, S, now=S.memory_s + 1) == []


def test_expected_brokers_from_config_win_over_what_was_seen() -> None:
    settings = HealthSettings(expected_brokers=3)
    found = cluster_health(ClusterMeta("c", 1, (1, 2), partitions=1), HealthMemory(),
                           settings, now=0.0)
    assert found == [Finding("brokers_missing", Severity.CRITICAL,
                             "2 of 3 brokers are registered")]


def test_a_controller_move_is_counted_and_reported_for_a_while() -> None:
    memory = HealthMemory()
    cluster_health(ClusterMeta("c", 1, (1, 2), partitions=1), memory, S, now=0.0)
    moved = ClusterMeta("c", 2, (1, 2), partitions=1)
    assert cluster_health(moved, memory, S, now=100.0) == [Finding(
        "controller_changed", Severity.WARNING,
        "the controller moved from node 1 to node 2 0s ago (1 move seen)")]
    assert memory.controller_changes == 1
    assert cluster_health(moved, memory, S, now=100.0 + S.memory_s + 1) == []


def test_a_group_is_as_severe_as_its_worst_finding() -> None:
    group = GroupReport("g", "Stable", (), Status.OK, (), (),
                        (Finding("skewed", Severity.WARNING, "x"),))
    assert group.severity is Severity.WARNING
    assert GroupReport("g", "Stable", (), Status.STOPPED, (), (), group.findings
                       ).severity is Severity.CRITICAL


def test_partitions_below_min_isr_are_critical() -> None:
    meta = ClusterMeta("c", 1, (1, 2, 3), partitions=3, under_replicated=(("orders", 0),),
                       under_min_isr=(("orders", 0),))
    found = cluster_health(meta, HealthMemory(), S, now=0.0)
    assert found[0] == Finding(
        "under_min_isr", Severity.CRITICAL,
        "1 partition has fewer in-sync replicas than min.insync.replicas (acks=all writes "
        "fail): orders[0]")


def test_a_log_dir_that_fills_up_within_the_horizon_and_an_offline_one() -> None:
    memory = HealthMemory()
    # 10 MB/s of growth with 100 GB free: full in 10,000 s (2h 46m), inside the 6 h horizon
    for k, size in enumerate((0, 600_000_000)):
        meta = ClusterMeta("c", 1, (1,), partitions=1, log_dirs=(
            LogDir(1, "/data", size, usable_bytes=100_000_000_000, total_bytes=10**12),
            LogDir(1, "/broken", 0, error="error code 57")))
        found = cluster_health(meta, memory, S, now=60.0 * k)
    assert found == [
        Finding("log_dir_offline", Severity.CRITICAL,
                "broker 1 log dir /broken is offline (error code 57)",
                subject="broker 1:/broken"),
        Finding("log_dir_filling", Severity.WARNING,
                "broker 1 log dir /data grows 10.00 MB/s; its 100.0 GB free fill up in 2h 46m",
                subject="broker 1:/data")]
    assert memory.log_dir_growth()[(1, "/data")] == 10_000_000.0
