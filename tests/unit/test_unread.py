"""The log at committed offsets: record batches read into exact time lag and unread counts,
and what detection makes of them (pure; batches are built as a broker lays them out)."""

from __future__ import annotations

import struct

from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from lagwatch.detect.config import DetectionConfig
from lagwatch.detect.findings import Finding, compaction_overtakes, hanging_transactions
from lagwatch.detect.rules import Assessment
from lagwatch.kafka.unread import Refused, UnreadCache, scan
from lagwatch.model import (
    GroupSnapshot,
    LogOffsets,
    Member,
    OpenTransaction,
    Retention,
    Snapshot,
    Unread,
)
from lagwatch.pipeline import ClusterJudge
from lagwatch.simulate import replay, report_alone
from lagwatch.status import Severity, Status

_CONTROL, _LOG_APPEND_TIME, _GZIP = 0x20, 0x08, 1
_COMMIT, _ABORT = 1, 0
T0 = 1_700_000_000.0


def batch(base: int, deltas: list[int], *, ts_ms: list[int] | None = None, pid: int = -1,
          transactional: bool = False, control: int | None = None,
          log_append_ms: int | None = None, codec: int = 0) -> bytes:
    """One record batch at ``base`` with records at ``base + delta`` (gaps: compaction)."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec,
                                  is_transactional=transactional,
                                  producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                                  base_sequence=0 if pid >= 0 else -1, batch_size=1 << 20)
    stamps = ts_ms or [int(T0 * 1000) + d for d in deltas]
    for delta, ts in zip(deltas, stamps, strict=True):
        key = struct.pack(">hh", 0, control) if control is not None else b"k"
        b.append(delta, timestamp=ts, key=key, value=b"\0" * 6 if control is not None
                 else b"v", headers=[])
    buf = b.build()
    struct.pack_into(">q", buf, 0, base)
    attrs = struct.unpack_from(">h", buf, 21)[0]
    if control is not None:
        attrs |= _CONTROL
    if log_append_ms is not None:
        attrs |= _LOG_APPEND_TIME
        struct.pack_into(">q", buf, 35, log_append_ms)  # MaxTimestamp
    struct.pack_into(">h", buf, 21, attrs)
    return bytes(buf)


def test_the_oldest_unread_record_is_the_one_at_the_committed_offset() -> None:
    data = batch(100, list(range(10)), ts_ms=[int(T0 * 1000) + 1000 * k for k in range(10)])
    assert scan(data, 103, high_watermark=110) == Unread(
        103, T0 + 3.0, 103, 110, complete=True, records=7)


def test_log_append_time_is_the_batch_s_time_for_every_record() -> None:
    data = batch(0, [0, 1, 2], log_append_ms=int(T0 * 1000) + 42_000)
    assert scan(data, 1, high_watermark=3).oldest_at == T0 + 42.0


def test_markers_aborted_and_open_transactions_are_not_readable() -> None:
    data = (batch(0, [0, 1, 2, 3, 4], pid=7, transactional=True)
            + batch(5, [0], pid=7, control=_COMMIT)
            + batch(6, [0, 1, 2], pid=8, transactional=True)
            + batch(9, [0], pid=8, control=_ABORT)
            + batch(10, [0, 1], pid=7, transactional=True))  # still open
    unread = scan(data, 0, high_watermark=12)
    assert unread == Unread(0, T0, 0, 12, complete=True, records=10, aborted=3, pending=2,
                            markers=2)
    assert unread is not None and unread.readable == 5


def test_offsets_compaction_removed_count_as_read_but_not_as_records() -> None:
    data = batch(0, [0, 4]) + batch(5, [3, 5])  # offsets 0, 4, 8, 10 remain
    unread = scan(data, 2, high_watermark=20)
    assert unread == Unread(2, T0 + 0.004, 4, 11, complete=False, records=3)


def test_a_compressed_batch_is_read_and_one_that_cannot_be_is_read_from_its_header() -> None:
    stamps = [int(T0 * 1000) + 1000 * k for k in range(200)]
    data = batch(0, list(range(200)), ts_ms=stamps, codec=_GZIP)
    assert scan(data, 50, high_watermark=200) == Unread(
        50, T0 + 50.0, 50, 200, complete=True, records=150)
    # Given the same batch with its compressed payload damaged
    broken = bytearray(data)
    broken[-20:] = b"\xff" * 20
    # Then the header still gives the offsets, and the batch's newest time: an age that
    # is never more than the true one
    assert scan(bytes(broken), 50, high_watermark=200) == Unread(
        50, T0 + 199.0, 50, 200, complete=True, records=150)


def test_a_record_without_a_timestamp_gives_no_time_lag_but_still_counts() -> None:
    unread = scan(batch(0, [0, 1, 2], ts_ms=[-1, -1, -1]), 1, high_watermark=3)
    assert unread == Unread(1, None, 1, 3, complete=True, records=2)


def test_records_of_the_old_message_format_are_read_one_by_one() -> None:
    old = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for k in range(4):
        old.append(k, timestamp=int(T0 * 1000) + 1000 * k, key=b"k", value=b"v")
    assert scan(bytes(old.build()), 2, high_watermark=4) == Unread(
        2, T0 + 2.0, 2, 4, complete=True, records=2)


def test_nothing_complete_came_back() -> None:
    assert scan(b"", 5, high_watermark=10) is None
    assert scan(batch(0, [0, 1])[:30], 0, high_watermark=2) is None  # cut short


def test_the_cache_fetches_the_longest_waiting_first_and_forgets_offsets_left() -> None:
    cache = UnreadCache(budget=2)
    logs = {("t", 0): LogOffsets(0, 100), ("t", 1): LogOffsets(0, 100),
            ("t", 2): LogOffsets(50, 100)}
    # Given three groups behind and one caught up, and one committed below the log start
    committed = [(("t", 0), 10), (("t", 1), 90), (("t", 1), 100), (("t", 2), 10)]
    assert cache.wanted(committed, logs, now=0.0) == [(("t", 0), 10), (("t", 1), 90)]
    cache.store(1, {(("t", 0), 10): Unread(10, T0, 10, 20, complete=False)}, now=0.0)
    # When a new offset appears, the one still waiting goes first
    committed.append((("t", 0), 50))
    assert cache.wanted(committed, logs, now=15.0) == [(("t", 1), 90), (("t", 0), 50)]
    # Then an offset no group holds any more is forgotten
    assert cache.of([(("t", 0), 10)]) == {(("t", 0), 10): Unread(10, T0, 10, 20, False)}
    cache.wanted([(("t", 1), 90)], logs, now=30.0)
    assert cache.of([(("t", 0), 10)]) == {}


def test_a_whole_count_is_read_again_once_the_log_has_grown() -> None:
    cache = UnreadCache(budget=5)
    key = (("t", 0), 10)
    cache.store(1, {key: Unread(10, T0, 10, 20, complete=True, records=10)}, now=0.0)
    assert cache.wanted([key], {("t", 0): LogOffsets(0, 20)}, now=0.0) == []
    assert cache.wanted([key], {("t", 0): LogOffsets(0, 25)}, now=15.0) == [key]


def test_a_standing_offset_is_read_again_after_a_minute_with_budget_to_spare() -> None:
    cache = UnreadCache(budget=1)
    logs = {("t", 0): LogOffsets(0, 100)}
    old = (("t", 0), 10)
    cache.store(1, {old: Unread(10, T0, 10, 20, complete=False)}, now=0.0)
    assert cache.wanted([old], logs, now=59.0) == []
    assert cache.wanted([old], logs, now=60.0) == [old]
    # an offset never read comes first
    assert cache.wanted([old, (("t", 0), 30)], logs, now=60.0) == [(("t", 0), 30)]


def test_a_topic_lagwatch_may_not_read_is_left_alone_for_ten_minutes() -> None:
    cache = UnreadCache(budget=10)
    logs = {("secret", 0): LogOffsets(0, 100), ("open", 0): LogOffsets(0, 100)}
    committed = [(("secret", 0), 5), (("open", 0), 5)]
    assert cache.wanted(committed, logs, now=0.0) == [(("open", 0), 5), (("secret", 0), 5)]
    # When the broker refuses the read, Then the topic is named once and not asked again
    assert cache.store(2, {(("secret", 0), 5): Refused("secret"), (("open", 0), 5): None},
                       now=0.0) == ["secret"]
    assert cache.wanted(committed, logs, now=599.0) == [(("open", 0), 5)]
    assert cache.wanted(committed, logs, now=600.0) == [(("open", 0), 5), (("secret", 0), 5)]


def snapshot(t: float, committed: int, log: LogOffsets, *, members: int = 1,
             unread: Unread | None = None, topic: str = "orders",
             retention: Retention | None = None) -> Snapshot:
    group = GroupSnapshot("billing", "Stable" if members else "Empty",
                          members=tuple(Member(f"m{k}", "c", "h", assignment=((topic, 0),))
                                        for k in range(members)),
                          committed={(topic, 0): committed})
    return Snapshot("sim", t, 0.1, up=True, groups={"billing": group},
                    offsets={(topic, 0): log},
                    retention={topic: retention or Retention(7 * 86400.0)},
                    unread={((topic, 0), committed): unread} if unread else {})


def test_time_lag_is_the_oldest_unread_record_s_age_once_read() -> None:
    # Given producers that stopped an hour before the log end was first seen
    pipeline = ClusterJudge("sim", DetectionConfig())
    log = LogOffsets(0, 1000)
    for k in range(4):
        pipeline.ingest(snapshot(T0 + 15 * k, 400, log, members=0))
    verdict = pipeline.ingest(snapshot(T0 + 60, 400, log, members=0, unread=Unread(
        400, T0 - 3600, 400, 1000, complete=True, records=600)))
    assert verdict is not None
    a = verdict.assessments["billing"][("orders", 0)]
    # Then the time lag is the record's age, exact, not the window's guess
    assert (a.lag_seconds, a.lag_seconds_exact, a.lag_seconds_extrapolated) == (
        3660.0, True, False)


def test_a_group_waiting_at_the_lso_behind_an_open_transaction_is_ok_and_says_why() -> None:
    # Given a read_committed group at offset 500, where an open transaction holds the LSO
    # while producers go on writing behind it
    # for 7m 15s: past the stall threshold of a cadence never seen (5m)
    reports = list(replay(
        snapshot(T0 + 15 * k, 500, LogOffsets(0, 600 + 100 * k, last_stable=500))
        for k in range(30)))
    group = reports[-1].groups[0]
    # Then it is never stalled or lagging: ok, with the transaction named as the reason
    assert {r.groups[0].status for r in reports} == {Status.OK}
    assert group.reasons == (
        "orders[0]: an open transaction holds back read_committed consumers at offset 500 "
        "since 2023-11-14T22:13:20Z (7m 15s); the producer, not this consumer, is stuck",)
    # And the cluster finding names the partition and the waiting group
    assert reports[-1].verdict.cluster_findings == (Finding(
        "hanging_transaction", Severity.WARNING,
        "orders[0]: an open transaction has held the last stable offset at 500 for 7m 15s, "
        "3,000 offsets below the high watermark; read_committed consumers (billing) wait "
        "behind it", subject="orders[0]"),)


def test_a_group_with_no_members_waiting_at_the_lso_is_not_stopped() -> None:
    log = LogOffsets(0, 900, last_stable=700)
    report = report_alone(snapshot(T0, 700, log, members=0))
    assert (report.groups[0].status, report.groups[0].lag_messages) == (Status.OK, 200)
    # but one below the LSO, with messages it could read, is
    assert report_alone(snapshot(T0, 600, log, members=0)).groups[0].status is Status.STOPPED


def test_a_transaction_open_past_the_brokers_limit_is_critical_and_named() -> None:
    found = hanging_transactions(
        {("orders", 3): LogOffsets(0, 900, last_stable=700)}, {("orders", 3): T0},
        {("orders", 3): OpenTransaction(42, 700, "payments-tx-1")}, {},
        after_s=60.0, timeout_s=900.0, now=T0 + 1000)
    assert found == [Finding(
        "hanging_transaction", Severity.CRITICAL,
        "orders[3]: an open transaction has held the last stable offset at 700 for 16m 40s, "
        "200 offsets below the high watermark; read_committed consumers wait behind it; "
        "transactional id 'payments-tx-1' (producer id 42); that is longer than "
        "transaction.max.timeout.ms (15m), so the coordinator did not abort it: abort it "
        "with kafka-transactions.sh abort --topic orders --partition 3 --start-offset 700",
        subject="orders[3]")]
    # a transaction that has not stood still long is none of this
    assert hanging_transactions(
        {("orders", 3): LogOffsets(0, 900, last_stable=700)}, {("orders", 3): T0}, {}, {},
        after_s=60.0, timeout_s=900.0, now=T0 + 30) == []


def test_a_stopped_group_s_unread_count_says_how_many_are_readable() -> None:
    log = LogOffsets(0, 145)
    unread = Unread(0, T0, 0, 145, complete=True, records=140, aborted=40, markers=5)
    report = report_alone(snapshot(T0, 0, log, members=0, unread=unread))
    a = report.groups[0].topics[0].partitions[0].assessment
    assert (a.status, a.reason, a.readable_messages) == (
        Status.STOPPED, "orders[0] has 145 unread offsets (100 readable messages) and no "
                        "consumer", 100)
    assert report.groups[0].reasons == (
        "no active members while 145 offsets are unread on 1 partition "
        "(100 readable messages)",)


COMPACTED = {"profiles": Retention(None, cleanup_policy="compact", min_compaction_lag_s=60.0)}


def exact(lag_s: float, removed: int = 0) -> Assessment:
    return Assessment(Status.OK, lag_messages=500, lag_seconds=lag_s, lag_seconds_exact=True,
                      compacted_away=removed)


def test_a_reader_behind_the_compaction_lag_is_warned_and_one_within_it_is_not() -> None:
    found = compaction_overtakes({("profiles", 0): exact(30.0), ("profiles", 1): exact(
        400.0, removed=120)}, COMPACTED, floor_s=60.0)
    assert found == [Finding(
        "compaction_overtakes", Severity.WARNING,
        "profiles: the oldest unread record is 6m 40s old (profiles[1]) and "
        "min.compaction.lag.ms is 60,000 (1m): the log cleaner can remove updates before "
        "this group reads them; the cleaner already removed 120 of the offsets ahead of it; "
        "raise min.compaction.lag.ms above the group's worst time lag, or fix the consumer",
        subject="profiles")]
    assert compaction_overtakes({("profiles", 0): exact(59.0)}, COMPACTED, 60.0) == []
    # an estimated time lag is not evidence enough, nor is a topic that deletes
    estimated = Assessment(Status.OK, lag_seconds=400.0)
    assert compaction_overtakes({("profiles", 0): estimated}, COMPACTED, 60.0) == []
    assert compaction_overtakes({("orders", 0): exact(400.0)}, {
        "orders": Retention(86400.0)}, 60.0) == []
