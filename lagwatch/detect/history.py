"""Bounded, time-based windows of offsets: what detection looks back on.

Columnar: one array of poll times per cluster, and one matrix per kind of series (log
ends and last stable offsets by partition, committed offsets by group-partition) with a
row per series and a column per poll, ``MISSING`` where a poll did not see the value.
A series keeps its row while it exists (``Rows``), so detection can read every
group-partition's samples as one array. Memory is bounded: samples older than the window
are dropped (the columns shift left) and polls closer together than
window / max_samples overwrite the newest sample; a row whose samples are all missing is
freed for the next new series.

No clock is read here: time comes from each snapshot.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from lagwatch.model import Snapshot, TopicPartition

MAX_SAMPLES = 240  # polls kept per series over the window, by default
MISSING = -1
GroupPartition = tuple[str, TopicPartition]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Window:
    """Known (time, value) samples of one series, oldest first."""

    times: Sequence[float]
    values: Sequence[int]

    def __len__(self) -> int:
        return len(self.times)

    def at(self, t: float) -> int | None:
        """Return the value of the newest sample at or before t."""
        k = bisect_right(self.times, t)
        return self.values[k - 1] if k else None

    def changes(self) -> list[tuple[float, int]]:
        """Return the first sample and every sample whose value differs from the one before."""
        if not self.times:
            return []
        values = self.values
        return [(self.times[0], values[0])] + [
            (t, v) for t, v, before in zip(self.times[1:], values[1:], values, strict=False)
            if v != before]


EMPTY = Window((), ())


class Rows(Generic[K]):
    """A stable row number for each key; the rows of keys dropped are given out again."""

    def __init__(self) -> None:
        self.row: dict[K, int] = {}
        self.key: list[K | None] = []  # by row; None for a free row
        self._free: list[int] = []

    def __len__(self) -> int:
        """The rows in use or free: the height a matrix needs."""
        return len(self.key)

    def add(self, key: K) -> int:
        """Return the key's row, giving it one if it has none."""
        row = self.row.get(key)
        if row is None:
            row = self._free.pop() if self._free else len(self.key)
            if row == len(self.key):
                self.key.append(key)
            else:
                self.key[row] = key
            self.row[key] = row
        return row

    def drop(self, key: K) -> int | None:
        """Free the key's row; return it (None when it had none)."""
        row = self.row.pop(key, None)
        if row is not None:
            self.key[row] = None
            self._free.append(row)
        return row


class Series(Generic[K]):
    """Series of one kind: a row per key, a column per poll of the history."""

    def __init__(self, columns: int) -> None:
        self.rows: Rows[K] = Rows()
        self.columns = columns  # the most a window holds
        self.values = np.full((0, 0), MISSING, dtype=np.int64)

    def fit(self, columns: int) -> None:
        """Make room for every row and ``columns`` columns."""
        height, width = self.values.shape
        if height >= len(self.rows) and width >= columns:
            return
        if height < len(self.rows):
            height = max(len(self.rows), 2 * height, 16)
        if width < columns:
            width = max(columns, min(2 * width, self.columns), 4)
        grown = np.full((height, width), MISSING, dtype=np.int64)
        height, width = self.values.shape
        grown[:height, :width] = self.values
        self.values = grown

    def record(self, values: Mapping[K, int], column: int) -> None:
        """Set one poll's column: ``values`` where given, MISSING for every other row."""
        rows = [self.rows.add(key) for key in values]
        self.fit(column + 1)
        self.values[:, column] = MISSING
        if rows:
            self.values[rows, column] = np.fromiter(values.values(), np.int64, len(rows))

    def drop(self, keys: Iterable[K]) -> None:
        """Forget these series."""
        for key in keys:
            row = self.rows.drop(key)
            if row is not None:
                self.values[row] = MISSING

    def shift(self, drop: int, used: int) -> list[K]:
        """Drop the ``drop`` oldest of ``used`` columns, and the series left with no
        sample; return the keys of those."""
        if drop:
            self.values[:, :used - drop] = self.values[:, drop:used]
            self.values[:, used - drop:used] = MISSING
        empty = np.flatnonzero((self.values[:len(self.rows), :used - drop] == MISSING)
                               .all(axis=1))
        gone = [k for r in empty.tolist() if (k := self.rows.key[r]) is not None]
        self.drop(gone)
        return gone

    def get(self, key: K) -> int | None:
        """The key's row, if it has samples."""
        return self.rows.row.get(key)


class History:
    """Offsets over the last ``window_s`` seconds for one cluster."""

    def __init__(self, window_s: float, max_samples: int = MAX_SAMPLES) -> None:
        self.window_s = window_s
        self.spacing_s = window_s / max_samples
        self.times = np.zeros(0, dtype=np.float64)  # the poll times, oldest first
        self._times: list[float] = []  # the same, as the next poll changes them
        self._shared: tuple[float, ...] = ()  # the same, shared by this poll's windows
        # at most max_samples within the window, and the one before it
        columns = max_samples + 2
        self.log_end: Series[TopicPartition] = Series(columns)
        self.last_stable: Series[TopicPartition] = Series(columns)
        self.committed: Series[GroupPartition] = Series(columns)
        self._groups: dict[str, set[TopicPartition]] = {}  # the partitions of each group

    def observe(self, snapshot: Snapshot) -> list[str]:
        """Add a successful poll; return a note for every reset it caused."""
        if not snapshot.up:
            return []  # no data is not a sample: rates and trends skip the gap
        t = snapshot.taken_at
        notes = self._resets(snapshot)
        times = self._times
        overwrite = len(times) >= 2 and t - times[-2] < self.spacing_s
        if overwrite:
            times[-1] = t
        else:
            times.append(t)
        column = len(times) - 1
        self.log_end.record({tp: o.log_end for tp, o in snapshot.offsets.items()}, column)
        # the LSO only where an open transaction holds it below the log end
        self.last_stable.record({tp: o.last_stable for tp, o in snapshot.offsets.items()
                                 if o.held_back and o.last_stable is not None}, column)
        for group_id in self._groups.keys() - snapshot.groups.keys():
            self.committed.drop((group_id, tp) for tp in self._groups.pop(group_id))
            notes.append(f"group {group_id} is gone; its history was dropped")
        committed: dict[GroupPartition, int] = {}
        for group_id, group in snapshot.groups.items():
            self._groups.setdefault(group_id, set()).update(group.committed)
            committed.update(((group_id, tp), c) for tp, c in group.committed.items())
        self.committed.record(committed, column)
        self._prune(t - self.window_s)
        self.times = np.array(self._times, dtype=np.float64)
        return notes

    def _resets(self, snapshot: Snapshot) -> list[str]:
        """Drop the history of partitions whose log end went backwards (topic recreated)."""
        notes = []
        for tp, offsets in snapshot.offsets.items():
            last = self._last(self.log_end, tp)
            if last is not None and offsets.log_end < last:
                notes.append(f"{tp[0]}[{tp[1]}] log end went back from {last:,} to "
                             f"{offsets.log_end:,} (topic recreated?); its history was reset")
                self.forget_partition(tp)
        return notes

    def _last(self, series: Series[TopicPartition], tp: TopicPartition) -> int | None:
        row = series.get(tp)
        if row is None:
            return None
        known = series.values[row, :len(self._times)]
        known = known[known != MISSING]
        return int(known[-1]) if known.size else None

    def forget_partition(self, tp: TopicPartition) -> None:
        """Drop everything known about one partition."""
        self.log_end.drop([tp])
        self.last_stable.drop([tp])
        for group_id, partitions in self._groups.items():
            if tp in partitions:
                partitions.discard(tp)
                self.committed.drop([(group_id, tp)])

    def _prune(self, cutoff: float) -> None:
        times = self._times
        drop = 0
        # keep the newest sample at or before the cutoff so the window is fully covered
        while drop + 1 < len(times) and times[drop + 1] <= cutoff:
            drop += 1
        self.log_end.shift(drop, len(times))
        self.last_stable.shift(drop, len(times))
        for group_id, tp in self.committed.shift(drop, len(times)):
            self._groups[group_id].discard(tp)
        del times[:drop]
        self._shared = tuple(times)

    def _window(self, series: Series[K], key: K) -> Window:
        """Return a series' known samples with their times."""
        row = series.get(key)
        if row is None:
            return EMPTY
        values = series.values[row, :len(self._times)].tolist()
        if MISSING not in values:
            return Window(self._shared, values)
        known = [k for k, v in enumerate(values) if v != MISSING]
        return Window([self._shared[k] for k in known], [values[k] for k in known])

    def end_window(self, tp: TopicPartition) -> Window:
        """Return the log-end offsets of one partition."""
        return self._window(self.log_end, tp)

    def committed_window(self, group_id: str, tp: TopicPartition) -> Window:
        """Return one group's committed offsets on one partition."""
        return self._window(self.committed, (group_id, tp))

    def held_since(self, tp: TopicPartition) -> float | None:
        """Return since when an open transaction has held the partition's LSO where it is
        now (the first of the latest run of polls that saw it there); None if not held."""
        row = self.last_stable.get(tp)
        if row is None:
            return None
        series = self.last_stable.values[row, :len(self._times)].tolist()
        if not series or series[-1] == MISSING:
            return None
        k = len(series) - 1
        while k > 0 and series[k - 1] == series[-1]:
            k -= 1
        return self._times[k]

    def span_s(self) -> float:
        """Return how much time the history covers."""
        return self._times[-1] - self._times[0] if self._times else 0.0
