"""Detection rules, case by case, in virtual time (15 s polls unless a case says otherwise).

Each row is a named case: the scenario, how long it runs, the status it must end in, the
statuses it must never show on the way, and (for onsets) by when it must be detected.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest

from lagwatch.detect.config import DetectionConfig
from lagwatch.detect.history import Window
from lagwatch.detect.rules import time_lag
from lagwatch.pipeline import ClusterJudge
from lagwatch.report.view import ClusterReport, GroupReport
from lagwatch.simulate import Scenario, bursts, constant, replay, step
from lagwatch.status import Status
from lagwatch.text import fmt_duration

ALARMS = {Status.LAGGING, Status.STALLED, Status.STOPPED, Status.REWOUND, Status.AT_RISK,
          Status.DATA_LOSS}


def run(scenario: Scenario, duration_s: float, poll_s: float = 15.0,
        detection: DetectionConfig | None = None) -> list[tuple[float, ClusterReport]]:
    """Feed a scenario's polls through a pipeline; return (seconds, report) per poll."""
    judge = ClusterJudge("sim", detection or DetectionConfig())
    return [(r.polled_at - scenario.start, r)
            for r in replay(scenario.run(duration_s, poll_s), judge)]


def group(report: ClusterReport) -> GroupReport:
    return report.groups[0]


def first_time(reports: list[tuple[float, ClusterReport]], status: Status) -> float | None:
    return next((t for t, r in reports if group(r).status is status), None)


@dataclass
class Case:
    name: str
    scenario: Scenario
    duration_s: float
    final: Status
    never: set[Status] = field(default_factory=set)
    detect: tuple[Status, float, float] | None = None  # status, onset, latest detection
    holds: bool = False  # once detected, the status holds in every poll to the end


def stuck_everywhere(scenario: Scenario) -> None:
    """A poison pill the consumer retries, re-committing every partition where it stands."""
    for k in range(scenario.partitions):
        scenario.stick_retrying(k)


CASES = [
    Case("healthy consumer", Scenario(), 3600, Status.OK, never=ALARMS),
    Case("bursty producer the consumer absorbs",
         Scenario(produce=bursts(60, 300, every_s=180, length_s=30), capacity=constant(110)),
         3600, Status.OK, never=ALARMS),
    Case("idle topic", Scenario(produce=constant(0)), 3600, Status.IDLE, never=ALARMS),
    Case("caught up, no new commits", Scenario(produce=step(100, 0, 600)), 3600,
         Status.IDLE, never=ALARMS),
    Case("batch committer every 5 min, 15 s polls", Scenario(commit_every_s=300), 3 * 3600,
         Status.OK, never=ALARMS),
    Case("lag saw-tooth that rises overall",
         Scenario(commit_every_s=60, capacity=constant(85)), 3600, Status.LAGGING,
         never=ALARMS - {Status.LAGGING}, detect=(Status.LAGGING, 0, 10 * 60)),
    Case("slow but alive from minute 20 (0.8x)", Scenario(capacity=step(1000, 80, 1200)),
         3600, Status.LAGGING, never=ALARMS - {Status.LAGGING},
         detect=(Status.LAGGING, 1200, 1200 + 180)),
    Case("one partition stuck, the others fine",
         Scenario(partitions=3, events={1200.0: lambda s: s.stick(1)}), 3600, Status.STALLED,
         never=ALARMS - {Status.STALLED}, detect=(Status.STALLED, 1200, 1200 + 300 + 30)),
    Case("slow 0.5x from minute 20, 4 partitions drained in turns of 500",
         Scenario(capacity=step(400, 50, 1200), partitions=4, turn=500), 3600,
         Status.LAGGING, never=ALARMS - {Status.LAGGING},
         detect=(Status.LAGGING, 1200, 1200 + 180), holds=True),
    Case("slow 0.5x from minute 20, drained in turns of 5,000 (each frozen for minutes)",
         Scenario(capacity=step(400, 50, 1200), partitions=4, turn=5000), 3600,
         Status.LAGGING, never=ALARMS - {Status.LAGGING},
         detect=(Status.LAGGING, 1200, 1200 + 180), holds=True),
    Case("healthy, 4 partitions drained in turns of 2,000",
         Scenario(capacity=constant(130), partitions=4, turn=2000), 3600, Status.OK,
         never=ALARMS),
    Case("1 of 4 partitions stuck while the others, drained in turns, keep up",
         Scenario(partitions=4, turn=500, events={1200.0: lambda s: s.stick(2)}), 3600,
         Status.STALLED, never=ALARMS - {Status.STALLED},
         detect=(Status.STALLED, 1200, 1200 + 75), holds=True),
    Case("stuck on every partition, re-committing each every 5 s",
         Scenario(partitions=3, events={1200.0: stuck_everywhere}), 1800, Status.STALLED,
         never=ALARMS - {Status.STALLED}, detect=(Status.STALLED, 1200, 1200 + 75),
         holds=True),
    Case("consumer stopped", Scenario(members=lambda t: 1 if t < 1200 else 0), 2400,
         Status.STOPPED, never={Status.LAGGING, Status.STALLED},
         detect=(Status.STOPPED, 1200, 1200 + 15)),
    Case("offset reset to earliest", Scenario(events={1800.0: Scenario.rewind_to_start}),
         1830, Status.REWOUND, never={Status.LAGGING, Status.DATA_LOSS, Status.STALLED},
         detect=(Status.REWOUND, 1800, 1800)),
    Case("topic recreated", Scenario(events={1800.0: Scenario.recreate_topic}), 3600,
         Status.OK, never=ALARMS),
    Case("partitions added",
         Scenario(partitions=2, events={1800.0: lambda s: s.add_partitions(2)}), 3600,
         Status.OK, never=ALARMS),
    Case("window not yet complete", Scenario(capacity=constant(50)), 45, Status.UNKNOWN,
         never=ALARMS),
    Case("retention deletes what a stopped group did not read",
         Scenario(members=lambda t: 1 if t < 600 else 0,
                  events={1800.0: lambda s: s.cut_retention(1000)}), 2400, Status.DATA_LOSS,
         detect=(Status.DATA_LOSS, 1800, 1800)),
    Case("slow consumer heading for a 1 h retention",
         Scenario(retention_s=3600, capacity=step(1000, 50, 600)), 2 * 3600, Status.AT_RISK,
         detect=(Status.AT_RISK, 600, 1800)),
]


@pytest.mark.parametrize("exact", [False, True], ids=["polls", "commit records"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_detection_case(case: Case, exact: bool) -> None:
    scenario = copy.deepcopy(case.scenario)
    scenario.exact_commits = exact
    reports = run(scenario, case.duration_s)
    seen = {group(r).status for _, r in reports}
    assert group(reports[-1][1]).status is case.final, group(reports[-1][1]).reasons
    assert not seen & case.never, f"false alarms: {seen & case.never}"
    if case.detect:
        status, onset, latest = case.detect
        detected = first_time(reports, status)
        assert detected is not None
        assert onset <= detected <= latest, f"{status} at {detected}s, onset {onset}s"
        if case.holds:
            after = [group(r).status for t, r in reports if t >= detected]
            assert set(after) == {status}, after


def test_slow_consumer_reason_gives_the_rates_and_the_growth() -> None:
    reports = run(Scenario(capacity=step(1000, 80, 1200)), 2400)
    assert group(reports[-1][1]).reasons == (
        "orders[0] consuming 80.0 msg/s while producers write 100.0 msg/s; "
        "lag grows 20.0 msg/s",)


def test_stalled_reason_names_the_stuck_partition_and_offset() -> None:
    reports = run(Scenario(partitions=3, events={1200.0: lambda s: s.stick(1)}), 1800)
    final = group(reports[-1][1])
    assert final.reasons == (
        "orders[1] stuck at offset 40,000 for 10m with 20,000 messages waiting",)
    stuck, = (p for t in final.topics for p in t.partitions if p.status is Status.STALLED)
    assert (stuck.partition, stuck.committed) == (1, 40_000)


def test_rewind_reason_gives_replay_size_and_time_and_clears_once_passed() -> None:
    reports = run(Scenario(events={1800.0: Scenario.rewind_to_start}), 2400)
    at_rewind = dict(reports)[1800.0]
    assert group(at_rewind).reasons == (
        "orders[0] moved back from offset 178,500 to 0: 178,500 messages will be processed "
        "again, about 30m at 99.2 msg/s",)
    cleared = first_time([(t, r) for t, r in reports if t > 1800], Status.OK)
    assert cleared == 1980.0  # 1000 msg/s catches up with the old position after 3 min


def test_lost_messages_are_counted_once_per_loss_event() -> None:
    # Given a stopped group whose unread messages retention cuts twice
    scenario = Scenario(members=lambda t: 1 if t < 600 else 0,
                        events={1800.0: lambda s: s.cut_retention(1000),
                                2400.0: lambda s: s.cut_retention(1000)})
    # When
    reports = run(scenario, 3000)
    # Then: 119,000 lost at 1800 s and 60,000 more at 2400 s, each counted once
    assert dict(reports)[2385.0].verdict.lost_total == {("billing", "orders"): 119_000}
    assert reports[-1][1].verdict.lost_total == {("billing", "orders"): 179_000}


def test_time_lag_is_interpolated_inside_the_window() -> None:
    # log end: 0 at t=0, 1000 at t=10, 2000 at t=20; committed 500 means the oldest unread
    # message (offset 500) landed when the log end passed 501, at t=5.01
    end = Window((0.0, 10.0, 20.0), (0, 1000, 2000))
    assert time_lag(500, end, now=20.0, produce=100.0, cap_s=1e9) == (pytest.approx(14.99),
                                                                      False)
    assert time_lag(2000, end, now=20.0, produce=100.0, cap_s=1e9) == (0.0, False)


def test_time_lag_outside_the_window_is_extrapolated_capped_and_flagged() -> None:
    end = Window((100.0, 110.0), (10_000, 11_000))
    lag_s, extrapolated = time_lag(4_999, end, now=110.0, produce=100.0, cap_s=1e9)
    assert (lag_s, extrapolated) == (pytest.approx(60.0), True)
    assert time_lag(0, end, now=110.0, produce=100.0, cap_s=30.0) == (30.0, True)
    assert time_lag(0, end, now=110.0, produce=0.0, cap_s=1e9) == (10.0, True)
    assert time_lag(0, Window((100.0,), (10_000,)), now=100.0, produce=None,
                    cap_s=1e9) == (None, False)


@pytest.mark.parametrize(("seconds", "text"), [
    (45, "45s"), (60, "1m"), (370, "6m 10s"), (3600, "1h"), (11_100, "3h 5m"),
    (187_200, "2d 4h"), (86_400, "1d")])
def test_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text
