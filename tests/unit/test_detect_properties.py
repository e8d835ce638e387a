"""Properties of the lagging rule over generated producer and consumer behaviour."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lagwatch.detect.config import DetectionConfig
from lagwatch.pipeline import ClusterJudge
from lagwatch.simulate import Scenario, bursts, constant, step
from lagwatch.status import Status

MIN_DURATION_S = DetectionConfig().min_duration


def statuses(scenario: Scenario, duration_s: float) -> list[tuple[float, set[Status]]]:
    pipeline = ClusterJudge("sim", DetectionConfig())
    seen = []
    for snapshot in scenario.run(duration_s, poll_s=15.0):
        verdict = pipeline.ingest(snapshot)
        assert verdict is not None
        seen.append((snapshot.taken_at - scenario.start,
                     {a.status for per in verdict.assessments.values() for a in per.values()}))
    return seen


@given(base=st.floats(10, 500), peak_factor=st.floats(1, 5),
       burst_s=st.integers(15, int(MIN_DURATION_S) - 30), gap_s=st.integers(30, 600),
       headroom=st.floats(1.1, 3), commit_every_s=st.sampled_from([1, 5, 15, 60]),
       partitions=st.integers(1, 3))
def test_a_consumer_with_10_percent_headroom_is_never_lagging_under_bursts(
        *, base: float, peak_factor: float, burst_s: int, gap_s: int, headroom: float,
        commit_every_s: int, partitions: int) -> None:
    # Given bursts shorter than the minimum duration, and capacity >= 1.1x the mean rate
    every_s = burst_s + gap_s
    mean = base + (base * peak_factor - base) * burst_s / every_s
    scenario = Scenario(produce=bursts(base, base * peak_factor, every_s, burst_s),
                        capacity=constant(mean * headroom), commit_every_s=commit_every_s,
                        partitions=partitions)
    # Then
    flagged = [t for t, seen in statuses(scenario, 3600) if Status.LAGGING in seen]
    assert flagged == []


@given(rate=st.floats(20, 2000), slowdown=st.floats(0.3, 0.8),
       onset_s=st.integers(300, 1500).map(lambda s: s - s % 15),
       commit_every_s=st.sampled_from([1, 5, 15]), partitions=st.integers(1, 3))
def test_a_consumer_at_most_80_percent_of_the_produce_rate_is_lagging_by_twice_min_duration(
        *, rate: float, slowdown: float, onset_s: int, commit_every_s: int,
        partitions: int) -> None:
    # Given a consumer that keeps up, then reads at <= 0.8x the produce rate
    scenario = Scenario(produce=constant(rate),
                        capacity=step(rate * 10, rate * slowdown, onset_s),
                        commit_every_s=commit_every_s, partitions=partitions)
    # Then it is lagging on every partition by onset + 2 x the minimum duration, and stays so
    deadline = onset_s + 2 * MIN_DURATION_S
    after = [seen for t, seen in statuses(scenario, deadline + 600) if t >= deadline]
    assert all(seen == {Status.LAGGING} for seen in after), after[:3]
