"""Rules that look beyond one partition, because real consumers do not advance their
partitions evenly (a Java consumer drains one partition's fetched records before the next).

Slowness is judged on the group's lag summed over a topic's partitions (a ``Flow``), and a
partition frozen while its member is busy behind on its other partitions is starved (its
``Crew`` shows it), part of the slowness, rather than stalled.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import sub

from lagwatch.detect.rules import DetectionSettings, Inputs, Rates, stall_threshold
from lagwatch.detect.trend import Trend, trend
from lagwatch.model import TopicPartition

STARVED_FACTOR = 3  # a starved partition may stay frozen this many of its member's gaps
DRAIN_SLACK = 1.5  # ... and this many times what its member needs to read its other lag


@dataclass(frozen=True, slots=True)
class Crew:
    """What a member's partitions (or a group's, when assignments are unknown) show, worked
    out once for ``starved_wait``: keeping two of each extreme lets every partition leave
    its own out, so the rule costs one pass over the member's partitions, not one each."""

    movers: tuple[tuple[float, TopicPartition], ...]  # the 2 least frozen that moved
    behind: int  # partitions behind (above their near-zero level) that moved in the window
    gaps: tuple[tuple[float, TopicPartition], ...]  # the 2 longest freezes (gap or now)
    lag: int  # messages waiting on all the member's partitions
    consume: float  # msg/s the member reads over all its partitions


def crew(parts: list[Part]) -> Crew:
    """Sum up a member's partitions."""
    # moving: moved at some point and, by the commit records, not committed again unchanged
    # since (a member stuck on every partition re-commits them all); how recently is the
    # rule's to judge, against each partition's own stall threshold
    movers = heapq.nsmallest(2, ((p.rates.frozen_s, p.x.tp) for p in parts
                                 if p.rates.last_change_t is not None and not (
                                     p.rates.commits is not None and p.rates.commits.recommits)))
    gaps = heapq.nlargest(2, ((max(p.rates.cadence_s, p.rates.frozen_s), p.x.tp)
                              for p in parts))
    behind = sum(1 for p in parts if _behind(p))
    return Crew(tuple(movers), behind, tuple(gaps), sum(p.lag for p in parts),
                sum(p.rates.consume or 0.0 for p in parts))


def _behind(p: Part) -> bool:
    return p.lag > p.near_zero and bool(p.rates.moves)


def starved_wait(p: Part, member: Crew, s: DetectionSettings) -> float | None:
    """How long a partition may stay frozen waiting for its turn, when its member is busy
    elsewhere; None when it is not starved.

    Starved means the member is alive and slow, not stuck here: a sibling (another
    partition of the same member, or of the group when assignments are unknown) is moving
    (it moved within this partition's stall threshold and, where the commit records tell,
    has not been committed again unchanged since), and a sibling that moved within the
    window is behind (lag above its near-zero level). Then it may wait ``STARVED_FACTOR``
    times the longest freeze the member's partitions show (their longest gaps between
    moves, and how long each has been frozen now), and at least ``DRAIN_SLACK`` times what
    the member needs, at its consume rate, to read the lag of its other partitions: a
    client hands out one partition's fetched records before the next, so this one's turn
    comes once those are read. That bound holds from the first polls, before a whole
    rotation has been seen. ``member`` sums up the member's partitions, this one among
    them. A partition stuck while its siblings keep up is not starved, nor
    is one of a member that re-commits every partition where it stands: those are poison
    pills.
    """
    tp, r = p.x.tp, p.rates
    threshold = stall_threshold(r, s)
    alive = any(frozen <= threshold for frozen, other in member.movers if other != tp)
    behind = member.behind - _behind(p) > 0
    if not (alive and behind):
        return None
    # the longest freeze among the others (the two longest are kept: one may be this one)
    gap = max(r.cadence_s, next(gap for gap, other in member.gaps if other != tp))
    drain = (member.lag - p.lag) / member.consume if member.consume > 0 else 0.0
    return max(STARVED_FACTOR * gap, DRAIN_SLACK * drain)


def trend_span(s: DetectionSettings, cadence_s: float) -> float:
    """The trend window: the minimum duration, stretched to hold enough commits."""
    return min(s.window_s, max(s.min_duration_s, s.min_trend_points * cadence_s))


@dataclass(frozen=True, slots=True)
class LagTrend:
    """The lag trend over the trend window and its slope over the recent half."""

    trend: Trend
    recent_slope: float
    behind_throughout: bool  # above near-zero lag at every point
    rising: bool  # the last point is above the first


def lag_trend(times: list[float], lags: list[float], near_zero: float,
              s: DetectionSettings) -> LagTrend | None:
    """The trend of lags sampled at commits, when they span the minimum duration."""
    # the points must span the minimum duration (5% slack absorbs poll jitter)
    if len(times) < s.min_trend_points or times[-1] - times[0] < 0.95 * s.min_duration_s:
        return None
    half = len(times) // 2
    return LagTrend(trend(times, lags), trend(times[half:], lags[half:]).slope,
                    behind_throughout=min(lags) > near_zero, rising=lags[-1] > lags[0])


def is_lagging(t: LagTrend | None, was_lagging: bool, lag: int, near_zero: float,
               s: DetectionSettings) -> bool:
    """Slow but alive: committing, yet the lag at each commit keeps rising.

    Entering needs a significant rising trend over the whole minimum duration, from a lag
    already above what a keeping-up group shows, and still rising over the recent half at
    least half as fast, so a burst shorter than the minimum duration, or the drain after
    one, never enters.
    Staying (hysteresis) needs only a lag above near-zero that is not falling
    significantly over the trend window: a group leaves when it really catches up.
    """
    if lag <= near_zero:
        return False
    if was_lagging:
        return t is None or not (t.trend.slope < 0 and t.trend.z <= -s.significance_z)
    return (t is not None and t.rising and t.behind_throughout and t.trend.slope > 0
            and t.recent_slope >= 0.5 * t.trend.slope and t.trend.z >= s.significance_z)


@dataclass(frozen=True, slots=True)
class Part:
    """One group-partition's inputs and numbers, before its verdict."""

    x: Inputs
    lag: int
    rates: Rates
    near_zero: float
    held: bool = False  # waiting behind an open transaction: see is_held_by_transaction


@dataclass(frozen=True, slots=True)
class Flow:
    """A group's consumption of one topic, summed over the partitions it commits to."""

    topic: str
    partitions: int
    lag: int
    near_zero: float
    trend: LagTrend | None
    consume: float  # msg/s over the trend window
    produce: float


def topic_flow(topic: str, parts: list[Part], s: DetectionSettings, now: float,
               was_lagging: bool = False) -> Flow:
    """Sum a topic's partitions at every poll where the group committed any of them.

    Sampling at commits removes the saw-tooth a batch consumer draws between commits;
    summing removes the staircase a consumer draws that drains one partition at a time.
    The trend is computed only where ``is_lagging`` could use it: the group was lagging,
    or the summed lag rose while always above near-zero.
    """
    points = _aligned_points(parts, s, now) or _points(parts, s, now)
    times, ends, done, lags = points
    near_zero = sum(p.near_zero for p in parts)
    consume = produce = 0.0
    if len(times) >= 2 and times[-1] > times[0]:
        consume = max(0.0, (done[-1] - done[0]) / (times[-1] - times[0]))
        produce = (ends[-1] - ends[0]) / (times[-1] - times[0])
    wanted = was_lagging or (len(lags) >= 2 and lags[-1] > lags[0] and min(lags) > near_zero)
    return Flow(topic, len(parts), sum(p.lag for p in parts), near_zero,
                lag_trend(times, lags, near_zero, s) if wanted else None, consume, produce)


Points = tuple[list[float], list[int], list[int], list[float]]
"""Poll times in the trend window where the group committed, with the topic's summed log
end, committed offset and lag at each."""


def _since(s: DetectionSettings, now: float, moved: list[float]) -> float:
    cadence = max(map(sub, moved[1:], moved), default=0.0)
    return now - 1.05 * trend_span(s, cadence)


def _aligned_points(parts: list[Part], s: DetectionSettings, now: float) -> Points | None:
    """The points by index, when every window holds a sample at every poll (the usual
    case: then all share their times, and a commit shows in the summed offset); None
    otherwise."""
    times = parts[0].x.end_w.times
    if not times or any(p.x.end_w.times != times or p.x.committed_w.times != times
                        for p in parts):
        return None
    done_all = [sum(column) for column in zip(*(p.x.committed_w.values for p in parts),
                                               strict=True)]
    moved = [k for k in range(1, len(times)) if done_all[k] != done_all[k - 1]]
    since = _since(s, now, [times[k] for k in moved])
    chosen = [k for k in moved if times[k] >= since]
    ends = [sum(p.x.end_w.values[k] for p in parts) for k in chosen]
    lags = [float(sum(max(0, p.x.end_w.values[k] - p.x.committed_w.values[k])
                      for p in parts)) for k in chosen]
    return [times[k] for k in chosen], ends, [done_all[k] for k in chosen], lags


def _points(parts: list[Part], s: DetectionSettings, now: float) -> Points:
    moved = sorted({t for p in parts for t, _ in p.rates.moves})
    since = _since(s, now, moved)
    points: Points = ([], [], [], [])
    for t in (t for t in moved if t >= since):
        sums = _sums_at(parts, t)
        if sums is not None:
            points[0].append(t)
            points[1].append(sums[0])
            points[2].append(sums[1])
            points[3].append(float(sums[2]))
    return points


def _sums_at(parts: list[Part], t: float) -> tuple[int, int, int] | None:
    """The topic's log end, committed offset and lag summed at a poll; None when a
    partition has no sample there."""
    end_sum = committed_sum = lag_sum = 0
    for p in parts:
        end, committed = p.x.end_w.at(t), p.x.committed_w.at(t)
        if end is None or committed is None:
            return None
        end_sum, committed_sum = end_sum + end, committed_sum + committed
        lag_sum += max(0, end - committed)
    return end_sum, committed_sum, lag_sum
