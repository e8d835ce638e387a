"""What an audit needs that one poll cannot show, gathered poll after poll (pure, no clock).

For each watched group: how it commits (the commit requests ``__consumer_offsets``
records, grouped by their commit timestamp), when it was stalled or rewound in the
window, and the latest metadata its coordinator recorded after a rebalance (each member's
session and rebalance timeouts, the assignor).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from lagwatch.detect.verdict import Verdict
from lagwatch.model import Snapshot, TopicPartition
from lagwatch.records import GroupMetadata, OffsetCommit
from lagwatch.status import Status

BATCHES_KEPT = 50  # commit requests kept per group: enough to tell a rhythm
AUTO_INTERVAL_S = 0.9  # auto.commit.interval.ms is a second or more in practice (5 s default)


@dataclass(frozen=True, slots=True)
class CommitBatch:
    """One commit request: the OffsetCommit records a group wrote at one timestamp."""

    at: float
    partitions: int
    unchanged: int  # partitions committed at the offset they already had


@dataclass(frozen=True, slots=True)
class Rewind:
    """A committed offset moved back: messages the group will read again."""

    at: float
    tp: TopicPartition
    messages: int


@dataclass(frozen=True, slots=True)
class CommitRhythm:
    """What a group's commit requests show."""

    batches: int
    interval_s: float  # median gap between requests
    spread_s: float  # how far the gaps stray from it (median absolute deviation)
    whole: int  # requests that carried every partition the group commits
    partitions: int  # partitions the group commits
    commits: int  # partition commits in all
    unchanged: int  # of those, at the offset the partition already had

    @property
    def regular(self) -> bool:
        """Whether requests come at a steady beat: auto-commit fires at the first poll
        after each interval, so its gaps stray by up to a poll's length."""
        return self.batches >= 4 and self.spread_s <= 0.25 * self.interval_s

    @property
    def looks_automatic(self) -> bool:
        """The signature of auto-commit: a steady beat of a second or more (its interval),
        every partition in every request, and, where there is one partition only, an
        offset committed again unchanged (a timer commits whether or not work was done)."""
        every = self.whole == self.batches and (self.partitions >= 2 or self.unchanged > 0)
        return self.regular and self.interval_s >= AUTO_INTERVAL_S and every

    @property
    def looks_manual(self) -> bool:
        """Commits that follow the work: more than once a second, at no steady beat, or of
        some partitions only."""
        return (not self.regular or self.interval_s < AUTO_INTERVAL_S
                or self.whole < self.batches)


@dataclass(slots=True)
class GroupEvidence:
    """One group's evidence over the window."""

    batches: deque[CommitBatch] = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT))
    stalls: list[float] = field(default_factory=list)  # when each stalled episode began
    stalled: bool = False  # stalled at the latest poll
    rewinds: list[Rewind] = field(default_factory=list)
    metadata: GroupMetadata | None = None
    # at polls where the group advanced: (when, messages its topics' DLQs took in the window)
    dlq_arrivals: list[tuple[float, int]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # as last committed

    @property
    def dlq_arrivals_while_moving(self) -> int:
        """The most DLQ messages seen arrived (in the window) while the group advanced."""
        return max((n for _at, n in self.dlq_arrivals), default=0)

    def rhythm(self) -> CommitRhythm | None:
        """The group's commit rhythm; None before three requests were seen."""
        batches = list(self.batches)
        if len(batches) < 3:
            return None
        gaps = [b.at - a.at for a, b in pairwise(batches)]
        interval = statistics.median(gaps)
        spread = statistics.median(abs(g - interval) for g in gaps)
        return CommitRhythm(len(batches), interval, spread,
                            sum(1 for b in batches if b.partitions == len(self.offsets)),
                            len(self.offsets), sum(b.partitions for b in batches),
                            sum(b.unchanged for b in batches))


class AuditEvidence:
    """Every watched group's evidence of one cluster, kept over ``window_s``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.groups: dict[str, GroupEvidence] = {}
        self.records_read = False
        self._rewound: set[tuple[str, TopicPartition]] = set()  # at the previous poll

    def group(self, group_id: str) -> GroupEvidence:
        """One group's evidence (empty when nothing was seen of it)."""
        return self.groups.get(group_id) or GroupEvidence()

    def observe(self, snapshot: Snapshot, verdict: Verdict,
                replayed: Callable[[str, TopicPartition], int | None] = lambda _g, _tp: None,
                ) -> None:
        """Fold in one judged poll; ``replayed`` says how many messages a rewound
        group-partition will read again (a newly rewound one is a replay)."""
        now = snapshot.taken_at
        self.records_read = snapshot.records_exact
        for gid in snapshot.groups:
            self.groups.setdefault(gid, GroupEvidence())
        for gid in set(self.groups) - set(snapshot.groups):
            del self.groups[gid]
        self._commits(snapshot.commit_records)
        for _at, record in snapshot.group_records:
            if isinstance(record, GroupMetadata) and record.group in self.groups:
                self.groups[record.group].metadata = record
        self._statuses(verdict, now, replayed)
        self._dlq_arrivals(verdict, now)
        self._forget(now - self.window_s)

    def _statuses(self, verdict: Verdict, now: float,
                  replayed: Callable[[str, TopicPartition], int | None]) -> None:
        """Stalled episodes and replays, in one pass over the assessments."""
        rewound = set()
        for gid, per in verdict.assessments.items():
            g, stalled = self.groups[gid], False
            for tp, a in per.items():
                stalled |= a.status is Status.STALLED
                if a.status is Status.REWOUND and (messages := replayed(gid, tp)) is not None:
                    rewound.add((gid, tp))
                    if (gid, tp) not in self._rewound:
                        g.rewinds.append(Rewind(now, tp, messages))
            if stalled and not g.stalled:
                g.stalls.append(now)
            g.stalled = stalled
        self._rewound = rewound

    def _dlq_arrivals(self, verdict: Verdict, now: float) -> None:
        """Messages a source topic's DLQ took while the group consumed the topic."""
        arrived: dict[str, int] = {}  # source topic -> most arrived in one of its DLQs
        for d in verdict.dlqs:
            if d.source and d.arrived:
                arrived[d.source] = max(arrived.get(d.source, 0), d.arrived)
        if arrived:  # the groups consuming a source topic whose DLQ took messages
            for gid, per in verdict.assessments.items():
                sources = {tp[0] for tp, a in per.items()
                           if tp[0] in arrived and (a.consume_rate or 0) > 0}
                if sources:
                    self.groups[gid].dlq_arrivals.append((now, max(arrived[t] for t in sources)))

    def bootstrap(self, metadata: dict[str, GroupMetadata]) -> None:
        """Take the group metadata read from the start of ``__consumer_offsets`` where the
        live records have not told anything newer."""
        for gid, record in metadata.items():
            if gid in self.groups and self.groups[gid].metadata is None:
                self.groups[gid].metadata = record

    def _commits(self, records: Iterable[tuple[float, OffsetCommit]]) -> None:
        requests: dict[tuple[str, float], list[OffsetCommit]] = {}
        for at, record in records:
            if record.group in self.groups and record.offset is not None:
                requests.setdefault((record.group, at), []).append(record)
        for (gid, at), commits in sorted(requests.items(), key=lambda kv: kv[0][1]):
            g = self.groups[gid]
            unchanged = 0
            for c in commits:
                tp = (c.topic, c.partition)
                unchanged += g.offsets.get(tp) == c.offset
                g.offsets[tp] = c.offset or 0
            g.batches.append(CommitBatch(at, len(commits), unchanged))

    def _forget(self, before: float) -> None:
        for g in self.groups.values():
            g.stalls = [t for t in g.stalls if t >= before]
            g.rewinds = [r for r in g.rewinds if r.at >= before]
            g.dlq_arrivals = [a for a in g.dlq_arrivals if a[0] >= before]
            while g.batches and g.batches[0].at < before:
                g.batches.popleft()
