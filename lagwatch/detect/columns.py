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
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lagwatch.detect.commits import CommitClocks
from lagwatch.detect.history import MISSING, History
from lagwatch.detect.rules import RECOMMITS_STALLED, Assessment, DetectionSettings, Memory
from lagwatch.model import GroupSnapshot, Retention, Snapshot, TopicPartition
from lagwatch.status import Status

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Assessed = dict[str, dict[TopicPartition, Assessment]]
BLOCK = 4096  # rows worked out together: numpy's temporaries stay a few MB


Row = tuple[str, TopicPartition, int, int, int, int, int, int]
"""group, partition, committed offset, log end, members, commits of the offset since it
last moved, the committed series' row in the history, the log-end series' row."""


def _screen(group_id: str, group: GroupSnapshot, snapshot: Snapshot, history: History, *,
            readable: set[str], commits: CommitClocks | None) -> list[Row]:
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
                     if commits is not None and members and behind else 0, crow, erow))
    return rows


def plain_groups(snapshot: Snapshot, history: History, s: DetectionSettings,
                 memory: Memory, commits: CommitClocks | None = None) -> Assessed:
    """Assess the groups whose verdict is plain (see the module); the others are left
    to the per-partition rules. ``history`` must already hold this snapshot; ``memory``
    is updated for the groups assessed here."""
    readable = {topic for topic, _ in snapshot.offsets}
    rows = [row for group_id, group in snapshot.groups.items()
            for row in _screen(group_id, group, snapshot, history, readable=readable,
                               commits=commits)]
    if not rows:
        return {}
    columns = _Columns(*zip(*rows, strict=True))
    numbers = _Numbers(columns, history, snapshot.taken_at, s)
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


class _Numbers:
    """Every row's numbers, as ``rules.rates``, ``rules.time_lag``, ``rules.near_zero``
    and ``rules.rewind_of`` work them out from the row's windows."""

    def __init__(self, rows: _Columns, history: History, now: float,
                 s: DetectionSettings) -> None:
        times = history.times
        used = len(times)
        current = np.array(rows.committed)
        self.lag = np.maximum(0, np.array(rows.log_end) - current)
        parts: list[tuple[npt.NDArray[Any], ...]] = []
        for block in range(0, len(current), BLOCK):  # bounded temporaries
            take = slice(block, block + BLOCK)
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
    """Build the assessments of the groups found plain, group by group."""
    judged_span = span_s >= s.min_duration_s
    result: Assessed = {}
    blocked = {g for g, r in zip(rows.groups, n.rewound.tolist(), strict=True) if r}
    flows: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    columns = zip(rows.groups, rows.tps, rows.members, rows.recommits, n.lag.tolist(),
                  _known(n.produce), _known(n.consume), _known(n.lag_s),
                  n.extrapolated.tolist(), n.moving.tolist(), n.near_zero.tolist(),
                  strict=True)
    for (group_id, tp, members, recommits, lag, produce, consume, lag_s, extrapolated,
         moving, near_zero) in columns:
        if group_id in blocked:
            continue
        if lag == 0:
            status = Status.IDLE if produce == 0 and judged_span else Status.OK
            assessment = Assessment(status, None, lag_messages=0, lag_seconds=lag_s,
                                    lag_seconds_extrapolated=extrapolated,
                                    produce_rate=produce, consume_rate=consume,
                                    catchup_eta_s=0.0)
        else:
            retention = snapshot.retention.get(tp[0])
            eta = _retention_eta(lag_s, produce, consume, members, retention)
            if not members:
                noun = "offsets" if retention is not None and retention.compacted else (
                    "messages")
                assessment = Assessment(
                    Status.STOPPED, f"{tp[0]}[{tp[1]}] has {lag:,} unread {noun} and no "
                    "consumer", lag_messages=lag, lag_seconds=lag_s,
                    lag_seconds_extrapolated=extrapolated, produce_rate=produce,
                    consume_rate=consume, retention_eta_s=eta)
            elif (moving and recommits < RECOMMITS_STALLED and judged_span
                  and (eta is None or eta > s.retention_horizon_s)):
                catchup = (None if consume is None or produce is None or consume <= produce
                           else lag / (consume - produce))
                assessment = Assessment(
                    Status.OK, None, lag_messages=lag, lag_seconds=lag_s,
                    lag_seconds_extrapolated=extrapolated, produce_rate=produce,
                    consume_rate=consume, catchup_eta_s=catchup, retention_eta_s=eta)
            else:
                blocked.add(group_id)
                continue
        if members:
            flow = flows[group_id, tp[0]]
            flow[0] += lag
            flow[1] += near_zero
        result.setdefault(group_id, {})[tp] = assessment
    # a topic whose summed lag is at the near-zero level is not lagging (flow.is_lagging)
    blocked |= {g for (g, _), (lag, near_zero) in flows.items() if lag > near_zero}
    for group_id in blocked:
        result.pop(group_id, None)
    for group_id, assessments in result.items():
        for tp in assessments:
            memory.lagging.discard((group_id, tp[0]))
            memory.loss_counted_to.pop((group_id, tp[0], tp[1]), None)
    return result


def _known(values: Floats) -> list[float | None]:
    """The values, None where NaN (unknown)."""
    return [None if math.isnan(v) else v for v in values.tolist()]


def _retention_eta(lag_s: float | None, produce: float | None, consume: float | None,
                   members: int, retention: Retention | None) -> float | None:
    """``rules.retention_eta`` for a group-partition behind."""
    if lag_s is None or retention is None or retention.retention_s is None:
        return None
    remaining = retention.retention_s - lag_s
    if remaining <= 0:
        return 0.0
    consumed = consume or 0.0
    if produce and produce > 0:
        growth = 1.0 - consumed / produce
    else:
        growth = 1.0 if consumed == 0 or members == 0 else -1.0
    return remaining / growth if growth > 0 else None
