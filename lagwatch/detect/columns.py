"""The partition rules over every group-partition of a poll at once, where their outcome
is plain: numpy over the history's matrices instead of a walk per group-partition.

Most groups of a fleet are healthy or gone, and what the rules say of those needs no
trend, no starvation and no reason but a stock one. A group is plain when each of its
partitions is

- caught up (at the log end): ``ok``, or ``idle`` once the window is long enough and
  nothing was written;
- in a group with no member: ``stopped`` with messages waiting;
- or read by a member a little behind: moved within ``stall_after`` by the polls (so
  not stalled whatever its cadence or commit times), re-committed fewer than
  ``RECOMMITS_STALLED`` times since (not retrying), retention not near, and its topic's
  summed lag no more than the least near-zero level its partitions can have (not
  lagging): ``ok``, once the history spans ``min_duration``;

and none lost data to retention, waits behind an open transaction, had its unread
records fetched (exact time lag), lacks a committed offset or log offsets, or moved back
and has not got back (``rewound``). Every other group goes through the per-partition
rules (``assess.assess_group``), which stay the reference: a property test holds this
path to them on random histories. The numbers (rates, time lag, ETAs) are the same
operations in the same order as in ``rules``, so they are equal to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lagwatch.detect.commits import CommitClocks
from lagwatch.detect.history import MISSING, History
from lagwatch.detect.rules import RECOMMITS_STALLED, Assessment, DetectionSettings, Memory
from lagwatch.model import GroupSnapshot, Snapshot, TopicPartition
from lagwatch.status import Status

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Assessed = dict[str, dict[TopicPartition, Assessment]]
BLOCK = 4096  # rows worked out together: numpy's temporaries stay a few MB


Row = tuple[str, TopicPartition, int, int, int, int, int, int, int]
"""group, partition, committed offset, log end, members, commits of the offset since it
last moved, the committed series' row in the history, the log-end series' row, and the
group's number (its place in the poll)."""


def _screen(group_id: str, group: GroupSnapshot, snapshot: Snapshot, history: History, *,
            readable: set[str], commits: CommitClocks | None, number: int) -> list[Row]:
    """The group's rows, or none when something in them rules this path out."""
    if group.members is None:
        return []
    members = len(group.members)
    committed, offsets, unread = group.committed, snapshot.offsets, snapshot.unread
    series, ends = history.committed.rows.row, history.log_end.rows.row
    rows = []
    for tp in group.partitions():
        if tp[0] not in readable:
            continue  # deleted or unreadable: a poll error, not a verdict
        c, lo = committed.get(tp), offsets.get(tp)
        crow, erow = series.get((group_id, tp)), ends.get(tp)
        if (c is None or lo is None or crow is None or erow is None or c < lo.log_start
                or lo.held_back or (tp, c) in unread):
            return []
        behind = c < lo.log_end
        rows.append((group_id, tp, c, lo.log_end, members,
                     commits.recommits(group_id, tp)
                     if commits is not None and members and behind else 0, crow, erow,
                     number))
    return rows


def plain_groups(snapshot: Snapshot, history: History, s: DetectionSettings,
                 memory: Memory, commits: CommitClocks | None = None, *,
                 block: int = BLOCK) -> Assessed:
    """Assess the groups whose verdict is plain (see the module); the others are left
    to the per-partition rules. ``history`` must already hold this snapshot; ``memory``
    is updated for the groups assessed here. The numbers are worked out ``block`` rows
    at a time."""
    readable = {topic for topic, _ in snapshot.offsets}
    rows = [row for number, (group_id, group) in enumerate(snapshot.groups.items())
            for row in _screen(group_id, group, snapshot, history, readable=readable,
                               commits=commits, number=number)]
    if not rows:
        return {}
    columns = _Columns(*zip(*rows, strict=True))
    numbers = _Numbers(columns, history, snapshot.taken_at, s, block)
    return _verdicts(columns, numbers, snapshot, history.span_s(), s=s, memory=memory)


@dataclass(frozen=True, slots=True)
class _Columns:
    """The rows screened in, column by column."""

    groups: tuple[str, ...]
    tps: tuple[TopicPartition, ...]
    committed: tuple[int, ...]
    log_end: tuple[int, ...]
    members: tuple[int, ...]
    recommits: tuple[int, ...]
    history_row: tuple[int, ...]
    end_row: tuple[int, ...]
    owners: tuple[int, ...]  # the group of each row, by number


class _Numbers:
    """Every row's numbers, as ``rules.rates``, ``rules.time_lag``, ``rules.near_zero``
    and ``rules.rewind_of`` work them out from the row's windows."""

    def __init__(self, rows: _Columns, history: History, now: float,
                 s: DetectionSettings, block: int) -> None:
        times = history.times
        used = len(times)
        current = np.array(rows.committed)
        self.lag = np.maximum(0, np.array(rows.log_end) - current)
        parts: list[tuple[npt.NDArray[Any], ...]] = []
        for start in range(0, len(current), block):  # bounded temporaries
            take = slice(start, start + block)
            committed = history.committed.values[list(rows.history_row[take]), :used]
            ends = history.log_end.values[list(rows.end_row[take]), :used]
            produce, interval = _produce(ends, times)
            consume, rewound, moved_at = _moves(committed, times)
            lag_s, extrapolated = _time_lag(current[take], ends, times, produce, now=now,
                                            cap_s=s.max_extrapolation_s)
            parts.append((produce, interval, consume, rewound, moved_at, lag_s, extrapolated))
        (self.produce, interval, self.consume, self.rewound, moved_at, self.lag_s,
         self.extrapolated) = (np.concatenate(column) for column in zip(*parts, strict=True))
        # frozen no longer than since the poll before the move: not stalled
        self.moving = now - moved_at <= s.stall_after_s
        # rules.near_zero is at least this, whatever the cadence
        self.near_zero = np.maximum(1.0, np.nan_to_num(self.produce) * interval / 4)


def _first_last(known: Bools) -> tuple[Ints, Ints, Ints]:
    """Each row's count of known samples, and its first and last known columns."""
    count = known.sum(axis=1)
    first = known.argmax(axis=1)
    last = known.shape[1] - 1 - known[:, ::-1].argmax(axis=1)
    return count, first, last


def _carried(known: Bools) -> Ints:
    """For each column, the last known column at or before it (-1: none yet)."""
    if known.all():  # the usual case: every poll saw every series
        return np.broadcast_to(np.arange(known.shape[1]), known.shape)
    columns = np.where(known, np.arange(known.shape[1]), -1)
    return np.maximum.accumulate(columns, axis=1)


def _produce(ends: Ints, times: Floats) -> tuple[Floats, Floats]:
    """``rules.produce_rate`` (NaN where the window cannot tell), and the time between
    the last two samples (0 with one)."""
    known = ends != MISSING
    count, first, last = _first_last(known)
    rows = np.arange(len(ends))
    spread = times[last] - times[first]
    usable = (count >= 2) & (spread > 0)
    grown = (ends[rows, last] - ends[rows, first]).astype(np.float64)
    produce = np.where(usable, grown / np.where(usable, spread, 1.0), np.nan)
    before = _carried(known)[rows, np.maximum(last - 1, 0)]
    interval = np.where((count >= 2) & (before >= 0), times[last] - times[before], 0.0)
    return produce, interval


def _moves(committed: Ints, times: Floats) -> tuple[Floats, Bools, Floats]:
    """The consume rate of ``rules.rates`` (NaN: unknown), whether ``rules.rewind_of``
    finds a backwards move not yet made good, and the time of the poll before the last
    move (-inf: no move seen)."""
    known = committed != MISSING
    carried = _carried(known)
    index = np.arange(len(committed))
    # the last known value at each column
    value = committed if known.all() else committed[index[:, None], np.maximum(carried, 0)]
    before = np.empty_like(value)
    before[:, 0] = MISSING
    before[:, 1:] = value[:, :-1]
    moved = known.copy()
    moved[:, 0] = False
    moved[:, 1:] &= carried[:, :-1] >= 0
    moved &= committed != before
    count, first, last = _first_last(moved)
    step = np.where(moved, committed - before, 0)
    # the progress between the first move and the last: every forward step after the first
    progress = np.maximum(step, 0).sum(axis=1) - np.maximum(step[index, first], 0)
    spread = times[last] - times[first]
    samples = known.sum(axis=1)
    consume = np.where(count >= 2, progress / np.where(count >= 2, spread, 1.0),
                       np.where((samples >= 2) & (count == 0), 0.0, np.nan))
    # the last backwards move, and the highest offset before it
    backwards = moved & (committed < before)
    back_rows = np.flatnonzero(backwards.any(axis=1))
    back = backwards.shape[1] - 1 - backwards[back_rows, ::-1].argmax(axis=1)
    peak = np.maximum.accumulate(value[back_rows], axis=1)[np.arange(len(back_rows)),
                                                            np.maximum(back - 1, 0)]
    rewound = np.zeros(len(committed), dtype=np.bool_)
    rewound[back_rows] = value[back_rows, -1] < peak
    prior = carried[index, np.maximum(last - 1, 0)]
    moved_at = np.where(count > 0, times[prior], -np.inf)
    return consume, rewound, moved_at


def _time_lag(committed: Ints, ends: Ints, times: Floats, produce: Floats, *, now: float,
              cap_s: float) -> tuple[Floats, Bools]:
    """``rules.time_lag`` (NaN: unknown) and whether it was extrapolated."""
    known = ends != MISSING
    count, first, last = _first_last(known)
    carried = _carried(known)
    rows = np.arange(len(ends))
    target = committed + 1
    reached = known & (ends >= target[:, None])
    at = reached.argmax(axis=1)
    inside = reached.any(axis=1) & (at != first)
    prior = carried[rows, np.maximum(at - 1, 0)]
    t0, e0 = times[prior], ends[rows, prior]
    t, end = times[at], ends[rows, at]
    with np.errstate(divide="ignore", invalid="ignore"):
        written = t0 + (target - e0) / (end - e0) * (t - t0)
        exact = np.maximum(0.0, now - written)
        oldest_t, oldest_end = times[first], ends[rows, first]
        by_rate = oldest_t - (oldest_end - target) / produce
    rate_known = ~np.isnan(produce) & (produce > 0)
    guessed_at = np.where(rate_known, by_rate, oldest_t)
    guessed = np.minimum(cap_s, np.maximum(0.0, now - guessed_at))
    guessable = rate_known | (count >= 2)
    caught_up = committed >= ends[rows, last]
    lag_s = np.where(caught_up, 0.0, np.where(
        inside, exact, np.where(guessable, guessed, np.nan)))
    lag_s = np.where(count == 0, np.nan, lag_s)
    extrapolated = ~caught_up & ~inside & guessable & (count > 0)
    return lag_s, extrapolated


def _verdicts(rows: _Columns, n: _Numbers, snapshot: Snapshot, span_s: float, *,
              s: DetectionSettings, memory: Memory) -> Assessed:
    """Find the plain groups (every row plain, no topic above its near-zero level) and
    build their assessments."""
    members, lag = np.array(rows.members), n.lag
    retention = [snapshot.retention.get(tp[0]) for tp in rows.tps]
    eta = _retention_eta(n, members, np.array(
        [np.nan if r is None or r.retention_s is None else r.retention_s for r in retention]))
    plain = (lag == 0) | (members == 0) | (
        n.moving & (np.array(rows.recommits) < RECOMMITS_STALLED)
        & (span_s >= s.min_duration_s) & ~(eta <= s.retention_horizon_s))
    # a topic whose summed lag is at the near-zero level is not lagging (flow.is_lagging)
    topics: dict[str, int] = {}
    topic = np.array([topics.setdefault(tp[0], len(topics)) for tp in rows.tps])
    owners = np.array(rows.owners)
    _, flow = np.unique(owners * len(topics) + topic, return_inverse=True)
    active = members > 0
    summed = np.bincount(flow, weights=np.where(active, lag, 0))
    level = np.bincount(flow, weights=np.where(active, n.near_zero, 0.0))
    bad = ~plain | n.rewound | (summed > level)[flow]
    good = ~(np.bincount(owners, weights=bad) > 0)[owners]
    with np.errstate(divide="ignore", invalid="ignore"):
        catchup = np.where(n.consume > n.produce, lag / (n.consume - n.produce), np.nan)
    judged_span = span_s >= s.min_duration_s
    lagging, lost = memory.lagging, memory.loss_counted_to
    result: Assessed = {}
    chosen = np.flatnonzero(good).tolist()
    columns = zip(chosen, lag[good].tolist(), members[good].tolist(), _known(n.produce[good]),
                  _known(n.consume[good]), _known(n.lag_s[good]), n.extrapolated[good].tolist(),
                  _known(eta[good]), _known(catchup[good]), strict=True)
    for k, behind, members_k, produce, consume, lag_s, extrapolated, eta_k, catchup_k in (
            columns):
        group_id, tp = rows.groups[k], rows.tps[k]
        if behind == 0:
            status = Status.IDLE if produce == 0 and judged_span else Status.OK
            assessment = Assessment(status, None, lag_messages=0, lag_seconds=lag_s,
                                    lag_seconds_extrapolated=extrapolated,
                                    produce_rate=produce, consume_rate=consume,
                                    catchup_eta_s=0.0)
        elif not members_k:
            kept = retention[k]
            noun = "offsets" if kept is not None and kept.compacted else "messages"
            assessment = Assessment(
                Status.STOPPED, f"{tp[0]}[{tp[1]}] has {behind:,} unread {noun} and no "
                "consumer", lag_messages=behind, lag_seconds=lag_s,
                lag_seconds_extrapolated=extrapolated, produce_rate=produce,
                consume_rate=consume, retention_eta_s=eta_k)
        else:
            assessment = Assessment(
                Status.OK, None, lag_messages=behind, lag_seconds=lag_s,
                lag_seconds_extrapolated=extrapolated, produce_rate=produce,
                consume_rate=consume, catchup_eta_s=catchup_k, retention_eta_s=eta_k)
        result.setdefault(group_id, {})[tp] = assessment
        if lagging:
            lagging.discard((group_id, tp[0]))
        if lost:
            lost.pop((group_id, tp[0], tp[1]), None)
    return result


def _known(values: Floats) -> list[float | None]:
    """The values, None where NaN (unknown)."""
    return [None if math.isnan(v) else v for v in values.tolist()]


def _retention_eta(n: _Numbers, members: Ints, retention_s: Floats) -> Floats:
    """``rules.retention_eta`` (NaN: None) of every row."""
    consumed = np.nan_to_num(n.consume)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(n.produce > 0, 1.0 - consumed / n.produce,
                          np.where((consumed == 0) | (members == 0), 1.0, -1.0))
        remaining = retention_s - n.lag_s
        eta = np.where(remaining <= 0, 0.0, np.where(growth > 0, remaining / growth, np.nan))
    return np.where((n.lag > 0) & ~np.isnan(remaining), eta, np.nan)
