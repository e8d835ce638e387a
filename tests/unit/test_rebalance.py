"""Rebalance churn: exact from group records (classic generations and consumer-protocol
epochs), a lower bound from polls."""

from __future__ import annotations

import pytest

from lagwatch.detect.config import DetectionConfig
from lagwatch.detect.findings import Finding
from lagwatch.detect.rebalance import (
    Churn,
    ChurnSettings,
    Rebalance,
    RebalanceTracker,
    churn_finding,
    flaps,
    likely_cause,
)
from lagwatch.model import GroupSnapshot, Member
from lagwatch.pipeline import ClusterJudge
from lagwatch.records import GroupEpoch, GroupMember, GroupMetadata, MemberMetadata
from lagwatch.simulate import Scenario
from lagwatch.status import Severity

S = ChurnSettings(window_s=3600.0)


def record(generation: int, *members: str) -> GroupMetadata:
    return GroupMetadata("billing", generation, "consumer", "range", None, None,
                         tuple(GroupMember(m, "client", f"host-{m[0]}") for m in members))


def poll(state: str, *members: str, epoch: int | None = None) -> GroupSnapshot:
    return GroupSnapshot("billing", state, epoch=epoch,
                         members=tuple(Member(m, "client", f"host-{m}") for m in members))


def test_each_new_generation_is_a_rebalance_and_a_jump_counts_them_all() -> None:
    tracker = RebalanceTracker(S)
    tracker.observe_record(record(4, "a"), at=0.0)  # the first record seen is the baseline
    tracker.observe_record(record(5, "a", "b"), at=60.0)
    tracker.observe_record(record(8, "b"), at=120.0)  # three generations at once
    churn = tracker.churn("billing", now=180.0)
    assert churn is not None
    assert (churn.total, churn.in_window, churn.exact) == (4, 4, True)
    assert (churn.joined, churn.left) == (1, 1)


def joined(member: str) -> MemberMetadata:
    return MemberMetadata("billing", member, "client", f"host-{member}")


def left(member: str) -> MemberMetadata:
    return MemberMetadata("billing", member, None)


def test_each_new_group_epoch_is_a_rebalance_with_the_members_written_before_it() -> None:
    # Given a consumer-protocol group whose members lagwatch first learns from a poll
    tracker = RebalanceTracker(S)
    tracker.observe_poll(poll("Stable", "a", epoch=7), at=0.0)
    # When the coordinator writes, as it does, each member change just before its epoch
    for at, change in [(1.0, GroupEpoch("billing", 7)),  # what the poll showed
                       (60.0, joined("b")), (60.0, GroupEpoch("billing", 8)),
                       (90.0, left("a")), (90.0, GroupEpoch("billing", 9)),
                       (120.0, joined("c")), (120.0, left("b")),
                       (120.0, GroupEpoch("billing", 10))]:
        tracker.observe_record(change, at)
    # Then every epoch bump is one rebalance, and the members came and went by client
    churn = tracker.churn("billing", now=180.0)
    assert churn is not None
    assert (churn.total, churn.in_window, churn.exact) == (3, 3, True)
    assert (churn.joined, churn.left) == (2, 2)
    # each member left once and the group was never larger than two: replaced, as a
    # deploy that starts new pods on new hosts does, not flapping
    assert churn.cause == "members replaced (some left, others joined from other hosts)"


def test_a_deleted_consumer_protocol_group_starts_again_from_a_new_baseline() -> None:
    tracker = RebalanceTracker(S)
    for at, change in [(0.0, GroupEpoch("billing", 3)), (10.0, GroupEpoch("billing", 4)),
                       (20.0, GroupEpoch("billing", None)), (30.0, GroupEpoch("billing", 1))]:
        tracker.observe_record(change, at)
    churn = tracker.churn("billing", now=60.0)
    assert churn is not None
    assert churn.total == 0


def test_polls_count_member_changes_when_records_are_not_read() -> None:
    tracker = RebalanceTracker(S)
    for at, state, members in [(0, "Stable", ("a",)), (30, "PreparingRebalance", ("a",)),
                               (60, "Stable", ("a", "b")), (90, "Stable", ("a", "b")),
                               (120, "Stable", ("a",))]:
        tracker.observe_poll(poll(state, *members), at=float(at))
    churn = tracker.churn("billing", now=120.0)
    assert churn is not None
    assert (churn.total, churn.exact) == (2, False)
    # 1 of 5 polls, taken over at least 10 polls and 10 minutes (these span 2)
    assert churn.rebalancing_share == pytest.approx(0.1 * 120 / 600)


def test_old_rebalances_leave_the_window_but_stay_in_the_total() -> None:
    tracker = RebalanceTracker(S)
    tracker.observe_record(record(1, "a"), at=0.0)
    tracker.observe_record(record(2, "a", "b"), at=10.0)
    churn = tracker.churn("billing", now=10.0 + S.window_s + 1)
    assert churn is not None
    assert (churn.total, churn.in_window) == (1, 0)


def test_churn_above_the_limit_is_a_finding_that_says_how_it_was_counted() -> None:
    tracker = RebalanceTracker(S)
    tracker.observe_poll(poll("Stable", "a"), at=0.0)
    for k in range(1, 9):
        tracker.observe_poll(poll("Stable", "a", *(["b"] if k % 2 else [])), at=k * 60.0)
    churn = tracker.churn("billing", now=480.0)
    assert churn is not None
    assert churn_finding(churn, S) == Finding(
        "rebalancing", Severity.WARNING,
        "at least 8 rebalances in 8 episodes in the window (48.0 episodes/h), 0% of polls "
        "caught it rebalancing; 4 joined, 4 left; likely cause: flapping membership (members "
        "joined and left repeatedly) (counted from polls: lower bounds)")


def test_a_group_first_seen_mid_rebalance_raises_nothing_until_it_keeps_rebalancing() -> None:
    # Given lagwatch's first polls catch the group mid-rebalance, which then completes
    tracker = RebalanceTracker(S)
    tracker.observe_record(record(1, "a"), at=0.0)
    tracker.observe_poll(poll("PreparingRebalance", "a"), at=1.0)
    tracker.observe_record(record(2, "a", "b"), at=2.0)
    for at in (3.0, 4.0):
        tracker.observe_poll(poll("PreparingRebalance", "a", "b"), at=at)
    tracker.observe_poll(poll("Stable", "a", "b"), at=5.0)
    churn = tracker.churn("billing", now=5.0)
    assert churn is not None
    # Then 3 polls of 4 s are taken over 10 minutes: nothing to say
    assert (churn.in_window, churn.per_hour) == (1, 6.0)
    assert churn.rebalancing_share == pytest.approx(0.3 * 4 / 600)
    assert churn_finding(churn, S) is None
    # When it is caught rebalancing in 3 of every 10 polls for 10 minutes
    for k in range(60):
        tracker.observe_poll(poll("PreparingRebalance" if k % 10 < 3 else "Stable", "a", "b"),
                             at=10.0 + 10.0 * k)
    churn = tracker.churn("billing", now=601.0)
    assert churn is not None
    # Then it spends more than 20% of its time rebalancing
    assert churn.rebalancing_share == pytest.approx(21 / 64)
    finding = churn_finding(churn, S)
    assert finding is not None
    assert finding.reason == ("1 rebalance in 1 episode in the window (6.0 episodes/h), 33% "
                              "of polls caught it rebalancing; 1 joined, 0 left; likely "
                              "cause: scale up (members joined)")


def test_calm_groups_raise_nothing() -> None:
    tracker = RebalanceTracker(S)
    tracker.observe_record(record(1, "a"), at=0.0)
    tracker.observe_record(record(2, "a", "b"), at=600.0)
    churn = tracker.churn("billing", now=1200.0)
    assert churn is not None
    assert churn_finding(churn, S) is None


def test_likely_causes_tell_churn_from_deploys_and_scaling() -> None:
    def event(joined: tuple[str, ...] = (), left: tuple[str, ...] = ()) -> Rebalance:
        """Members named id:client@host."""
        def changes(members: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
            return tuple((m.partition(":")[0], m.partition(":")[2]) for m in members)
        return Rebalance(0.0, 1, changes(joined), changes(left))

    assert likely_cause([event(joined=("1:c@h1",))], 1) == ("scale up (members joined)", False)
    assert likely_cause([event(left=("1:c@h1",))], 0) == (
        "scale down (members left: shut down or timed out)", False)
    assert likely_cause([event(left=("1:c@h1",)), event(joined=("2:c@h1",))], 1) == (
        "rolling restart (members left and came back from the same hosts)", False)
    assert likely_cause([event(left=("1:c@h1",)), event(joined=("2:c@h2",))], 1) == (
        "members replaced (some left, others joined from other hosts)", False)
    assert likely_cause([event(joined=("2:c@h2",)), event(left=("2:c@h2",))] * 2, 2) == (
        "flapping membership (members joined and left repeatedly)", True)
    assert likely_cause([event()], 2) == (
        "rebalances with the same members (session timeouts or slow polls)", True)
    assert likely_cause([], 1) == (None, False)


def test_a_member_that_came_back_and_left_again_is_flapping_a_deploy_is_not() -> None:
    def event(joined: str = "", left: str = "") -> Rebalance:
        """A member joining or leaving, by member id; all of one client on one host."""
        return Rebalance(0.0, 1, ((joined, "c@h"),) if joined else (),
                         ((left, "c@h"),) if left else ())

    steady_plus_one = [event(joined="x1"), event(left="x1"), event(joined="x2"),
                       event(left="x2")]
    rolling = [event(left="a"), event(joined="a2"), event(left="b"), event(joined="b2"),
               event(left="c"), event(joined="c2")]
    surge = [event(joined="a2"), event(left="a"), event(joined="b2"), event(left="b")]
    # Given members of one client on one host: an extra one that joins and leaves twice
    # beside a steady one, a rolling restart of three, and a surge deploy of two
    assert [flaps(steady_plus_one), flaps(rolling), flaps(surge)] == [1, 0, 0]
    # Then only the extra one is flapping, though no more members left than the group had
    assert likely_cause(steady_plus_one, 2) == (
        "flapping membership (members joined and left repeatedly)", True)
    assert likely_cause(rolling, 3)[1] is False
    assert likely_cause(surge, 3)[1] is False


def flapping(changes: int, every_s: float) -> RebalanceTracker:
    """A steady member "a" at generation 1 when lagwatch first polls, then a second member
    joining and leaving: one generation each, ``every_s`` apart."""
    tracker = RebalanceTracker(S)
    tracker.observe_poll(poll("Stable", "a"), at=0.0)
    for k in range(changes):
        tracker.observe_record(record(2 + k, "a", *(["b"] if k % 2 == 0 else [])),
                               at=every_s * (k + 1))
    return tracker


def test_the_first_record_after_a_poll_is_a_rebalance_so_the_count_equals_generations() -> None:
    # Given four joins and leaves of a second member beside a steady one: generations 2-9
    churn = flapping(8, every_s=60.0).churn("billing", now=600.0)
    assert churn is not None
    # Then the counter equals the 8 generations the steady member went through
    assert (churn.total, churn.episodes, churn.joined, churn.left) == (8, 8, 4, 4)


def test_a_group_created_after_lagwatch_started_counts_all_its_generations() -> None:
    # Given lagwatch polling before the group exists
    tracker = RebalanceTracker(S)
    tracker.observe_poll(GroupSnapshot("other", "Stable", members=()), at=0.0)
    # When its member joins and, as kafka-python does, rejoins at once (generations 1, 2),
    # and lagwatch reads only the second record
    tracker.observe_record(record(2, "a"), at=10.5)
    churn = tracker.churn("billing", now=20.0)
    # Then both generations count, as one episode
    assert churn is not None
    assert (churn.total, churn.episodes) == (2, 1)


def test_a_start_with_a_rejoin_and_a_rolling_restart_of_three_are_not_churn() -> None:
    # Given three members joining (kafka-python joins twice, 0.5 s apart), then each
    # restarted once, 40 s apart
    tracker = RebalanceTracker(S)
    tracker.observe_poll(poll("Empty"), at=0.0)
    tracker.observe_record(record(1, "a", "b", "c"), at=10.0)
    tracker.observe_record(record(2, "a", "b", "c"), at=10.5)
    members = ["a", "b", "c"]
    for k, member in enumerate(["a", "b", "c"]):
        at = 60.0 + 40.0 * k
        members.remove(member)
        tracker.observe_record(record(3 + 2 * k, *members), at=at)
        members.append(f"{member}2")  # the same host, a new member id
        tracker.observe_record(record(4 + 2 * k, *members), at=at + 3.0)
    churn = tracker.churn("billing", now=300.0)
    assert churn is not None
    # Then every generation counts (the first record, polled before, too), in 4 episodes,
    # and none is churn
    assert (churn.total, churn.episodes) == (8, 4)
    assert churn.cause == "rolling restart (members left and came back from the same hosts)"
    assert churn_finding(churn, S) is None


def test_a_member_joining_and_leaving_every_30s_is_flapping_membership() -> None:
    churn = flapping(6, every_s=30.0).churn("billing", now=200.0)
    assert churn is not None
    finding = churn_finding(churn, S)
    assert finding is not None
    assert finding.reason == (
        "6 rebalances in 6 episodes in the window (36.0 episodes/h), 0% of polls caught it "
        "rebalancing; 3 joined, 3 left; likely cause: flapping membership (members joined "
        "and left repeatedly)")


def _churn_over(scenario: Scenario, duration_s: float) -> tuple[list[Churn], list[str]]:
    """Run a simulated group through a pipeline; return its churn per poll and the
    reasons of every rebalancing finding raised."""
    pipeline = ClusterJudge("sim", DetectionConfig())
    scenario.exact_commits = True
    churns, reasons = [], []
    for snapshot in scenario.run(duration_s):
        verdict = pipeline.ingest(snapshot)
        assert verdict is not None
        churns.append(verdict.churn[scenario.group])
        reasons += [f.reason for f in verdict.group_findings.get(scenario.group, ())
                    if f.kind == "rebalancing"]
    return churns, reasons


def test_simulated_clients_that_join_twice_and_restart_one_by_one_raise_nothing() -> None:
    # Given three members that each join twice, then are restarted one a minute at 30 min
    scenario = Scenario(partitions=3, members=lambda _t: 3, join_twice=True,
                        events={1800.0 + 60 * k: lambda s, k=k: s.restart_member(k)
                                for k in range(3)})
    churns, reasons = _churn_over(scenario, 3600.0)
    # Then every generation is counted (start 2; each restart leaves, joins, rejoins: 3)
    assert churns[-1].total == 2 + 3 * 3
    assert churns[-1].cause == ("rolling restart (members left and came back from the "
                                "same hosts)")
    assert (churns[-1].episodes, churns[-1].churn) == (3, False)  # the start left the window
    # and no poll raised a finding
    assert reasons == []


def test_a_simulated_member_joining_and_leaving_every_4_minutes_is_flapping() -> None:
    # Given two members; the second leaves at 2 min and rejoins (twice) at 4, every 4 min
    scenario = Scenario(partitions=3, join_twice=True,
                        members=lambda t: 2 if t % 240 < 120 else 1)
    churns, reasons = _churn_over(scenario, 1800.0)
    # Then once it came back and left again, it is flapping, whether or not it is present
    assert churns[-1].total == 2 + 7 * 2 + 7  # start; 7 joins (and rejoins); 7 leaves
    assert churns[-1].cause == "flapping membership (members joined and left repeatedly)"
    assert reasons[-1] == (
        "23 rebalances in 15 episodes in the window (30.0 episodes/h), 0% of polls caught "
        "it rebalancing; 7 joined, 7 left; likely cause: flapping membership (members "
        "joined and left repeatedly)")
    # raised by every poll from 375 s on: the first after its second departure (360 s)
    assert (len(churns), len(reasons)) == (121, 121 - 25)
