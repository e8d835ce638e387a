"""Exact commit times per group-partition, from OffsetCommit records (pure, no clock reads).

Polls see a committed offset change only at the next poll, so the time of a move is known
to a poll interval and a consumer that commits the same offset again and again looks the
same as one that commits nothing. OffsetCommit records carry the coordinator's commit
timestamp, so a ``CommitClock`` knows:

- when the offset last moved, to the millisecond;
- how often it moves (the longest gap between moves over the window);
- whether the consumer still commits while the offset stands still (alive, retrying a
  poison pill) or has gone silent (hung, blocked).

Only what moved inside lagwatch's view is known: the reader starts at the end of the topic,
so the first commit seen of an offset says only that it moved at or before that commit.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass

from lagwatch.model import TopicPartition
from lagwatch.records import OffsetCommit


@dataclass(frozen=True, slots=True)
class CommitFacts:
    """What the records say about one group-partition's current committed offset."""

    offset: int
    moved_at: float | None  # when the offset became this value; None: before the first seen
    last_commit_at: float
    commits_since_move: int  # commits of this same offset after the one that set it
    move_cadence_s: float  # longest gap between moves over the window; 0 while unknown
    commit_interval_s: float  # gap between the last two commits of any offset; 0 unknown
    recommits: tuple[float, ...] = ()  # times of the latest re-commits of this offset


RECOMMITS_KEPT = 10  # re-commit times kept per group-partition: what the stall rule needs


class _Clock:
    __slots__ = ("gap", "gap_at", "last_at", "moved_at", "offset", "prev_at", "recommits",
                 "since_move")

    def __init__(self, offset: int, at: float) -> None:
        self.offset = offset
        self.moved_at: float | None = None
        self.last_at = at
        self.prev_at: float | None = None
        self.since_move = 0
        self.gap = 0.0
        self.gap_at = at
        self.recommits: deque[float] | None = None  # made at the first re-commit


class CommitClocks:
    """The latest commit facts for every watched group-partition with records seen."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._clocks: dict[str, dict[TopicPartition, _Clock]] = {}

    def observe(self, record: OffsetCommit, at: float) -> None:
        """One OffsetCommit record, committed at ``at`` (the coordinator's timestamp)."""
        tp = (record.topic, record.partition)
        group = self._clocks.setdefault(record.group, {})
        if record.offset is None:  # tombstone: the offset was deleted
            group.pop(tp, None)
            return
        clock = group.get(tp)
        if clock is None:  # one copy of each topic name, however many records carry it
            group[(sys.intern(record.topic), record.partition)] = _Clock(record.offset, at)
            return
        if at < clock.last_at:
            return  # records of one key arrive in order; anything else is not news
        if record.offset != clock.offset:
            if clock.moved_at is not None:
                gap = at - clock.moved_at
                if gap >= clock.gap or at - clock.gap_at > self.window_s:
                    clock.gap, clock.gap_at = gap, at
            clock.offset, clock.moved_at, clock.since_move = record.offset, at, 0
            clock.recommits = None
        else:
            clock.since_move += 1
            if clock.recommits is None:
                clock.recommits = deque(maxlen=RECOMMITS_KEPT)
            clock.recommits.append(at)
        clock.prev_at, clock.last_at = clock.last_at, at

    def facts(self, group: str, tp: TopicPartition) -> CommitFacts | None:
        """Return the facts for a group-partition, or None when no commit was seen."""
        clock = self._clocks.get(group, {}).get(tp)
        if clock is None:
            return None
        interval = clock.last_at - clock.prev_at if clock.prev_at is not None else 0.0
        return CommitFacts(clock.offset, clock.moved_at, clock.last_at, clock.since_move,
                           clock.gap, interval, tuple(clock.recommits or ()))

    def recommits(self, group: str, tp: TopicPartition) -> int:
        """Commits of a group-partition's offset since it last moved (0 when none seen)."""
        clock = self._clocks.get(group, {}).get(tp)
        return 0 if clock is None else clock.since_move

    def forget(self, present: set[str]) -> None:
        """Drop the clocks of groups that no longer exist."""
        for group in self._clocks.keys() - present:
            del self._clocks[group]

    def __len__(self) -> int:
        return sum(map(len, self._clocks.values()))
