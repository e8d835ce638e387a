"""Bounded, time-based windows of offsets: what detection looks back on.

One shared array of poll times per cluster; every series is an array of int64 values
aligned to the *end* of it (a series of length k belongs to the last k poll times), with
-1 where a poll did not see the value. That costs 8 bytes per sample and keeps every
series cheap to slice. Memory is bounded: samples older than the window are dropped and
polls closer together than window / max_samples overwrite the newest sample.

No clock is read here: time comes from each snapshot.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from lagwatch.model import Snapshot, TopicPartition

MAX_SAMPLES = 240  # polls kept per series over the window, by default
MISSING = -1


@dataclass(frozen=True, slots=True)
class Window:
    """Known (time, value) samples of one series, oldest first.

    History hands out compact arrays (8 bytes a sample) rather than tuples: detection
    reads a window per group-partition each poll, and a tuple of 60 samples costs 60 float
    and 60 int objects, four kilobytes where the arrays take one.
    """

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


class History:
    """Offsets over the last ``window_s`` seconds for one cluster."""

    def __init__(self, window_s: float, max_samples: int = MAX_SAMPLES) -> None:
        self.window_s = window_s
        self.spacing_s = window_s / max_samples
        self.times = array("d")
        # the last k poll times, shared by every window of a k-sample series until the next
        # poll (detection reads 200,000 windows a poll, most of them the same length)
        self._tails: dict[int, array[float]] = {}
        self.log_end: dict[TopicPartition, array[int]] = {}
        self.last_stable: dict[TopicPartition, array[int]] = {}
        self.committed: dict[str, dict[TopicPartition, array[int]]] = {}

    def observe(self, snapshot: Snapshot) -> list[str]:
        """Add a successful poll; return a note for every reset it caused."""
        if not snapshot.up:
            return []  # no data is not a sample: rates and trends skip the gap
        t = snapshot.taken_at
        self._tails = {}
        notes = self._resets(snapshot)
        overwrite = len(self.times) >= 2 and t - self.times[-2] < self.spacing_s
        if overwrite:
            self.times[-1] = t
        else:
            self.times.append(t)
        _record(self.log_end, {tp: o.log_end for tp, o in snapshot.offsets.items()},
                overwrite)
        # the LSO only where an open transaction holds it below the log end
        _record(self.last_stable, {tp: o.last_stable for tp, o in snapshot.offsets.items()
                                   if o.held_back and o.last_stable is not None}, overwrite)
        for group_id in list(self.committed):
            if group_id not in snapshot.groups:
                del self.committed[group_id]
                notes.append(f"group {group_id} is gone; its history was dropped")
        for group_id, group in snapshot.groups.items():
            _record(self.committed.setdefault(group_id, {}), dict(group.committed), overwrite)
        self._prune(t - self.window_s)
        return notes

    def _resets(self, snapshot: Snapshot) -> list[str]:
        """Drop the history of partitions whose log end went backwards (topic recreated)."""
        notes = []
        for tp, offsets in snapshot.offsets.items():
            series = self.log_end.get(tp)
            last = _last(series) if series is not None else None
            if last is not None and offsets.log_end < last:
                notes.append(f"{tp[0]}[{tp[1]}] log end went back from {last:,} to "
                             f"{offsets.log_end:,} (topic recreated?); its history was reset")
                self.forget_partition(tp)
        return notes

    def forget_partition(self, tp: TopicPartition) -> None:
        """Drop everything known about one partition."""
        self.log_end.pop(tp, None)
        self.last_stable.pop(tp, None)
        for per_group in self.committed.values():
            per_group.pop(tp, None)

    def _prune(self, cutoff: float) -> None:
        drop = 0
        # keep the newest sample at or before the cutoff so the window is fully covered
        while drop + 1 < len(self.times) and self.times[drop + 1] <= cutoff:
            drop += 1
        if drop:
            del self.times[:drop]
        keep = len(self.times)
        for table in (self.log_end, self.last_stable, *self.committed.values()):
            for key in list(table):
                series = table[key]
                if len(series) > keep:
                    del series[:len(series) - keep]
                if all(v == MISSING for v in series):
                    del table[key]

    def window(self, series: array[int] | None) -> Window:
        """Return a series' known samples with their times."""
        if series is None:
            return Window((), ())
        times = self._tails.get(len(series))
        if times is None:
            times = self._tails[len(series)] = self.times[len(self.times) - len(series):]
        if MISSING not in series:
            return Window(times, series[:])
        known = [k for k, v in enumerate(series) if v != MISSING]
        return Window(array("d", [times[k] for k in known]), array("q", [series[k] for k in known]))

    def end_window(self, tp: TopicPartition) -> Window:
        """Return the log-end offsets of one partition."""
        return self.window(self.log_end.get(tp))

    def held_since(self, tp: TopicPartition) -> float | None:
        """Return since when an open transaction has held the partition's LSO where it is
        now (the first of the latest run of polls that saw it there); None if not held."""
        series = self.last_stable.get(tp)
        if not series or series[-1] == MISSING:
            return None
        k = len(series) - 1
        while k > 0 and series[k - 1] == series[-1]:
            k -= 1
        return self.times[len(self.times) - len(series) + k]

    def committed_window(self, group_id: str, tp: TopicPartition) -> Window:
        """Return one group's committed offsets on one partition."""
        return self.window(self.committed.get(group_id, {}).get(tp))

    def span_s(self) -> float:
        """Return how much time the history covers."""
        return self.times[-1] - self.times[0] if self.times else 0.0


def _last(series: array[int]) -> int | None:
    return next((v for v in reversed(series) if v != MISSING), None)


def _record(table: dict[TopicPartition, array[int]], values: dict[TopicPartition, int],
            overwrite: bool) -> None:
    """Add this poll's value (or MISSING) to every series in a table.

    A series grows into a new array of exactly its length rather than by append: append
    over-allocates, and past 54 samples (512 bytes) every series would move out of
    CPython's small-object pools into malloc, leaving the pools' memory behind (100 MB at
    200,000 series). Exact arrays of a 60-sample window stay under that size.
    """
    for key, series in table.items():
        value = values.get(key, MISSING)
        if overwrite and series:
            series[-1] = value
        else:
            table[key] = series + array("q", (value,))
    for key in values.keys() - table.keys():
        table[key] = array("q", [values[key]])

