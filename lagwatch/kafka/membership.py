"""A replica's seat in the coordination group: the shards Kafka assigns it.

Every replica subscribes to the state topic in one consumer group with the cooperative
sticky assignor: each partition it is assigned is a shard it owns, and a rebalance moves
only the shards that must move. The loop runs on its own thread (a kafka-python consumer
is used from one thread only) and tells the daemon, after every poll that finds the
replica a stable member of the group, which shards it owns in which generation
(``renewed``); when the coordinator has dropped it, at once (``dropped``). The state
topic is created when missing: compacted, ``shards`` partitions, the cluster's default
replication factor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import MemberState

from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.reader import brief

log = logging.getLogger(__name__)

POLL_MS = 500  # the loop's poll: how often the lease is renewed


class StateTopicError(Exception):
    """The state topic cannot be used; the message is one line that names it."""


def ensure_state_topic(admin: Any, topic: str, shards: int) -> None:
    """Create the compacted state topic with ``shards`` partitions, or check the one there
    has as many: the partition count is the shard count every replica hashes groups by."""
    try:
        admin.create_topics({topic: {"num_partitions": shards, "configs": {
            "cleanup.policy": "compact"}}}, wait_for_metadata=True)
        log.info("created the state topic %s with %d partitions", topic, shards)
    except TopicAlreadyExistsError:
        pass
    described = admin.describe_topics([topic])
    partitions = len(described[0]["partitions"]) if described else 0
    if partitions != shards:
        raise StateTopicError(f"ha.topic {topic!r} has {partitions} partitions but ha.shards "
                              f"is {shards}: they must match (delete the topic to change the "
                              "shard count)")


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each move of shards; tells the seat at once when they are lost."""

    def __init__(self, seat: Membership) -> None:
        self.seat = seat

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("ha: replica %s hands over shards %s", self.seat.replica,
                 sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("ha: replica %s takes shards %s", self.seat.replica,
                 sorted(tp.partition for tp in assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        log.warning("ha: replica %s was dropped from the group and lost shards %s",
                    self.seat.replica, sorted(tp.partition for tp in lost))
        self.seat.dropped()


class Membership(threading.Thread):
    """This replica in the coordination group, on a thread of its own."""

    def __init__(self, cluster: ClusterConfig, *, group: str, topic: str, shards: int,
                 replica: str, session_timeout_s: float,
                 renewed: Callable[[frozenset[int], int, float], None],
                 dropped: Callable[[], None]) -> None:
        super().__init__(daemon=True, name=f"lagwatch-ha-{group}")
        self.cluster, self.group, self.topic, self.shards = cluster, group, topic, shards
        self.replica, self.session_timeout_s = replica, session_timeout_s
        self.renewed, self.dropped = renewed, dropped
        self._stop_event = threading.Event()

    def prepare(self) -> None:
        """Make sure the state topic is there and right (raises StateTopicError)."""
        options = self.cluster.client_options()
        try:
            admin = KafkaAdminClient(client_id=f"lagwatch-ha-{self.replica}",
                                     bootstrap_timeout_ms=options["request_timeout_ms"],
                                     **options)
            try:
                ensure_state_topic(admin, self.topic, self.shards)
            finally:
                admin.close()
        except KafkaError as exc:
            raise StateTopicError(f"ha.topic {self.topic!r} on cluster "
                                  f"{self.cluster.name!r}: {brief(exc)}") from None

    def run(self) -> None:
        options = self.cluster.client_options()
        timeout_ms = int(self.session_timeout_s * 1000)
        consumer = KafkaConsumer(
            group_id=self.group, client_id=self.replica, enable_auto_commit=False,
            partition_assignment_strategy=[CooperativeStickyAssignor],
            session_timeout_ms=timeout_ms, heartbeat_interval_ms=max(1000, timeout_ms // 5),
            # the loop polls every POLL_MS: a stuck loop leaves the group soon
            max_poll_interval_ms=max(timeout_ms, 10_000), **options)
        consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            while not self._stop_event.is_set():
                try:
                    consumer.poll(timeout_ms=POLL_MS)
                except KafkaError as exc:  # the cluster is going away: the lease lapses
                    log.warning("ha: polling the coordination group %s failed: %s",
                                self.group, brief(exc))
                    self._stop_event.wait(1.0)
                    continue
                meta = consumer.group_metadata()
                if meta.state == MemberState.STABLE:
                    shards = frozenset(tp.partition for tp in consumer.assignment())
                    self.renewed(shards, meta.generation_id, time.monotonic())
        finally:
            consumer.close()

    def stop(self) -> None:
        """Leave the group (its shards move at once) and end the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=self.session_timeout_s + 5)
