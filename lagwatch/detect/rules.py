"""Partition rules: from a group-partition's offsets over time to a status with its reason.

Pure functions of (history, snapshot, settings, memory, now). Each rule is a small named
predicate whose docstring names the case it exists for. A partition gets the most
concerning status whose rule holds (data_loss > stopped > stalled > rewound > at_risk >
lagging > unknown > idle > ok).

Two rules look beyond the partition (lagwatch.detect.flow): slowness, judged on the
group's lag summed over a topic's partitions, and starvation, a partition frozen while
its member is busy behind on its other partitions.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import pairwise
from operator import sub

from lagwatch.detect.commits import CommitFacts
from lagwatch.detect.history import Window
from lagwatch.model import LogOffsets, Retention, TopicPartition, Unread
from lagwatch.status import Status

UNKNOWN_CADENCE_FACTOR = 5
RECOMMITS_STALLED = 10  # re-commits of one offset, with messages waiting, that mean stuck
RECOMMIT_SPAN_S = 30.0  # ... made over at least this long


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Detection knobs (the ``detection`` config section), in seconds."""

    window_s: float = 1800.0
    min_duration_s: float = 120.0
    stall_after_s: float = 60.0
    retention_horizon_s: float = 6 * 3600.0
    significance_z: float = 2.33
    min_trend_points: int = 6  # fewer rising points cannot reach z = 2.33
    max_extrapolation_s: float = 7 * 86400.0


@dataclass(slots=True)
class Memory:
    """What detection must remember between polls (persisted with the history)."""

    lagging: set[tuple[str, str]] = field(default_factory=set)  # (group, topic)
    loss_counted_to: dict[tuple[str, str, int], int] = field(default_factory=dict)
    lost_total: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rates:
    """Messages per second over the window; None where the window cannot tell."""

    produce: float | None
    consume: float | None
    cadence_s: float
    last_change_t: float | None
    frozen_s: float
    moves: list[tuple[float, int]]  # (time, offset) of each commit seen in the window
    commits: CommitFacts | None = None  # exact facts about the current offset, when read


@dataclass(slots=True)
class Assessment:
    """A group-partition's numbers and status after one poll. Never changed once made;
    not ``frozen`` only because a poll makes one per group-partition, and a frozen
    dataclass takes six times as long to make (1.3 us against 0.2: 55 ms a poll at
    50,000 group-partitions)."""

    status: Status
    reason: str | None = None
    lag_messages: int | None = None
    lag_seconds: float | None = None
    lag_seconds_extrapolated: bool = False
    lag_seconds_exact: bool = False  # the oldest unread record's own timestamp
    readable_messages: int | None = None  # of the unread offsets, when all were read
    compacted_away: int | None = None  # unread offsets compaction removed, when read
    produce_rate: float | None = None
    consume_rate: float | None = None
    catchup_eta_s: float | None = None
    retention_eta_s: float | None = None
    lost_messages: int = 0


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything the rules look at for one group-partition."""

    group: str
    tp: TopicPartition
    committed: int | None
    log: LogOffsets | None
    members: int | None
    committed_w: Window
    end_w: Window
    retention: Retention | None
    now: float
    judge_trend: bool = True  # False for dead-letter topics: too few messages for a trend
    commits: CommitFacts | None = None  # from OffsetCommit records, when they are read
    commits_read: bool = False  # whether OffsetCommit records are read at all
    unread: Unread | None = None  # what a fetch at the committed offset read, when it did
    held_since: float | None = None  # since when an open transaction holds the LSO


def lag_messages(committed: int | None, log: LogOffsets | None) -> int | None:
    """Return log end - committed, clamped at 0; None when either side is unknown."""
    if committed is None or committed < 0 or log is None:
        return None
    return max(0, log.log_end - committed)


def produce_rate(end_w: Window) -> float | None:
    """Messages per second appended over the window; None with fewer than two samples."""
    if len(end_w) >= 2 and end_w.times[-1] > end_w.times[0]:
        return (end_w.values[-1] - end_w.values[0]) / (end_w.times[-1] - end_w.times[0])
    return None


def rates(committed_w: Window, end_w: Window, now: float,
          commits: CommitFacts | None = None) -> Rates:
    """Produce and consume rates, commit cadence, and how long the offset has been frozen.

    The consume rate is the forward progress between the first and last *changes* of
    the committed offset, so a batch consumer that commits every few minutes shows its
    true average rather than zero between commits, and a rewind does not make it negative.
    ``commits`` (from OffsetCommit records) sharpens the cadence and the time of the last
    move; see ``exact_timing``. Records ahead of the poll (a later offset committed since
    the poll read it) say only that the offset moved at this poll: a member handing its
    turn to this partition is not frozen here while the poll has yet to see it.
    """
    produce = produce_rate(end_w)
    changes = committed_w.changes()
    moves = changes[1:]  # the first point is where the window starts, not a commit
    consume = None
    cadence = 0.0
    if len(moves) >= 2:
        times = [t for t, _ in moves]
        offsets = [c for _, c in moves]
        cadence = max(map(sub, times[1:], times))
        if offsets == sorted(offsets):  # the usual case: no rewind in the window
            progress = offsets[-1] - offsets[0]
        else:
            progress = sum(max(0, b - a) for a, b in pairwise(offsets))
        consume = progress / (times[-1] - times[0])
    elif len(committed_w) >= 2 and not moves:
        consume = 0.0
    last_change = changes[-1][0] if changes else None
    if commits is not None and changes and commits.offset == changes[-1][1]:
        cadence, last_change = exact_timing(commits, committed_w, cadence, changes[-1][0])
    else:
        if commits is not None and changes and commits.offset > changes[-1][1]:
            # a commit past what the poll read landed since: the offset moves on, now
            last_change = committed_w.times[-1]
        commits = None  # the records and the poll disagree: a commit landed in between
    frozen = now - last_change if last_change is not None else 0.0
    return Rates(produce, consume, cadence, last_change, frozen, moves, commits)


def exact_timing(c: CommitFacts, committed_w: Window, cadence: float,
                 seen_at: float) -> tuple[float, float]:
    """Cadence and time of the last move, sharpened by the commit records.

    - The move time is the commit's own timestamp, kept between the poll that first saw
      the offset and the poll before it, so a broker clock ahead or behind lagwatch's
      moves it by at most a poll interval.
    - The cadence is the longest gap between moves, measured between commits rather than
      polls. Before two moves are seen, a consumer that keeps committing the same offset
      shows its cadence by doing so: it is alive and is not between batches.
    """
    if c.move_cadence_s > 0:
        cadence = c.move_cadence_s
    elif cadence <= 0 and c.commits_since_move >= 2:
        cadence = c.commit_interval_s
    if c.moved_at is None:
        return cadence, seen_at
    k = bisect_left(committed_w.times, seen_at)
    before = committed_w.times[k - 1] if k > 0 else float("-inf")
    return cadence, min(seen_at, max(before, c.moved_at))


def time_lag(committed: int, end_w: Window, now: float, produce: float | None,
             cap_s: float) -> tuple[float | None, bool]:
    """Age of the oldest unread message, from when the log end passed the committed offset.

    Exact (to the poll) when that happened inside the window; otherwise extrapolated back
    at the window's produce rate, capped, and flagged. Never NaN or infinite.
    """
    if not end_w:
        return None, False
    if committed >= end_w.values[-1]:
        return 0.0, False
    target = committed + 1  # the log end reached this when the oldest unread message landed
    for k, (t, end) in enumerate(zip(end_w.times, end_w.values, strict=True)):
        if end >= target:
            if k == 0:
                break
            t0, e0 = end_w.times[k - 1], end_w.values[k - 1]
            written_at = t0 + (target - e0) / (end - e0) * (t - t0)
            return max(0.0, now - written_at), False
    oldest_t, oldest_end = end_w.times[0], end_w.values[0]
    if produce and produce > 0:
        written_at = oldest_t - (oldest_end - target) / produce
    elif len(end_w) >= 2:
        written_at = oldest_t  # no traffic in the window: at least as old as the window
    else:
        return None, False  # one poll says nothing about when the message was written
    return min(cap_s, max(0.0, now - written_at)), True


def exact_time_lag(unread: Unread | None, now: float) -> float | None:
    """Age of the oldest unread message from its own timestamp, when it was read.

    A producer clock ahead of lagwatch's (CreateTime) cannot make it negative.
    """
    if unread is None or unread.oldest_at is None:
        return None
    return max(0.0, now - unread.oldest_at)


def is_held_by_transaction(committed: int, log: LogOffsets, unread: Unread | None) -> bool:
    """A read_committed consumer that read everything up to the last stable offset waits
    there for an open transaction to end: the producer is stuck, not the consumer.

    It stands at the LSO, or just below it where only transaction markers lie between
    (the fetch at its offset found the first record at or past the LSO).
    """
    if not log.held_back or log.last_stable is None or committed > log.last_stable:
        return False
    return committed == log.last_stable or (
        unread is not None and unread.oldest_offset is not None
        and unread.oldest_offset >= log.last_stable)


def held_since(seen_since: float | None, unread: Unread | None) -> float | None:
    """Since when an open transaction holds the last stable offset: from the first poll
    that saw it there, or earlier when the record at that offset (the transaction's first)
    was read and is older."""
    if unread is None or unread.oldest_at is None:
        return seen_since
    return unread.oldest_at if seen_since is None else min(seen_since, unread.oldest_at)


def compacted_away(unread: Unread | None) -> int | None:
    """Unread offsets that hold no record any more (the log cleaner removed them)."""
    if unread is None:
        return None
    return max(0, unread.read_to - unread.offset - unread.records - unread.markers)


def is_data_loss(committed: int, log: LogOffsets) -> bool:
    """Retention (or delete_records) removed messages the group had not read yet."""
    return committed < log.log_start


def is_stopped(lag: int, members: int | None) -> bool:
    """Nobody is consuming, yet messages wait: a crashed or scaled-to-zero consumer."""
    return members == 0 and lag > 0


def stall_threshold(r: Rates, s: DetectionSettings) -> float:
    """How long an offset may stay frozen before it counts as stalled.

    At least the stall window, and 1.5 commit intervals (room for poll jitter) so a batch
    consumer between commits is not stalled. Until two commits have been seen the cadence
    is unknown, and the threshold is five stall windows: a batch consumer that lagwatch
    has only just started watching gets time to show its cadence.
    """
    if r.cadence_s <= 0:
        return UNKNOWN_CADENCE_FACTOR * s.stall_after_s
    return max(s.stall_after_s, 1.5 * r.cadence_s)


def is_stalled(x: Inputs, lag: int, r: Rates, s: DetectionSettings,
               starved_wait_s: float | None = None) -> bool:
    """Members present, offset frozen, lag waiting: a poison pill or a deadlock.

    A starved partition waits for a slow consumer's turn: it is stalled only once frozen
    longer than ``starved_wait_s`` as well (see ``flow.starved_wait``).
    """
    threshold = stall_threshold(r, s)
    if starved_wait_s is not None:
        threshold = max(threshold, starved_wait_s)
    covered = len(x.committed_w) >= 2 and x.now - x.committed_w.times[0] >= threshold
    return bool(x.members) and lag > 0 and covered and r.frozen_s > threshold


def is_retrying(x: Inputs, lag: int, lag_s: float | None, r: Rates, s: DetectionSettings) -> bool:
    """A consumer committing the same offset again and again while messages wait.

    From the commit records: at least ``RECOMMITS_STALLED`` re-commits over at least
    ``RECOMMIT_SPAN_S``, all made after the oldest unread message arrived, the last one
    recent, and the log end moving meanwhile. That is a poison pill or a retry loop as
    soon as it holds, before the stall threshold passes.
    """
    c = r.commits
    if not x.members or lag <= 0 or lag_s is None or c is None or not c.recommits:
        return False
    waiting_since = x.now - lag_s
    recent = [t for t in c.recommits if t >= waiting_since]
    end_then = x.end_w.at(recent[0]) if recent else None
    return (len(recent) >= RECOMMITS_STALLED
            and c.last_commit_at - waiting_since >= RECOMMIT_SPAN_S
            and x.now - c.last_commit_at <= stall_threshold(r, s)
            and end_then is not None and x.end_w.values[-1] > end_then)


def rewind_of(committed_w: Window) -> tuple[int, int] | None:
    """The last backwards move not yet made good: (position before, position after).

    A replay or an offset reset: the committed offset moved backwards, and the group has
    not yet got back to where it was. Older than the window, it is forgotten.
    """
    values = committed_w.values
    for k in range(len(values) - 1, 0, -1):
        if values[k] < values[k - 1]:
            before = max(values[:k])
            return (before, values[k]) if values[-1] < before else None
    return None


def retention_eta(lag_s: float | None, r: Rates, lag: int, members: int | None,
                  retention: Retention | None) -> float | None:
    """Seconds until retention deletes unread messages at the current pace, if it will.

    The time lag grows by (1 - consume/produce) seconds per second: a stopped group's
    oldest unread message ages in real time, a group keeping pace holds its age.
    """
    if lag <= 0 or lag_s is None or retention is None or retention.retention_s is None:
        return None
    remaining = retention.retention_s - lag_s
    if remaining <= 0:
        return 0.0
    consume = r.consume or 0.0
    if r.produce and r.produce > 0:
        growth = 1.0 - consume / r.produce
    else:
        growth = 1.0 if consume == 0 or members == 0 else -1.0
    return remaining / growth if growth > 0 else None


def near_zero(r: Rates, x: Inputs) -> float:
    """A lag a group keeping up shows anyway: a quarter of a commit interval (or of a poll
    interval, whichever is longer) of traffic."""
    interval = (x.end_w.times[-1] - x.end_w.times[-2]) if len(x.end_w) >= 2 else 0.0
    return max(1.0, (r.produce or 0.0) * max(interval, r.cadence_s) / 4)
