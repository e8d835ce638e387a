"""A replica's seat in the coordination group: the shards Kafka assigns it.

Every replica subscribes to the state topic in one consumer group with the cooperative
sticky assignor: each partition it is assigned is a shard it owns, and a rebalance moves
only the shards that must move. The loop runs on its own thread (a kafka-python consumer
is used from one thread only). On being assigned a shard it reads the shard's partition
from the start, writes a claim to it, and holds the shard only once it has read past its
own claim: the shard's incidents are known before it acts for them. After every poll
that finds the replica a stable member, it tells the seat which shards it holds in which
generation (``renewed``); shards revoked or lost, at once (``dropped``). Every record read
goes to the seat (``apply``). The state topic is created when missing: compacted,
``shards`` partitions, the cluster's default replication factor.

``FleetReader``, on a thread of its own, reads every partition of the state topic outside
any group: every replica knows the whole fleet's incidents and the silences made through
any replica. It is apart from the membership so that nothing it waits for can hold up the
lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import MemberState

from lagwatch.kafka.causes import brief
from lagwatch.kafka.config import ClusterConfig

log = logging.getLogger(__name__)

POLL_MS = 500  # the loop's poll: how often the lease is renewed
MEMBERS_EVERY_S = 5.0  # how often the coordination group's members are counted
SETTLE_S, SETTLE_EVERY_S = 30.0, 0.5  # how long, how often a state topic still being
# created is described again


class StateTopicError(Exception):
    """The state topic cannot be used; the message is one line that names it."""


def ensure_state_topic(admin: Any, topic: str, shards: int) -> None:
    """Create the compacted state topic with ``shards`` partitions, or check the one there
    has as many: the partition count is the shard count every replica hashes groups by.

    Replicas starting together race to create it: the losers hear it exists before its
    partitions are in the metadata they read, so a topic still settling (an error, or no
    partitions yet) is described again, every half second for up to 30 s."""
    try:
        admin.create_topics({topic: {"num_partitions": shards, "configs": {
            "cleanup.policy": "compact"}}}, wait_for_metadata=True)
        log.info("created the state topic %s with %d partitions", topic, shards)
    except TopicAlreadyExistsError:
        pass
    for _ in range(int(SETTLE_S / SETTLE_EVERY_S)):
        described = admin.describe_topics([topic])
        settled = bool(described) and not described[0].get("error_code")
        partitions = len(described[0]["partitions"]) if settled else 0
        if partitions:
            break
        time.sleep(SETTLE_EVERY_S)
    if partitions != shards:
        raise StateTopicError(f"ha.topic {topic!r} has {partitions} partitions but ha.shards "
                              f"is {shards}: they must match (delete the topic to change the "
                              "shard count)")


class Seat(Protocol):
    """What the membership tells (ha.replica.Replica)."""

    def renewed(self, shards: frozenset[int], generation: int, now: float) -> None: ...

    def dropped(self, lost: frozenset[int] | None) -> None: ...

    def apply(self, shard: int, key: bytes | None, value: bytes | None) -> str | None: ...

    def apply_fleet(self, shard: int, key: bytes | None, value: bytes | None
                    ) -> str | None: ...

    def claim(self, shard: int, generation: int, member: str) -> bytes: ...

    def adopt(self, shards: frozenset[int], generation: int, member: str, *,
              claim: bool) -> None: ...

    def outsiders(self, assignees: dict[int, str], members: set[str], me: str, now: float
                  ) -> tuple[frozenset[int], frozenset[int]]: ...


def _shards(partitions: Any) -> frozenset[int]:
    return frozenset(tp.partition for tp in partitions)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each move of shards; a shard revoked or lost is dropped at once, one assigned
    is read from the start and claimed."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("ha: replica %s hands over shards %s", self.membership.replica,
                 sorted(_shards(revoked)))
        self.membership.lose(_shards(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("ha: replica %s takes shards %s", self.membership.replica,
                 sorted(_shards(assigned)))
        self.membership.gain(assigned)

    def on_partitions_lost(self, lost: Any) -> None:
        log.warning("ha: replica %s was dropped from the group and lost shards %s",
                    self.membership.replica, sorted(_shards(lost)))
        self.membership.lose(None)


class Membership(threading.Thread):
    """This replica in the coordination group, on a thread of its own."""

    def __init__(self, cluster: ClusterConfig, seat: Seat, *, group: str, topic: str,
                 shards: int, replica: str, session_timeout_s: float) -> None:
        super().__init__(daemon=True, name=f"lagwatch-ha-{group}")
        self.cluster, self.group, self.topic, self.shards = cluster, group, topic, shards
        self.replica, self.session_timeout_s, self.seat = replica, session_timeout_s, seat
        self._stop_event = threading.Event()
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None
        self._claims: dict[int, int | None] = {}  # shard -> offset of this replica's claim
        self._claims_lock = threading.Lock()  # the listener runs on the client's IO thread
        self._admin: KafkaAdminClient | None = None
        self.members: int | None = None  # replicas in the group, as last counted
        self._counted_at = float("-inf")
        self._adopted: frozenset[int] = frozenset()  # outsiders' shards watched here
        self.outsiders: set[int] = set()  # shards outsiders hold (named in the log)
        self.reader = FleetReader(cluster, seat.apply_fleet, topic=topic, shards=shards,
                                  replica=replica)

    def prepare(self) -> None:
        """Make sure the state topic is there and right (raises StateTopicError), and open
        the producer that writes claims and incidents."""
        options = self.cluster.client_options()
        try:
            admin = KafkaAdminClient(client_id=f"lagwatch-ha-{self.replica}",
                                     bootstrap_timeout_ms=options["request_timeout_ms"],
                                     **options)
            try:
                ensure_state_topic(admin, self.topic, self.shards)
            except BaseException:
                admin.close()
                raise
            self._admin = admin
            self._producer = KafkaProducer(client_id=f"lagwatch-ha-{self.replica}",
                                           acks="all", max_block_ms=options[
                                               "request_timeout_ms"], **options)
        except KafkaError as exc:
            raise StateTopicError(f"ha.topic {self.topic!r} on cluster "
                                  f"{self.cluster.name!r}: {brief(exc)}") from None

    def start(self) -> None:
        """Join the group, and start reading the whole topic."""
        super().start()
        self.reader.start()

    def write(self, shard: int, key: bytes, value: bytes | None) -> int | None:
        """Write a record to a shard and wait for the cluster to take it; return its
        offset, or None (logged) when it could not be written."""
        assert self._producer is not None
        timeout_s = self.cluster.client_options()["request_timeout_ms"] / 1000
        try:
            sent = self._producer.send(self.topic, key=key, value=value, partition=shard)
            return int(sent.get(timeout=timeout_s).offset)
        except KafkaError as exc:
            log.warning("ha: writing %s to shard %d of %s failed: %s", key.decode(), shard,
                        self.topic, brief(exc))
            return None

    def send(self, shard: int, key: bytes, value: bytes | None) -> None:
        """Write a record to a shard without waiting; a failure is logged."""
        assert self._producer is not None
        try:
            sent = self._producer.send(self.topic, key=key, value=value, partition=shard)
        except KafkaError as exc:
            log.warning("ha: writing %s to shard %d of %s failed: %s", key.decode(), shard,
                        self.topic, brief(exc))
            return
        sent.add_errback(lambda exc: log.warning(
            "ha: writing %s to shard %d of %s failed: %s", key.decode(), shard, self.topic,
            brief(exc)))

    def flush(self) -> None:
        """Wait until every record sent is written, for at most the request timeout."""
        assert self._producer is not None
        timeout_s = self.cluster.client_options()["request_timeout_ms"] / 1000
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("ha: writing to %s failed: %s", self.topic, brief(exc))

    # on the membership thread -------------------------------------------------------------
    def gain(self, assigned: Any) -> None:
        """Shards assigned: read each from the start, and claim it now, while the group
        cannot yet have given it to another (a claim written after the shard moved on
        would fence out its new owner); a claim that fails is tried again in the loop."""
        assert self._consumer is not None
        self._consumer.seek_to_beginning(*assigned)
        meta = self._consumer.group_metadata()
        for shard in _shards(assigned):
            self.seat.dropped(frozenset({shard}))  # anything read of it before is stale
            offset = self.write(shard, b"claim", self.seat.claim(
                shard, meta.generation_id, meta.member_id))
            with self._claims_lock:
                self._claims[shard] = offset

    def lose(self, lost: frozenset[int] | None) -> None:
        """Shards revoked or lost (None: all): act for none of them from now."""
        with self._claims_lock:
            for shard in list(self._claims) if lost is None else lost:
                self._claims.pop(shard, None)
        self.seat.dropped(lost)

    def _ready(self, consumer: KafkaConsumer, generation: int, member: str
               ) -> frozenset[int]:
        """Claim again the shards whose claim failed (if still assigned); return those read
        past this replica's claim."""
        with self._claims_lock:
            claims = dict(self._claims)
        assigned = _shards(consumer.assignment())
        for shard in sorted(s for s, offset in claims.items() if offset is None):
            if shard in assigned:
                offset = self.write(shard, b"claim",
                                    self.seat.claim(shard, generation, member))
                with self._claims_lock:
                    if shard in self._claims:
                        self._claims[shard] = claims[shard] = offset
        return frozenset(shard for shard, offset in claims.items() if offset is not None
                         and consumer.position(TopicPartition(self.topic, shard)) > offset)

    def run(self) -> None:
        options = self.cluster.client_options()
        timeout_ms = int(self.session_timeout_s * 1000)
        consumer = self._consumer = KafkaConsumer(
            group_id=self.group, client_id=self.replica, enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=[CooperativeStickyAssignor],
            session_timeout_ms=timeout_ms, heartbeat_interval_ms=max(1000, timeout_ms // 5),
            # the loop polls every POLL_MS: a stuck loop leaves the group soon
            max_poll_interval_ms=max(timeout_ms, 10_000), **options)
        consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            while not self._stop_event.is_set():
                try:
                    _read(self.topic, consumer.poll(timeout_ms=POLL_MS), self.seat.apply)
                    meta = consumer.group_metadata()
                    if meta.state == MemberState.STABLE:
                        held = self._ready(consumer, meta.generation_id, meta.member_id)
                        self.seat.renewed(held, meta.generation_id, time.monotonic())
                        self._watch_members(meta.generation_id, meta.member_id)
                except KafkaError as exc:  # the cluster is going away: the lease lapses
                    log.warning("ha: polling the coordination group %s failed: %s",
                                self.group, brief(exc))
                    self._stop_event.wait(1.0)
                except Exception:  # a bug must not end the membership: the lease lapses
                    log.exception("ha: the membership loop failed; going on")
                    self._stop_event.wait(1.0)
        finally:
            consumer.close()

    def _watch_members(self, generation: int, member: str) -> None:
        """Count the group's members, and watch the shards outsiders hold (every
        MEMBERS_EVERY_S; between, adopt again what was found, as claims are read back)."""
        now = time.monotonic()
        fresh = self._admin is not None and now - self._counted_at >= MEMBERS_EVERY_S
        if fresh and self._admin is not None:
            self._counted_at = now
            described = self._admin.describe_groups([self.group])
            info = described.get(self.group, {}) if isinstance(described, dict) else {}
            members = info.get("members") or []
            self.members = len(members)
            assignees = _assignees(members, self.topic)
            held, self._adopted = self.seat.outsiders(
                assignees, {str(m.get("member_id")) for m in members}, member, now)
            self._warn_outsiders(held, members, assignees)
        self.seat.adopt(self._adopted, generation, member, claim=fresh)

    def _warn_outsiders(self, held: frozenset[int], members: list[dict[str, Any]],
                        assignees: dict[int, str]) -> None:
        """Name each outsider's shards once, when first found, and say when they are back."""
        for shard in sorted(held - self.outsiders):
            holder = next((m for m in members
                           if str(m.get("member_id")) == assignees.get(shard)), {})
            log.warning(
                "ha: shard %d of %s is held by member %s (client id %r, host %s) of group "
                "%s, which has signed no claim on it: not a lagwatch replica (README, "
                "Replicas); %s", shard, self.topic, holder.get("member_id"),
                holder.get("client_id"), holder.get("client_host"), self.group,
                "this replica watches it" if shard in self._adopted
                else "another replica watches it")
        for shard in sorted(self.outsiders - held):
            log.warning("ha: shard %d of %s is held by a replica again", shard, self.topic)
        self.outsiders = set(held)


    def stop(self) -> None:
        """Leave the group (its shards move at once), end the thread, close the producer."""
        self._stop_event.set()
        self.reader.stop()
        if self.is_alive():
            self.join(timeout=self.session_timeout_s + 5)
        if self._producer is not None:
            self._producer.close(timeout=5)
        if self._admin is not None:
            self._admin.close()


Apply = Callable[[int, bytes | None, bytes | None], str | None]


def _assignees(members: list[dict[str, Any]], topic: str) -> dict[int, str]:
    """Each shard's assignee among the described members, by member id (a member whose
    assignment cannot be decoded assigns nothing here)."""
    assignees: dict[int, str] = {}
    for member in members:
        assignment = member.get("member_assignment")
        parts = assignment.get("assigned_partitions") if isinstance(assignment, dict) else None
        for part in parts or ():
            if isinstance(part, dict) and part.get("topic") == topic:
                for shard in part.get("partitions") or ():
                    assignees[shard] = str(member.get("member_id"))
    return assignees


def _read(topic: str, batches: dict[TopicPartition, list[Any]], apply: Apply) -> None:
    """Hand each record read to ``apply``; log the ones it skipped, and why (a record that
    breaks ``apply`` is skipped alone, never its neighbours)."""
    for tp, records in batches.items():
        for record in records:
            try:
                why = apply(tp.partition, record.key, record.value)
            except Exception as exc:  # a bug, or a value no check foresaw
                why = f"it could not be read ({type(exc).__name__})"
                log.debug("ha: reading a record failed", exc_info=True)
            if why is not None:
                log.warning("ha: skipped record at offset %d of shard %d of %s: %s",
                            record.offset, tp.partition, topic, why)


class FleetReader(threading.Thread):
    """Reads every shard of the state topic, outside any group, for the fleet's view."""

    def __init__(self, cluster: ClusterConfig, apply: Apply, *, topic: str, shards: int,
                 replica: str) -> None:
        super().__init__(daemon=True, name=f"lagwatch-ha-reader-{topic}")
        self.cluster, self.apply, self.topic, self.shards = cluster, apply, topic, shards
        self.replica = replica
        self._stop_event = threading.Event()

    def run(self) -> None:
        reader = KafkaConsumer(client_id=f"lagwatch-ha-reader-{self.replica}",
                               enable_auto_commit=False, **self.cluster.client_options())
        partitions = [TopicPartition(self.topic, p) for p in range(self.shards)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        try:
            while not self._stop_event.is_set():
                try:
                    _read(self.topic, reader.poll(timeout_ms=POLL_MS), self.apply)
                except KafkaError as exc:
                    log.warning("ha: reading the state topic %s failed: %s", self.topic,
                                brief(exc))
                    self._stop_event.wait(1.0)
                except Exception:  # a bug must not end the fleet's view
                    log.exception("ha: reading the state topic %s failed; going on",
                                  self.topic)
                    self._stop_event.wait(1.0)
        finally:
            reader.close()

    def stop(self) -> None:
        """End the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=10)
