"""Exact commit times from OffsetCommit records: the clock, and what it sharpens."""

from __future__ import annotations

from lagwatch.detect.commits import CommitClocks, CommitFacts
from lagwatch.detect.history import Window
from lagwatch.detect.rules import rates
from lagwatch.records import OffsetCommit
from lagwatch.report.view import ClusterReport
from lagwatch.simulate import Scenario, replay
from lagwatch.status import Status

TP = ("orders", 0)


def commit(offset: int | None) -> OffsetCommit:
    return OffsetCommit("billing", "orders", 0, offset)


def clock_after(*commits: tuple[float, int | None]) -> CommitFacts | None:
    clocks = CommitClocks(window_s=1800)
    for at, offset in commits:
        clocks.observe(commit(offset), at)
    return clocks.facts("billing", TP)


def test_first_commit_seen_says_only_that_the_offset_moved_at_or_before_it() -> None:
    assert clock_after((100.0, 50)) == CommitFacts(
        offset=50, moved_at=None, last_commit_at=100.0, commits_since_move=0,
        move_cadence_s=0.0, commit_interval_s=0.0)


def test_moves_give_exact_times_and_the_longest_gap_between_moves() -> None:
    facts = clock_after((100.0, 50), (160.0, 80), (200.0, 90), (290.0, 120), (295.0, 120))
    assert facts == CommitFacts(offset=120, moved_at=290.0, last_commit_at=295.0,
                                commits_since_move=1, move_cadence_s=90.0,
                                commit_interval_s=5.0, recommits=(295.0,))


def test_a_gap_older_than_the_window_gives_way_to_the_next_one() -> None:
    # a 499 s gap between moves ending at 500 s, then a move every 10 s
    moves = [(0.0, 0), (1.0, 1)] + [(float(t), t) for t in range(500, 2501, 10)]
    assert [clock_after(*moves[:k]).move_cadence_s  # type: ignore[union-attr]
            for k in (53, len(moves))] == [499.0, 10.0]


def test_a_tombstone_forgets_the_offset_and_an_older_record_is_not_news() -> None:
    assert clock_after((100.0, 50), (110.0, None)) is None
    facts = clock_after((100.0, 50), (110.0, 60), (105.0, 55))
    assert facts is not None and (facts.offset, facts.moved_at) == (60, 110.0)


def test_forget_drops_groups_that_are_gone() -> None:
    clocks = CommitClocks(window_s=1800)
    clocks.observe(commit(5), 1.0)
    clocks.observe(OffsetCommit("shipping", "orders", 0, 7), 1.0)
    clocks.forget({"shipping"})
    assert (len(clocks), clocks.facts("billing", TP)) == (1, None)


def test_the_move_time_is_the_commit_time_kept_between_the_polls_around_it() -> None:
    # polls at 0, 15, 30, 45: the offset moved to 200 between the polls at 15 and 30
    committed = Window((0.0, 15.0, 30.0, 45.0), (100, 100, 200, 200))
    end = Window((0.0, 15.0, 30.0, 45.0), (300, 300, 300, 300))
    facts = CommitFacts(200, moved_at=21.5, last_commit_at=21.5, commits_since_move=0,
                        move_cadence_s=0.0, commit_interval_s=0.0)
    assert rates(committed, end, 45.0, facts).frozen_s == 23.5
    assert rates(committed, end, 45.0).frozen_s == 15.0  # polls alone: since the poll at 30
    ahead = CommitFacts(200, moved_at=99.0, last_commit_at=99.0, commits_since_move=0,
                        move_cadence_s=0.0, commit_interval_s=0.0)  # broker clock ahead
    assert rates(committed, end, 45.0, ahead).frozen_s == 15.0
    behind = CommitFacts(200, moved_at=3.0, last_commit_at=3.0, commits_since_move=0,
                         move_cadence_s=0.0, commit_interval_s=0.0)  # broker clock behind
    assert rates(committed, end, 45.0, behind).frozen_s == 30.0


def test_records_that_disagree_with_the_poll_are_not_used() -> None:
    committed = Window((0.0, 15.0), (100, 100))
    end = Window((0.0, 15.0), (300, 300))
    newer = CommitFacts(250, moved_at=14.0, last_commit_at=14.0, commits_since_move=3,
                        move_cadence_s=2.0, commit_interval_s=2.0)
    r = rates(committed, end, 15.0, newer)
    # a later offset committed than the poll read: it moves on now, nothing else is known
    assert (r.cadence_s, r.frozen_s, r.commits) == (0.0, 0.0, None)
    older = CommitFacts(90, moved_at=14.0, last_commit_at=14.0, commits_since_move=3,
                        move_cadence_s=2.0, commit_interval_s=2.0)  # the records behind
    r = rates(committed, end, 15.0, older)
    assert (r.cadence_s, r.frozen_s, r.commits) == (0.0, 15.0, None)


def run_from(scenario: Scenario, watch_from_s: float, duration_s: float
             ) -> list[tuple[float, ClusterReport]]:
    """Run a scenario; lagwatch sees only the polls from ``watch_from_s`` on."""
    seen = (s for s in scenario.run(duration_s) if s.taken_at - scenario.start >= watch_from_s)
    return [(r.polled_at - scenario.start, r) for r in replay(seen)]


def first_stalled(reports: list[tuple[float, ClusterReport]]) -> tuple[float, tuple[str, ...]]:
    return next((t, r.groups[0].reasons) for t, r in reports
                if r.groups[0].status is Status.STALLED)


def test_a_consumer_retrying_a_poison_pill_is_stalled_by_its_re_commits() -> None:
    # Given a consumer stuck since minute 10 that commits the same offset every 5 s, and
    # lagwatch starting at minute 15
    def scenario(exact: bool) -> Scenario:
        return Scenario(events={600.0: lambda s: s.stick_retrying(0)}, exact_commits=exact)
    # When
    exact = first_stalled(run_from(scenario(exact=True), 900, 1500))
    polls = first_stalled(run_from(scenario(exact=False), 900, 1500))
    # Then the records show ten re-commits of that offset over 45 s while messages wait:
    # stalled then, before the 60 s stall window; from polls alone the cadence is unknown
    # and it takes 5 windows
    assert exact == (945.0, (
        "orders[0] stuck at offset 60,000 for 45s with 34,500 messages waiting; it still "
        "commits this offset every 5s: alive but not getting past it (a poison pill or a "
        "retry loop)",))
    assert polls == (1215.0, (
        "orders[0] stuck at offset 60,000 for 5m 15s with 61,500 messages waiting",))


def test_a_silent_stuck_consumer_is_named_hung() -> None:
    # Given a consumer that stops committing at minute 20, watched from the start
    reports = run_from(Scenario(events={1200.0: lambda s: s.stick(0)}, exact_commits=True),
                       0, 1800)
    # Then the commit time is exact: the last commit landed at 1200 s
    assert first_stalled(reports) == (1275.0, (
        "orders[0] stuck at offset 120,000 for 1m 15s with 7,500 messages waiting; its last "
        "commit was 1m 15s ago: the consumer is hung or blocked",))


def test_a_consumer_stuck_before_lagwatch_started_and_silent_says_so() -> None:
    reports = run_from(Scenario(events={600.0: lambda s: s.stick(0)}, exact_commits=True),
                       900, 1500)
    assert first_stalled(reports)[1] == (
        "orders[0] stuck at offset 60,000 for 5m 15s with 61,500 messages waiting; no commit "
        "seen since lagwatch started: the consumer is hung or blocked",)


def test_a_consumer_stuck_on_every_partition_is_stalled_by_its_re_commits_not_starved(
        ) -> None:
    # Given a consumer of 3 partitions that hits a poison pill at minute 20 and re-commits
    # every partition where it stands, every 5 s, watched from the start
    def stuck_everywhere(scenario: Scenario) -> None:
        for k in range(3):
            scenario.stick_retrying(k)
    scenario = Scenario(partitions=3, events={1200.0: stuck_everywhere}, exact_commits=True)
    # When
    at, reasons = first_stalled(run_from(scenario, 0, 1500))
    # Then its siblings, which moved moments before, do not make it look starved: the
    # tenth re-commit (at 50 s) says stalled at the next poll, before the stall window
    # has passed (at 75 s)
    assert at == 1260.0
    assert reasons[0] == (
        "orders[0] stuck at offset 40,000 for 1m with 2,000 messages waiting; it still "
        "commits this offset every 5s: alive but not getting past it (a poison pill or a "
        "retry loop)")
