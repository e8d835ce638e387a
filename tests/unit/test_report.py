"""Lag and single-snapshot statuses, computed from hand-built snapshots."""

from __future__ import annotations

import pytest

from lagwatch.model import GroupSnapshot, LogOffsets, Member, PollError, Snapshot
from lagwatch.report.view import build_report
from lagwatch.serve.documents import group_document, to_document
from lagwatch.simulate import report_alone
from lagwatch.status import Severity, Status

NOW = 1_790_000_000.0


def snapshot(*groups: GroupSnapshot, offsets: dict[tuple[str, int], LogOffsets] | None = None,
             up: bool = True) -> Snapshot:
    return Snapshot("prod", NOW, 0.1, up=up, groups={g.group_id: g for g in groups},
                    offsets=offsets or {})


def member(*assignment: tuple[str, int]) -> Member:
    return Member("m-1", "client-1", "10.0.0.1", assignment=tuple(assignment))


ORDERS = {("orders", 0): LogOffsets(0, 100), ("orders", 1): LogOffsets(50, 80)}


def test_lag_is_log_end_minus_committed_summed_per_topic_and_group() -> None:
    # Given
    group = GroupSnapshot("billing", "Stable", members=(member(("orders", 0), ("orders", 1)),),
                          committed={("orders", 0): 90, ("orders", 1): 80})
    # When
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    # Then
    assert [p.lag_messages for p in report.topics[0].partitions] == [10, 0]
    assert report.lag_messages == 10
    assert report.topics[0].lag_messages == 10


def test_a_commit_ahead_of_the_log_end_is_clamped_to_zero_lag() -> None:
    # committed offsets are read before log ends, but a log end can lag a replica's view
    group = GroupSnapshot("g", "Stable", members=(member(("orders", 0)),),
                          committed={("orders", 0): 105})
    partition = report_alone(snapshot(group, offsets=ORDERS)).groups[0].topics[0].partitions[0]
    assert partition.lag_messages == 0
    assert partition.status is Status.OK


def test_when_the_committed_offset_is_below_the_log_start_then_data_loss() -> None:
    group = GroupSnapshot("g", "Stable", members=(member(("orders", 1)),),
                          committed={("orders", 1): 20})
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    assert report.status is Status.DATA_LOSS
    assert report.severity is Severity.CRITICAL
    assert report.reasons == (
        "30 unread messages were deleted by retention: orders[1] committed 20 "
        "but the log starts at 50",)


def test_when_no_member_is_left_and_lag_remains_then_stopped() -> None:
    group = GroupSnapshot("g", "Empty", committed={("orders", 0): 40, ("orders", 1): 80})
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    assert report.status is Status.STOPPED
    assert [p.status for p in report.topics[0].partitions] == [Status.STOPPED, Status.OK]
    assert report.reasons == ("no active members while 60 messages are unread on 1 partition",)


def test_when_an_empty_group_has_read_everything_then_ok() -> None:
    group = GroupSnapshot("g", "Empty", committed={("orders", 0): 100})
    assert report_alone(snapshot(group, offsets=ORDERS)).groups[0].status is Status.OK


def test_when_members_are_behind_one_poll_cannot_judge_so_unknown() -> None:
    group = GroupSnapshot("g", "Stable", members=(member(("orders", 0)),),
                          committed={("orders", 0): 40})
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    assert report.status is Status.UNKNOWN
    assert report.severity is Severity.NONE
    assert report.reasons == ("60 messages behind on 1 partition; one poll is not enough "
                              "to judge whether the group keeps up",)


def test_an_assigned_partition_without_a_commit_gets_no_lag() -> None:
    group = GroupSnapshot("g", "Stable", members=(member(("orders", 0), ("orders", 1)),),
                          committed={("orders", 0): 100})
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    uncommitted = report.topics[0].partitions[1]
    assert (uncommitted.committed, uncommitted.lag_messages, uncommitted.lag_seconds) == (
        None, None, None)
    assert (uncommitted.log_start, uncommitted.log_end) == (50, 80)
    assert report.lag_messages == 0
    assert report.reasons == ("no committed offset yet on 1 partition: orders[1]",)


def test_a_topic_without_log_offsets_is_left_out_rather_than_guessed() -> None:
    group = GroupSnapshot("g", "Empty", committed={("gone", 0): 7, ("orders", 0): 100})
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    assert [t.topic for t in report.topics] == ["orders"]


def test_a_failed_poll_keeps_the_previous_numbers_and_marks_the_cluster_down() -> None:
    group = GroupSnapshot("g", "Empty", committed={("orders", 0): 100})
    first = report_alone(snapshot(group, offsets=ORDERS))
    failed = Snapshot("prod", NOW + 30, 10.0, up=False,
                      errors=(PollError("connect", "prod", "KafkaTimeoutError"),))
    second = build_report(failed, first, None)
    assert (second.up, second.last_success, second.polled_at) == (False, NOW, NOW + 30)
    assert second.groups == first.groups
    assert second.snapshot is first.snapshot
    assert second.errors == failed.errors


def test_document_lists_configured_clusters_not_polled_yet() -> None:
    doc = to_document([], NOW, ["prod"])
    assert doc == {"generated_at": "2026-09-21T14:13:20Z",
                   "clusters": {"prod": {"up": False, "last_poll": None, "errors": [],
                                         "findings": [], "dlqs": {}, "groups": {}}}}


def test_a_group_whose_members_cannot_be_described_is_never_called_stopped() -> None:
    # describing the group failed this poll, so its members are not known
    group = GroupSnapshot("g", "Stable", members=None, committed={("orders", 0): 40})
    report = report_alone(snapshot(group, offsets=ORDERS)).groups[0]
    assert (report.status, report.members) == (Status.UNKNOWN, None)
    assert report.reasons == (
        "the coordinator did not describe this group's members this poll, so a stop cannot "
        "be told from one poll",
        "60 messages behind on 1 partition; one poll is not enough to judge whether the "
        "group keeps up")


def test_a_consumer_protocol_group_is_judged_and_documented_with_its_epoch() -> None:
    group = GroupSnapshot("g", "Empty", members=(), committed={("orders", 0): 40},
                          group_type="consumer", epoch=94, assignment_epoch=94,
                          assignor="uniform")
    doc = group_document(report_alone(snapshot(group, offsets=ORDERS)).groups[0])
    assert (doc["type"], doc["epoch"], doc["assignor"]) == ("consumer", 94, "uniform")
    assert (doc["status"], doc["members"], doc["lag_messages"]) == ("stopped", 0, 60)
    assert doc["member_list"] == []


def test_each_member_is_documented_with_its_assignment_and_target() -> None:
    member = Member("m-1", "billing-1", "10.0.0.7", "pod-1", (("orders", 0),),
                    member_epoch=12, target=(("orders", 0), ("orders", 1)))
    group = GroupSnapshot("g", "Reconciling", members=(member,),
                          committed={("orders", 0): 40}, group_type="consumer", epoch=13)
    doc = group_document(report_alone(snapshot(group, offsets=ORDERS)).groups[0])
    assert doc["member_list"] == [{
        "member_id": "m-1", "client_id": "billing-1", "client_host": "10.0.0.7",
        "instance_id": "pod-1", "member_epoch": 12, "assigned": [["orders", 0]],
        "target": [["orders", 0], ["orders", 1]]}]


@pytest.mark.parametrize(("group_type", "why"), [
    ("share", "share groups (KIP-932) acknowledge records one by one instead of committing "
              "offsets"),
    ("streams", "streams groups (KIP-1071) are described by StreamsGroupDescribe, which "
                "lagwatch does not read yet"),
    ("quantum", "lagwatch does not know this group type"),
])
def test_group_types_lagwatch_does_not_judge_are_named_never_ok(group_type: str,
                                                                why: str) -> None:
    group = GroupSnapshot("q", "Stable", protocol_type=group_type, members=None,
                          group_type=group_type)
    doc = group_document(report_alone(snapshot(group, offsets=ORDERS)).groups[0])
    assert (doc["status"], doc["severity"], doc["type"], doc["topics"]) == (
        "unknown", "none", group_type, {})
    assert doc["reasons"] == [f"lagwatch does not judge {group_type} groups: {why}; this "
                              "group is listed, not watched"]
