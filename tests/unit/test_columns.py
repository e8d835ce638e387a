"""The columnar path (detect.columns) against the per-partition rules, its reference:
on random histories, every group both judge gets the same assessments, to the bit, and
leaves detection's memory the same."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from lagwatch.detect.assess import assess
from lagwatch.detect.columns import plain_groups
from lagwatch.detect.commits import CommitClocks
from lagwatch.detect.history import History
from lagwatch.detect.rules import DetectionSettings, Memory
from lagwatch.model import GroupSnapshot, LogOffsets, Member, Retention, Snapshot, Unread
from lagwatch.records import OffsetCommit
from lagwatch.status import Status

S = DetectionSettings(window_s=300.0, min_duration_s=60.0, stall_after_s=30.0,
                      max_extrapolation_s=900.0)
TOPICS = ("orders", "refunds")
RETENTIONS = (None, Retention(retention_s=600.0), Retention(retention_s=None),
              Retention(retention_s=20.0),
              Retention(retention_s=400.0, cleanup_policy="compact,delete"))


@dataclass
class Poll:
    """What changes from one poll to the next, drawn at random."""

    gap_s: float
    written: list[int]  # per partition
    read: list[list[int]]  # per group, per partition: how far it reads on; -1 none,
    # -2 up to 1 behind the end
    members: list[int | None]  # per group; None: not described
    dropped: set[int]  # partitions this poll did not see
    rewind: int | None  # a group that moves back
    loss: int | None  # a partition whose log start passes everything
    held: int | None  # a partition an open transaction holds
    fetched: bool  # whether the first group's first partition's unread records were read
    retry: int | None = None  # a group that commits where it stands 12 more times


PARTITIONS = [(t, p) for t in TOPICS for p in range(2)]
GROUPS = ("billing", "audit", "ledger")
READ = st.sampled_from([0, 1000, 1000, 1000, 3, -1, -2, -2])


@st.composite
def polls(draw: st.DrawFn) -> list[Poll]:
    """Groups that mostly keep their members and their pace, with the odd change."""
    members = draw(st.lists(st.sampled_from([0, 1, 1, 2, None]), min_size=3, max_size=3))
    pace = draw(st.lists(READ, min_size=3, max_size=3))
    made = []
    for _ in range(draw(st.integers(1, 30))):
        poll = draw(st.builds(
            Poll,
            gap_s=st.sampled_from([0.5, 5.0, 15.0, 15.0, 30.0, 200.0]),
            written=st.lists(st.sampled_from([0, 0, 1, 7, 40]), min_size=4, max_size=4),
            read=st.lists(st.lists(READ, min_size=4, max_size=4), min_size=3, max_size=3),
            members=st.lists(st.sampled_from([0, 0, 1, 2, None]), min_size=3, max_size=3),
            dropped=st.sets(st.integers(0, 3), max_size=1),
            rewind=st.one_of(*[st.none()] * 6, st.integers(0, 2)),
            loss=st.one_of(*[st.none()] * 6, st.integers(0, 3)),
            held=st.one_of(*[st.none()] * 6, st.integers(0, 3)),
            fetched=st.booleans(),
            retry=st.one_of(*[st.none()] * 3, st.integers(0, 2))))
        for g in range(3):
            if draw(st.integers(0, 9)):  # most polls: as before
                poll.members[g], poll.read[g] = members[g], [pace[g]] * 4
        made.append(poll)
    return made


def snapshots(drawn: list[Poll], retention: Retention | None) -> list[Snapshot]:
    """The polls as snapshots: log ends grow, groups read on (or stop, or move back)."""
    ends = [100] * 4
    starts = [0] * 4
    committed = [[100] * 4 for _ in GROUPS]
    t = 1.79e9
    made = []
    for poll in drawn:
        t += poll.gap_s
        ends = [e + w for e, w in zip(ends, poll.written, strict=True)]
        # read_committed consumers read up to the transaction holding a partition
        readable = [e - 5 if k == poll.held else e for k, e in enumerate(ends)]
        for g, reads in enumerate(poll.read):
            for k, step in enumerate(reads):
                committed[g][k] = (committed[g][k] - 50 if g == poll.rewind
                                   else min(readable[k], committed[g][k] + step) if step >= 0
                                   else max(committed[g][k], readable[k] - 1) if step == -2
                                   else committed[g][k])
        if poll.loss is not None:
            starts[poll.loss] = ends[poll.loss] - 1
        offsets = {tp: LogOffsets(starts[k], ends[k], readable[k])
                   for k, tp in enumerate(PARTITIONS) if k not in poll.dropped}
        groups = {}
        for g, name in enumerate(GROUPS):
            members = poll.members[g]
            assigned = tuple(PARTITIONS[:2]) if members else ()
            groups[name] = GroupSnapshot(
                name, "Stable" if members else "Empty",
                members=None if members is None else tuple(
                    Member(f"m{i}", "c", "/127.0.0.1", assignment=assigned if i == 0 else ())
                    for i in range(members)),
                committed={tp: committed[g][k] for k, tp in enumerate(PARTITIONS)
                           if not (g == 2 and k == 3)})  # ledger never reads refunds[1]
        c0 = committed[0][0]
        unread = {(PARTITIONS[0], c0): Unread(c0, t - 9.0, c0, ends[0], True, ends[0] - c0)
                  } if poll.fetched and c0 < ends[0] else {}
        records = tuple((t - 0.5, OffsetCommit(name, tp[0], tp[1], committed[g][k]))
                        for g, name in enumerate(GROUPS) for k, tp in enumerate(PARTITIONS))
        if poll.retry is not None:
            records += tuple((t - 0.4 + i / 40, OffsetCommit(GROUPS[poll.retry], tp[0], tp[1],
                                                             committed[poll.retry][k]))
                             for i in range(12) for k, tp in enumerate(PARTITIONS))
        made.append(Snapshot("default", t, 0.1, up=True, groups=groups, offsets=offsets,
                             retention={TOPICS[0]: retention} if retention else {},
                             unread=unread, commit_records=records, records_exact=True))
    return made


def judged_alike(drawn: list[Poll], retention: Retention | None, records: bool
                 ) -> Memory:
    """Judge the polls both ways, check they agree at every poll; return the memory.
    The columns are also worked out 5 rows at a time, so that blocks end inside groups."""
    history, memory, reference = History(S.window_s, 20), Memory(), Memory()
    clocks = CommitClocks(S.window_s) if records else None
    for snapshot in snapshots(drawn, retention):
        history.observe(snapshot)
        for at, record in snapshot.commit_records:
            if clocks is not None:
                clocks.observe(record, at)
        before = copy.deepcopy(memory)
        expected = assess(snapshot, history, S, reference, commits=clocks, columns=False)
        assert assess(snapshot, history, S, memory, commits=clocks) == expected
        assert memory == reference
        in_blocks = plain_groups(snapshot, history, S, before, clocks, block=5)
        assert in_blocks == {group: expected[group] for group in in_blocks}
    return memory


@settings(max_examples=6 * settings.default.max_examples)  # two paths, many branches
@given(drawn=polls(), retention=st.sampled_from(RETENTIONS), records=st.booleans())
def test_the_columns_say_what_the_per_partition_rules_say(
        drawn: list[Poll], retention: Retention | None, records: bool) -> None:
    judged_alike(drawn, retention, records)


def poll(read: list[int], members: list[int | None]) -> Poll:
    """15 s later, 10 messages more on each partition, each group reading ``read``."""
    return Poll(15.0, [10] * 4, [[r] * 4 for r in read], members, set(), None, None, None,
                False)


def test_a_group_that_catches_up_is_no_longer_remembered_lagging() -> None:
    # Given a member reading 3 of every 10 messages for 3 minutes: lagging
    slow = [poll([1000, 1000, 3], [1, 1, 1]) for _ in range(12)]
    assert judged_alike(slow, None, records=True).lagging == {
        ("ledger", "orders"), ("ledger", "refunds")}
    # When it catches up, Then it is plain, and forgotten as lagging
    assert judged_alike([*slow, poll([1000, 1000, 1000], [1, 1, 1])], None,
                        records=True).lagging == set()


def test_a_member_that_moved_but_re_commits_where_it_stands_is_not_plain() -> None:
    # Given 200 messages written at the second poll, one more at the sixth, and a member
    # that read all but two of them, then one more, and re-commits there 12 times
    reads = [0, 198, 0, 0, 0, 1]
    drawn = [Poll(15.0, [200 if k == 1 else 1 if k == 5 else 0] * 4, [[1000] * 4,
                  [1000] * 4, [r] * 4], [1, 1, 1], set(), None, None, None, False)
             for k, r in enumerate(reads)]
    drawn[-1].retry = 2
    # Then, though it moved a poll ago, it is stuck on a message a minute old: both paths
    # say stalled
    history, memory = History(S.window_s, 20), Memory()
    clocks = CommitClocks(S.window_s)
    for snapshot in snapshots(drawn, None):
        history.observe(snapshot)
        for at, record in snapshot.commit_records:
            clocks.observe(record, at)
    assessed = assess(snapshot, history, S, memory, commits=clocks)["ledger"][("orders", 0)]
    assert (assessed.status, assessed.lag_messages, assessed.lag_seconds) == (
        Status.STALLED, 2, 60.0)
    judged_alike(drawn, None, records=True)


def test_plain_groups_are_the_caught_up_and_the_memberless() -> None:
    # Given a caught-up group, one that read 3 a poll and stopped, a member lagging, and
    # one moved back
    drawn = [poll([1000, 3 if k < 3 else 0, 3], [1, 0, 1]) for k in range(6)]
    drawn[-1].rewind = 0
    history = History(S.window_s, 20)
    for snapshot in snapshots(drawn, RETENTIONS[1]):
        history.observe(snapshot)
        plain = plain_groups(snapshot, history, S, Memory())
    # Then the stopped group is the one plain group (the first moved back, the third lags)
    assert set(plain) == {"audit"}
    orders = plain["audit"][("orders", 0)]
    assert (orders.status, orders.reason, orders.lag_messages) == (
        Status.STOPPED, "orders[0] has 51 unread messages and no consumer", 51)
    # it read 3 messages in the 15 s between its two moves; its oldest unread message came
    # at the first poll, 75 s ago; retention takes it when what is left of 600 s runs out
    # at the rate the backlog ages
    produce, consume = 50 / 75.0, 3 / 15.0
    assert (orders.produce_rate, orders.consume_rate) == (produce, consume)
    assert (orders.lag_seconds, orders.lag_seconds_extrapolated, orders.retention_eta_s) == (
        75.0, True, (600.0 - 75.0) / (1.0 - consume / produce))
