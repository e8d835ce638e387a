"""The Prometheus exposition rendered from State, read back through the registry."""

from __future__ import annotations

import math

import pytest

from lagwatch.export import build_registry
from lagwatch.model import GroupSnapshot, LogOffsets, Member, PollError, Snapshot
from lagwatch.state import State

NOW = 1_790_000_000.0
GROUP = GroupSnapshot("billing", "Stable",
                      members=(Member("m", "c", "h", assignment=(("orders", 0), ("orders", 1))),),
                      committed={("orders", 0): 90})
GOOD = Snapshot("prod", NOW, 0.2, up=True, groups={"billing": GROUP},
                offsets={("orders", 0): LogOffsets(5, 100), ("orders", 1): LogOffsets(0, 7)})


def test_metrics_carry_the_contract_names_labels_and_values() -> None:
    # Given
    state = State(["prod"], 30.0)
    registry, metrics = build_registry(state)
    # When
    metrics.observe(state.publish(GOOD).snapshot)
    # Then
    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"cluster": "prod", **labels})

    where = {"group": "billing", "topic": "orders"}
    assert value("lagwatch_partition_lag_messages", partition="0", **where) == 10
    assert value("lagwatch_partition_committed_offset", partition="0", **where) == 90
    assert value("lagwatch_partition_lag_messages", partition="1", **where) is None
    assert value("lagwatch_partition_log_end_offset", topic="orders", partition="1") == 7
    assert value("lagwatch_partition_log_start_offset", topic="orders", partition="0") == 5
    assert value("lagwatch_group_lag_messages", **where) == 10
    assert value("lagwatch_group_members", group="billing") == 1
    assert value("lagwatch_group_status", group="billing", status="unknown") == 1
    assert value("lagwatch_group_status", group="billing", status="ok") == 0
    assert value("lagwatch_group_state", group="billing", state="Stable") == 1
    assert value("lagwatch_cluster_up") == 1
    assert value("lagwatch_last_poll_timestamp_seconds") == NOW
    assert value("lagwatch_poll_duration_seconds_count") == 1
    assert value("lagwatch_poll_errors_total", stage="connect") == 0


def test_a_failed_poll_sets_cluster_up_to_0_and_counts_the_error_by_stage() -> None:
    state = State(["prod"], 30.0)
    registry, metrics = build_registry(state)
    state.publish(GOOD)
    failed = Snapshot("prod", NOW + 30, 10.0, up=False,
                      errors=(PollError("connect", "prod", "KafkaTimeoutError"),))
    metrics.observe(failed)
    state.publish(failed)

    assert registry.get_sample_value("lagwatch_cluster_up", {"cluster": "prod"}) == 0
    assert registry.get_sample_value("lagwatch_poll_errors_total",
                                     {"cluster": "prod", "stage": "connect"}) == 1
    # the last known numbers stay, and their age shows in the last poll timestamp
    assert registry.get_sample_value("lagwatch_last_poll_timestamp_seconds",
                                     {"cluster": "prod"}) == NOW
    assert registry.get_sample_value(
        "lagwatch_partition_lag_messages",
        {"cluster": "prod", "group": "billing", "topic": "orders", "partition": "0"}) == 10


def test_ready_only_after_a_recent_successful_poll_of_every_cluster() -> None:
    state = State(["prod", "dr"], 30.0)
    assert not state.ready(NOW)
    state.publish(GOOD)
    assert not state.ready(NOW)
    state.publish(Snapshot("dr", NOW, 0.1, up=True))
    assert state.ready(NOW + 89)
    assert not state.ready(NOW + 91)


def test_detection_metrics_are_exported_and_always_finite() -> None:
    # Given a stopped group whose unread messages retention then cuts
    from lagwatch.config import DetectionConfig
    from lagwatch.pipeline import Pipeline
    from lagwatch.simulate import Scenario

    scenario = Scenario(members=lambda t: 1 if t < 600 else 0,
                        events={1800.0: lambda s: s.cut_retention(1000)})
    pipeline = Pipeline("sim", DetectionConfig())
    state = State(["sim"], 15.0)
    registry, _ = build_registry(state)
    for snapshot in scenario.run(1815):
        state.publish(snapshot, pipeline.ingest(snapshot), pipeline.history.span_s(),
                      pipeline.memory.lost_total)

    # Then
    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"cluster": "sim", **labels})

    where = {"group": "billing", "topic": "orders"}
    assert value("lagwatch_lost_messages_total", **where) == 119_000
    assert value("lagwatch_group_status", group="billing", status="data_loss") == 1
    assert value("lagwatch_partition_produce_rate_per_second", topic="orders",
                 partition="0") == 100.0
    # the oldest unread message was written when the group stopped, at 600 s
    assert value("lagwatch_partition_lag_seconds", partition="0", **where) == pytest.approx(
        1215.0, abs=0.1)
    samples = [s for family in registry.collect() for s in family.samples]
    assert all(math.isfinite(s.value) for s in samples)
