"""OffsetFetch and ListOffsets sent directly read what kafka-python's admin calls read, on
the real broker, and leave over what they cannot read cleanly; an answer lagwatch cannot
place leaves the group unknown and the cluster blind, never ok."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka import TopicPartition as KafkaTP
from kafka.protocol.consumer import IsolationLevel, OffsetFetchRequest, OffsetSpec

from lagwatch.cli import EXIT_UNUSABLE, check_status
from lagwatch.config import load_config
from lagwatch.kafka.answers import partition_leaders
from lagwatch.kafka.direct import committed_offsets, log_offsets
from lagwatch.kafka.reader import ClusterReader
from lagwatch.model import LogOffsets
from lagwatch.report.latest import LatestReports
from lagwatch.serve.metrics import Exporter
from lagwatch.simulate import judged_alone
from lagwatch.status import Severity, Status
from tests.exposition import parse
from tests.integration.helpers import commit


def test_committed_offsets_are_the_admin_client_s(
        admin: KafkaAdminClient, make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str]) -> None:
    # Given two groups that committed on some partitions of a topic, and a group that never
    # committed anything
    topic = make_topic([5, 3, 0])
    first, second, never = unique("direct-a"), unique("direct-b"), unique("direct-none")
    commit(kafka_bootstrap, first, topic, {0: 5, 1: 2})
    commit(kafka_bootstrap, second, topic, {2: 0})
    # When their offsets are read directly
    found, left = committed_offsets(admin, [first, second, never])
    # Then each group has exactly its commits, as the admin client reads them
    assert found == {first: {(topic, 0): 5, (topic, 1): 2}, second: {(topic, 2): 0},
                     never: {}}
    assert left == []
    listed = admin.list_group_offsets(dict.fromkeys([first, second, never]))
    assert found == {g: {(tp.topic, tp.partition): om.offset for tp, om in o.items()}
                     for g, o in listed.items()}


def test_log_offsets_are_the_admin_client_s_and_a_partition_without_a_leader_is_left_over(
        admin: KafkaAdminClient, make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str]) -> None:
    # Given a topic with 4 messages on partition 0 and a transaction of 2 still open on it
    topic = make_topic([4, 0])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=topic)
    producer.init_transactions()
    producer.begin_transaction()
    for _ in range(2):
        producer.send(topic, b"open", partition=0)
    producer.flush()
    try:
        known = partition_leaders(admin.describe_topics([topic]))
        gone, broker = unique("gone"), known[(topic, 0)]
        asked = [(topic, 0), (topic, 1), (gone, 0), (gone, 1)]
        # When the log offsets are read directly, with a leader for a topic that does not
        # exist and none for another partition of it
        found, left = log_offsets(admin, asked, {**known, (gone, 0): broker})
        # Then partition 0 holds its last stable offset at the open transaction
        assert found == {(topic, 0): LogOffsets(0, 6, 4), (topic, 1): LogOffsets(0, 0, 0)}
        assert left == [(gone, 0), (gone, 1)]
        tps = [KafkaTP(topic, p) for p in (0, 1)]
        stable = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.LATEST),
                                              isolation_level=IsolationLevel.READ_COMMITTED)
        end = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.LATEST))
        start = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.EARLIEST))
        assert found == {(tp.topic, tp.partition): LogOffsets(
            start[tp].offset, end[tp].offset, stable[tp].offset) for tp in tps}
    finally:
        producer.abort_transaction()
        producer.close()


class TopicIdAnswers(KafkaAdminClient):  # type: ignore[misc]
    """A real admin client that asks for OffsetFetch v10, which Kafka 4.2 and newer answer
    with topic ids and no names: an answer lagwatch cannot place, as a request version it
    does not know would give."""

    def __init__(self, **configs: Any) -> None:
        super().__init__(**configs)
        send = self._manager.send

        def send_v10(request: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(request, OffsetFetchRequest):
                request._min_version = request._max_version = 10
            return send(request, *args, **kwargs)

        self._manager.send = send_v10


def test_committed_offsets_answered_by_topic_id_leave_the_group_unknown_and_blind(
        make_topic: Callable[..., str], kafka_bootstrap: str, unique: Callable[[str], str],
        config_file: Callable[..., str]) -> None:
    # Given a group with no members and 53 unread messages, read by a client whose
    # OffsetFetch answers name no topic
    topic, group = make_topic([50, 40, 60]), unique("by-id")
    commit(kafka_bootstrap, group, topic, {0: 30, 1: 40, 2: 27})
    config = load_config(config_file(group))
    reader = ClusterReader(config.clusters[0], 60.0, admin_factory=TopicIdAnswers)
    try:
        snapshot = reader.poll()
    finally:
        reader.close()
    # When it is judged
    state = LatestReports(["default"], 1.0)
    report = state.publish(snapshot, judged_alone(snapshot))
    # Then the group is unknown, never ok, and says what it could not read
    cause = ("the committed offsets could not be read (OffsetFetch answered 3 committed "
             "offsets with no topic name (a topic id lagwatch cannot resolve))")
    judged = report.group(group)
    assert judged is not None
    assert (judged.status, judged.reasons, judged.topics) == (
        Status.UNKNOWN, (f"lagwatch cannot judge this group: {cause}",), ())
    # And the cluster's blind finding, its metric and check's exit status say so
    blind = [f for f in report.verdict.cluster_findings if f.kind == "blind"]
    assert [(f.severity, f.reason) for f in blind] == [(
        Severity.CRITICAL, f"lagwatch cannot judge 1 of 1 group (status unknown): {group}: "
                           f"{cause}")]
    assert parse(Exporter(state).text())[
        ("lagwatch_blind_groups", frozenset({("cluster", "default")}))] == 1
    assert check_status([report]) == (
        EXIT_UNUSABLE, f"lagwatch: cluster default: {blind[0].reason}")
