"""The log's own truth on the real broker: time lag from record timestamps, transactions
that hold the last stable offset, and compacted topics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from workload import Consumer, JavaConsumer, JavaTransaction, Producer

from lagwatch.daemon import Daemon
from tests.integration.helpers import ScenarioDaemon, commit, status_document, wait_for

WRITTEN_S = 600  # the topic was written once a second for ten minutes, then went silent
STOPPED_AT = 100  # ... and the group stopped at this offset, written 500 s before the end


def _written_and_silent(bootstrap: str, admin: KafkaAdminClient, topic: str) -> float:
    """Write WRITTEN_S records stamped a second apart and ending now; return the time of
    the record at STOPPED_AT."""
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.wait_for_topics([topic])
    end_ms = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for k in range(WRITTEN_S):
        producer.send(topic, b"m", partition=0, timestamp_ms=end_ms - (WRITTEN_S - k) * 1000)
    producer.flush()
    producer.close()
    return (end_ms - (WRITTEN_S - STOPPED_AT) * 1000) / 1000


def _partition(daemon: Daemon, group: str, topic: str) -> tuple[float, dict[str, Any]]:
    """(poll time, the partition's document) once the group's offsets are known."""
    cluster = status_document(daemon)["clusters"]["default"]
    doc = cluster["groups"].get(group, {}).get("topics", {}).get(topic, {})
    polled = datetime.fromisoformat(cluster["last_poll"]).timestamp() if cluster[
        "last_poll"] else 0.0
    return polled, doc.get("partitions", {}).get("0", {})


def test_time_lag_is_the_age_of_the_record_at_the_committed_offset(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    # Given a topic written for ten minutes, then silent, and a group that stopped early
    topic, group = unique("written"), unique("stopped-early")
    written_at = _written_and_silent(kafka_bootstrap, admin, topic)
    commit(kafka_bootstrap, group, topic, {0: STOPPED_AT})
    # When lagwatch watches it, and another that reads no records
    watching = daemon(group)
    guessing = daemon(group, cluster={"record_fetches_per_poll": 0},
                      state_dir=str(tmp_path / "guessing"))
    # Then poll after poll its time lag is the age of the record at the committed offset,
    # exact to the poll (the last_poll stamp is whole seconds), never extrapolated
    seen: list[tuple[float, float]] = []

    def polls() -> bool:
        polled, p = _partition(watching, group, topic)
        if p.get("lag_seconds") is not None and (not seen or seen[-1][0] != polled):
            assert (p["lag_messages"], p["lag_seconds_exact"],
                    p["lag_seconds_extrapolated"]) == (WRITTEN_S - STOPPED_AT, True, False)
            seen.append((polled, p["lag_seconds"]))
        return len(seen) >= 8

    wait_for(polls, "8 polls with a time lag", timeout_s=60)
    for polled, lag_s in seen:
        assert polled - written_at - 1.0 <= lag_s <= polled - written_at + 1.0, (
            f"time lag {lag_s} at {polled}: the record is {polled - written_at:.1f}s old")
    # And without reading records the figure is only the window's estimate
    _, estimated = wait_for(lambda: (r := _partition(guessing, group, topic))[1].get(
        "lag_seconds") is not None and r, "an estimated time lag")
    assert estimated["lag_seconds_exact"] is False
    assert estimated["lag_seconds"] < seen[-1][1] - 100


def _timestamp(bootstrap: str, topic: str, offset: int) -> float:
    """The timestamp (epoch seconds) of the record at ``offset`` of partition 0."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                           consumer_timeout_ms=10000)
    reader.assign([TopicPartition(topic, 0)])
    reader.seek(TopicPartition(topic, 0), offset)
    record = next(iter(reader))
    reader.close()
    return float(record.timestamp) / 1000


def test_time_lag_stays_the_record_s_age_after_the_producers_stop(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    # Given two daemons with a 30 s window watching a group that stopped early on a topic
    # written at 10 msg/s for 20 s, one reading records and one estimating
    topic, group = unique("slowing"), unique("stopped-early")
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.wait_for_topics([topic])
    short = {"detection": {"window": "30s", "min_duration": "10s", "stall_after": "10s"}}
    exact = daemon(group, **short)
    guessing = daemon(group, cluster={"record_fetches_per_poll": 0},
                      state_dir=str(tmp_path / "guessing"), **short)
    writer = Producer(kafka_bootstrap, [topic], 10.0)
    writer.start()
    try:
        wait_for(lambda: admin.list_partition_offsets({TopicPartition(topic, 0): -1})[
            TopicPartition(topic, 0)].offset >= 50, "50 messages written")
        commit(kafka_bootstrap, group, topic, {0: 50})
        wait_for(lambda: admin.list_partition_offsets({TopicPartition(topic, 0): -1})[
            TopicPartition(topic, 0)].offset >= 200, "20 s of writing")
    finally:
        writer.stop()
    written_at = _timestamp(kafka_bootstrap, topic, 50)
    # When the producers have stopped for two windows
    seen: list[tuple[float, float]] = []

    def polls() -> bool:
        polled, p = _partition(exact, group, topic)
        if p.get("lag_seconds_exact") and (not seen or seen[-1][0] != polled):
            seen.append((polled, p["lag_seconds"]))
        return bool(seen) and seen[-1][0] - seen[0][0] >= 60

    wait_for(polls, "a minute of polls after the producers stopped", timeout_s=120)
    # Then every poll's time lag is the age of the record at offset 50, to the poll
    for polled, lag_s in seen:
        assert polled - written_at - 1.0 <= lag_s <= polled - written_at + 1.0, (
            f"time lag {lag_s} at {polled}: the record is {polled - written_at:.1f}s old")
    # And the estimate, its last write long out of its window, is not
    polled, estimated = _partition(guessing, group, topic)
    assert estimated["lag_seconds_exact"] is False
    assert abs(estimated["lag_seconds"] - (polled - written_at)) > 5, estimated


def _findings(watched: ScenarioDaemon, kind: str) -> list[dict[str, str]]:
    cluster = status_document(watched.daemon)["clusters"]["default"]
    return [f for f in cluster["findings"] if f["kind"] == kind]


def test_an_open_transaction_is_named_and_read_committed_readers_are_not_stalled(
        kafka_bootstrap: str, admin: KafkaAdminClient, java: str, tmp_path: Path) -> None:
    run = str(int(time.time() * 1000))
    topic = f"txn-{run}"
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.wait_for_topics([topic])
    # Given a Java transactional producer that commits 3 transactions, then leaves one
    # open (the broker aborts it 30 s after it began), while others keep writing
    with ExitStack() as started:  # whatever fails, everything started is stopped
        txn = JavaTransaction(java, kafka_bootstrap, topic, f"payments-{run}", commits=3,
                              records=5, timeout_ms=30_000).start()
        started.callback(txn.stop)
        assert txn.joined.wait(60), "the transactional producer never opened its transaction"
        writer = Producer(kafka_bootstrap, [topic], 20.0)
        writer.start()
        started.callback(writer.stop)
        # And a read_committed Java group and a read_uncommitted kafka-python group on it
        committed = JavaConsumer(java, kafka_bootstrap, topic, f"txn-committed-{run}",
                                 "classic", isolation="read_committed").start()
        started.callback(committed.stop)
        uncommitted = Consumer(kafka_bootstrap, topic, f"txn-uncommitted-{run}")
        uncommitted.start()
        started.callback(uncommitted.stop)
        assert committed.joined.wait(60) and uncommitted.joined.wait(60)
        watched = ScenarioDaemon(kafka_bootstrap, tmp_path, f"^txn-.*-{run}$")
        started.callback(watched.stop)
        watched.start(committed.group, uncommitted.group)
        # Then the hanging transaction is named, with its partition and transactional id
        found = wait_for(lambda: _findings(watched, "hanging_transaction"),
                         "a hanging_transaction finding", timeout_s=60)
        reason = found[0]["reason"]
        assert found[0]["severity"] == "warning"
        assert reason.startswith(
            f"{topic}[0]: an open transaction has held the last stable offset at 33 for ")
        assert (f"read_committed consumers ({committed.group}) wait behind it; "
                f"transactional id 'payments-{run}' (producer id ") in reason
        doc = watched.groups()[committed.group]
        assert doc["reasons"][0].startswith(
            f"{topic}[0]: an open transaction holds back read_committed consumers at offset "
            f"33 since ")
        assert doc["topics"][topic]["partitions"]["0"]["last_stable"] == 33
        # When the producer goes away and the broker aborts the transaction
        txn.stop()
        wait_for(lambda: not _findings(watched, "hanging_transaction"),
                 "the finding to clear once the broker aborted the transaction", timeout_s=90)
        wait_for(lambda: watched.groups()[committed.group]["reasons"] == [],
                 "the read_committed group's reason to clear", timeout_s=30)
        # Then neither group was ever anything but ok (or unknown while history was short)
        for group in (committed.group, uncommitted.group):
            assert set(watched.statuses[group]) <= {"ok", "unknown"}, (
                group, watched.statuses[group])
        assert watched.groups()[committed.group]["status"] == "ok"


COMPACT = {"cleanup.policy": "compact", "segment.ms": "200", "min.cleanable.dirty.ratio": "0.01",
           "max.compaction.lag.ms": "1000", "delete.retention.ms": "1000"}


def _compacted_away(reader: KafkaConsumer, topic: str) -> bool:
    """Whether the log cleaner has removed offsets from the start of the topic: the first
    200 records read from offset 0 (however long a loaded machine takes to fetch them)
    span more offsets than records."""
    tp = TopicPartition(topic, 0)
    reader.assign([tp])
    reader.seek(tp, 0)
    offsets: list[int] = []
    deadline = time.monotonic() + 30
    while len(offsets) < 200 and time.monotonic() < deadline:
        offsets += [r.offset for batch in reader.poll(timeout_ms=1000).values()
                    for r in batch]
    return len(offsets) > 1 and offsets[-1] - offsets[0] + 1 > len(offsets)


def test_a_slow_reader_of_a_compacted_topic_is_warned_unless_the_compaction_lag_covers_it(
        kafka_bootstrap: str, admin: KafkaAdminClient, tmp_path: Path) -> None:
    run = str(int(time.time() * 1000))
    eager, patient = f"compact-eager-{run}", f"compact-patient-{run}"
    # Given two compacted topics cleaned aggressively, one keeping records whole an hour
    admin.create_topics([NewTopic(eager, 1, 1, topic_configs=COMPACT),
                         NewTopic(patient, 1, 1, topic_configs={
                             **COMPACT, "min.compaction.lag.ms": "3600000",
                             "max.compaction.lag.ms": "7200000"})])
    admin.wait_for_topics([eager, patient])
    # And updates to 10 keys at 20 msg/s on both, read by slow readers at 2 msg/s
    writer = Producer(kafka_bootstrap, [eager, patient], 20.0,
                      key=lambda n: f"key-{n % 10}".encode())
    slow = {t: Consumer(kafka_bootstrap, t, f"compact-reader-{t}", rate=2.0)
            for t in (eager, patient)}
    # And a stopped group at the start of the eager topic, once the cleaner has been by
    with ExitStack() as started:  # whatever fails, everything started is stopped
        writer.start()
        started.callback(writer.stop)
        reader = started.enter_context(closing(
            KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)))
        # the cleaner runs on the broker's own schedule: on a loaded machine it has taken
        # over 180 s (a quiet one about 60)
        wait_for(lambda: _compacted_away(reader, eager), "the log cleaner to compact",
                 timeout_s=360)
        stopped = f"compact-stopped-{run}"
        commit(kafka_bootstrap, stopped, eager, {0: 0})
        watched = ScenarioDaemon(kafka_bootstrap, tmp_path, f"^compact-.*-{run}$")
        for consumer in slow.values():
            consumer.start()
            started.callback(consumer.stop)
        assert all(c.joined.wait(60) for c in slow.values())
        started.callback(watched.stop)
        watched.start(stopped, *(c.group for c in slow.values()))
        # Then the eager topic's slow reader is warned, naming the setting and the fix
        wait_for(lambda: "compaction_overtakes" in watched.alarms[slow[eager].group],
                 "compaction_overtakes on the eager topic's reader", timeout_s=90)
        reason = watched.alarms[slow[eager].group]["compaction_overtakes"]
        assert reason.startswith(f"{eager}: the oldest unread record is ")
        assert ("min.compaction.lag.ms is 0 (0s): the log cleaner can remove updates before "
                "this group reads them") in reason
        assert reason.endswith("raise min.compaction.lag.ms above the group's worst time "
                               "lag, or fix the consumer")
        # And the patient topic's reader, as far behind, is not
        wait_for(lambda: (watched.groups()[slow[patient].group]["lag_seconds"] or 0) > 30,
                 "the patient topic's reader to fall 30 s behind", timeout_s=90)
        assert "compaction_overtakes" not in watched.alarms[slow[patient].group]
        # And the stopped group's unread count says offsets, and how many records remain
        part = watched.groups()[stopped]["topics"][eager]["partitions"]["0"]
        assert part["compacted_away"] > 0
        assert part["reason"].startswith(
            f"{eager}[0] has {part['lag_messages']:,} unread offsets")


def test_a_stopped_group_s_unread_count_leaves_out_markers_and_aborted_records(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str]) -> None:
    # Given two committed transactions of 10 and an aborted one of 40 (its records written
    # before the abort), then a stopped group at the start
    topic, group = unique("aborted"), unique("stopped-txn")
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.wait_for_topics([topic])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=topic)
    producer.init_transactions()
    for count, commits in ((10, True), (10, True), (40, False)):
        producer.begin_transaction()
        for _ in range(count):
            producer.send(topic, b"m", partition=0)
        producer.flush()
        if commits:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()
    commit(kafka_bootstrap, group, topic, {0: 0})
    # When lagwatch checks it
    result = subprocess.run([sys.executable, "-m", "lagwatch", "check", "--json",
                             "--bootstrap-server", kafka_bootstrap], capture_output=True,
                            text=True, check=False, timeout=120)
    # Then the 63 offsets are 20 messages, 40 aborted records and 3 markers
    doc = json.loads(result.stdout)["clusters"]["default"]["groups"][group]
    part = doc["topics"][topic]["partitions"]["0"]
    assert (part["lag_messages"], part["readable_messages"], part["compacted_away"]) == (
        63, 20, 0)
    assert part["reason"] == (f"{topic}[0] has 63 unread offsets (20 readable messages) and "
                              f"no consumer")
    assert doc["reasons"] == ["no active members while 63 offsets are unread on 1 partition "
                              "(20 readable messages)"]
