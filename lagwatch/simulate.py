"""Virtual-time producers and consumers that yield Snapshots, for tests and benchmarks.

A Scenario advances one second at a time: producers append to each partition at their
rate, the consumer reads at most its capacity and commits on its own cadence, and events
(stall, rewind, retention cut, topic recreation, added partitions, members leaving) fire at
set times. Every change in the number of members is a rebalance: a new generation, with
the coordinator's record of it when the commit records are handed over. Every ``poll_s``
it yields what a poll of a real broker would have seen; ``replay`` runs such polls through
lagwatch as the daemon does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from lagwatch.detect.config import DetectionConfig
from lagwatch.detect.verdict import Verdict
from lagwatch.model import GroupSnapshot, LogOffsets, Member, Retention, Snapshot
from lagwatch.pipeline import ClusterJudge
from lagwatch.records import GroupMember, GroupMetadata, GroupRecord, OffsetCommit
from lagwatch.report.latest import LatestReports
from lagwatch.report.view import ClusterReport

Rate = Callable[[float], float]
"""Messages per second at a time (seconds since the start)."""


def constant(rate: float) -> Rate:
    """Return a rate function that never changes."""
    return lambda _t: rate


def step(before: float, after: float, at_s: float) -> Rate:
    """Return a rate that changes from ``before`` to ``after`` at ``at_s``."""
    return lambda t: before if t < at_s else after


def bursts(base: float, peak: float, every_s: float, length_s: float) -> Rate:
    """Return a rate at ``peak`` for ``length_s`` out of every ``every_s``, else ``base``."""
    return lambda t: peak if t % every_s < length_s else base


def noisy(rate: Rate, amplitude: float, seed: int = 1) -> Rate:
    """Return ``rate`` multiplied, second by second, by a seeded factor in 1 +- amplitude."""
    factors = random.Random(seed)  # noqa: S311 - simulation noise, not security
    table = [1.0 + amplitude * (2 * factors.random() - 1) for _ in range(3600)]
    return lambda t: rate(t) * table[int(t) % len(table)]


@dataclass
class _Partition:
    log_start: float = 0.0
    log_end: float = 0.0
    position: float = 0.0
    committed: float | None = 0.0
    stuck: bool = False
    retrying: bool = False  # stuck, yet committing the same offset again and again


@dataclass
class Scenario:
    """One topic, one consumer group, and what happens to them."""

    produce: Rate = field(default_factory=lambda: constant(100.0))
    capacity: Rate = field(default_factory=lambda: constant(1000.0))
    partitions: int = 1
    commit_every_s: float = 5.0
    members: Callable[[float], int] = lambda _t: 1
    """How many members the group has at a time; members leave newest first, and each
    member that joins is a new member id (a restarted client is a new member)."""
    join_twice: bool = False
    """Each joining client joins again a second later (a second generation), as
    kafka-python 3.0 does at start."""
    retention_s: float | None = 7 * 86400.0
    events: dict[float, Callable[[Scenario], None]] = field(default_factory=dict)
    topic: str = "orders"
    group: str = "billing"
    cluster: str = "sim"
    start: float = 1_790_000_000.0
    commits: list[tuple[float, int, int, int]] = field(default_factory=list)
    """Every commit as (time, partition, offset, log end then): what a reader of
    __consumer_offsets sees, for baselines that evaluate each commit."""
    exact_commits: bool = False
    """Hand each snapshot the OffsetCommit records since the previous one, as lagwatch's
    reader of __consumer_offsets does."""
    turn: float | None = None
    """Drain one partition at a time, this many messages a turn (or until it is caught
    up) before moving to the next, as a Java consumer drains each partition's fetched
    records in turn; None reads every partition evenly."""
    _parts: list[_Partition] = field(default_factory=list)
    _since_commit: float = 0.0
    _focus: int = 0
    _turn_read: float = 0.0
    _records: list[tuple[float, OffsetCommit]] = field(default_factory=list)
    _member_ids: list[str] = field(default_factory=list)
    _generation: int = 0
    _rejoin_at: float | None = None
    _back: dict[int, float] = field(default_factory=dict)  # restarted member -> when back
    _now: float = 0.0
    _group_records: list[tuple[float, GroupRecord]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._parts = [_Partition() for _ in range(self.partitions)]
        self._member_ids = [self._member_id(k, 0.0) for k in range(self.members(0.0))]

    # events ---------------------------------------------------------------------------
    def stick(self, partition: int) -> None:
        """Make the consumer stop making progress on one partition (a poison pill)."""
        self._parts[partition].stuck = True

    def stick_retrying(self, partition: int) -> None:
        """Make one partition stuck while the consumer keeps committing the same offset
        (it catches the failure and goes back to the message each time)."""
        self._parts[partition].stuck = self._parts[partition].retrying = True

    def rewind_to_start(self) -> None:
        """Reset the group's offsets to the earliest available (a replay)."""
        for p in self._parts:
            p.position = p.log_start
            p.committed = p.log_start

    def cut_retention(self, keep: float) -> None:
        """Delete all but the last ``keep`` messages of every partition."""
        for p in self._parts:
            p.log_start = max(p.log_start, p.log_end - keep)

    def recreate_topic(self) -> None:
        """Delete and recreate the topic: empty logs, no committed offsets."""
        self._parts = [_Partition(committed=None) for _ in self._parts]

    def add_partitions(self, count: int) -> None:
        """Add partitions to the topic; the group has no commit on them yet."""
        self._parts.extend(_Partition(committed=None) for _ in range(count))

    def restart_member(self, k: int) -> None:
        """Restart member k: it leaves (a rebalance) and comes back from the same host as a
        new member 5 s later (another), as one step of a rolling restart does."""
        self._member_ids.pop(k)
        self._new_generation(self._now)
        self._back[k] = self._now + 5

    # running --------------------------------------------------------------------------
    def run(self, duration_s: float, poll_s: float = 15.0) -> Iterator[Snapshot]:
        """Advance second by second; yield a snapshot every poll_s."""
        for second in range(int(duration_s) + 1):
            t = self._now = float(second)
            if t in self.events:
                self.events[t](self)
            if second % int(poll_s) == 0:
                yield self.snapshot(t)
            self._rebalance(t)  # after the poll: a first poll lists the group, as it is
            self._advance(t)

    def _advance(self, t: float) -> None:
        share = 1.0 / len(self._parts)
        members = len(self._member_ids)
        for p in self._parts:
            p.log_end += self.produce(t) * share
        if members and self.turn is None:
            for p in self._parts:
                self._read(p, self.capacity(t) * share)
        elif members:
            self._drain_in_turn(self.capacity(t))
        self._since_commit += 1.0
        if members and self._since_commit >= self.commit_every_s:
            self._since_commit = 0.0
            for i, p in enumerate(self._parts):
                if p.retrying and p.committed is not None:
                    self.commits.append((t + 1, i, int(p.committed), int(p.log_end)))
                    self._record(t + 1, i, p.committed)
                elif not p.stuck and (p.committed is not None or p.position > 0):
                    p.committed = p.position
                    self.commits.append((t + 1, i, int(p.position), int(p.log_end)))
                    self._record(t + 1, i, p.position)

    def _member_id(self, k: int, t: float) -> str:
        return f"client-{k}-{t:.0f}"

    def _rebalance(self, t: float) -> None:
        """A new generation when members joined or left (or a client's second join)."""
        ids = self._member_ids
        back = [k for k, at in self._back.items() if at == t]
        for k in sorted(back):
            del self._back[k]
            ids.insert(k, self._member_id(k, t))
        n = self.members(t) - len(self._back)
        joined = bool(back) or n > len(ids) or (t == 0 and n > 0)
        if not joined and n == len(ids) and self._rejoin_at != t:
            return
        self._member_ids = ids[:n] + [self._member_id(k, t) for k in range(len(ids), n)]
        self._new_generation(t)
        self._rejoin_at = t + 1 if self.join_twice and joined else None

    def _new_generation(self, t: float) -> None:
        self._generation += 1
        ids = self._member_ids
        if self.exact_commits:
            self._group_records.append((self.start + t, GroupMetadata(
                self.group, self._generation, "consumer", "range", ids[0] if ids else None,
                members=tuple(GroupMember(m, m.rsplit("-", 1)[0], self._host(m))
                              for m in ids))))

    @staticmethod
    def _host(member_id: str) -> str:
        return f"10.0.0.{int(member_id.split('-')[1]) + 1}"

    @staticmethod
    def _read(p: _Partition, most: float) -> float:
        """Read up to ``most`` messages of a partition; return how many were read."""
        if p.stuck:
            return 0.0
        start = max(p.position, p.log_start)
        read = min(max(0.0, p.log_end - start), most)
        p.position = start + read
        return read

    def _drain_in_turn(self, capacity: float) -> None:
        assert self.turn is not None
        for _ in range(len(self._parts)):  # skip partitions with nothing to read
            p = self._parts[self._focus]
            read = self._read(p, min(capacity, self.turn - self._turn_read))
            capacity -= read
            self._turn_read += read
            if self._turn_read >= self.turn or read < 1e-9:  # turn done, or caught up
                self._focus, self._turn_read = (self._focus + 1) % len(self._parts), 0.0
            if capacity <= 0:
                return

    def _record(self, at: float, partition: int, offset: float) -> None:
        if self.exact_commits:
            self._records.append((self.start + at, OffsetCommit(
                self.group, self.topic, partition, int(offset),
                commit_timestamp_ms=int((self.start + at) * 1000))))

    def snapshot(self, t: float) -> Snapshot:
        """Return what a poll at time t would see."""
        tps = [(self.topic, i) for i in range(len(self._parts))]
        n = len(self._member_ids)
        members = tuple(Member(m, m.rsplit("-", 1)[0], self._host(m),
                               assignment=tuple(tps[k::n]))
                        for k, m in enumerate(self._member_ids))
        committed = {tp: int(p.committed) for tp, p in zip(tps, self._parts, strict=True)
                     if p.committed is not None}
        group = GroupSnapshot(self.group, "Stable" if n else "Empty", members=members,
                              committed=committed)
        offsets = {tp: LogOffsets(int(p.log_start), int(p.log_end))
                   for tp, p in zip(tps, self._parts, strict=True)}
        records, self._records = tuple(self._records), []
        group_records, self._group_records = tuple(self._group_records), []
        return Snapshot(self.cluster, self.start + t, 0.01, up=True,
                        groups={self.group: group}, offsets=offsets,
                        retention={self.topic: Retention(self.retention_s)},
                        group_records=group_records, commit_records=records,
                        records_exact=self.exact_commits)


def replay(snapshots: Iterable[Snapshot], judge: ClusterJudge | None = None,
           latest: LatestReports | None = None) -> Iterator[ClusterReport]:
    """Judge and publish each poll in turn, as the daemon does, and yield each report.

    This is how tests and benchmarks run polls through lagwatch: with no ``judge``, one
    with the default detection settings judges them; with no ``latest``, the reports are
    kept in one of their own.
    """
    for snapshot in snapshots:
        if judge is None:
            judge = ClusterJudge(snapshot.cluster, DetectionConfig())
        if latest is None:
            latest = LatestReports([snapshot.cluster], 30.0)
        yield latest.publish(snapshot, judge.ingest(snapshot))


def report_alone(snapshot: Snapshot) -> ClusterReport:
    """Report on one poll judged on its own, as lagwatch's first poll is."""
    return next(replay([snapshot]))


def judged_alone(snapshot: Snapshot) -> Verdict | None:
    """Judge one poll on its own, as lagwatch's first poll is; None for a failed poll."""
    return ClusterJudge(snapshot.cluster, DetectionConfig()).ingest(snapshot)
