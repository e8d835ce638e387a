"""Read one cluster into a Snapshot. This is the only module that talks to Kafka.

One poll, in this order (committed offsets are read before log-end offsets, so a lag
read under a race is overstated, never negative):

1. ListGroups on every broker, then the include/exclude filter;
2. OffsetFetch, one batched request per coordinator; per group when a batch fails;
3. DescribeGroups for classic groups and ConsumerGroupDescribe for consumer-protocol
   (KIP-848) groups, one request per coordinator; per group when a batch fails;
4. Metadata for all topics and DescribeCluster;
5. ListOffsets (last stable, latest, then earliest) per leader, for every partition of
   every topic a watched group commits to or is assigned; per topic when a batch fails;
6. Fetch of the records at committed offsets with unread messages, a budget a poll, for
   exact time lag (see ``lagwatch.kafka.unread``);
7. DescribeProducers and ListTransactions where the last stable offset stood still below
   the high watermark since the last poll: the transaction that holds it.

A failure of one group or topic is recorded in ``Snapshot.errors`` and the poll goes on.
A watched group whose committed offsets, topics' log offsets or cluster metadata were not
read carries what and why (``GroupSnapshot.blind``): it is never judged ``ok`` on what is
missing. The cluster's release, as its API versions tell, is logged at each connect.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaTP
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.protocol.consumer import IsolationLevel, OffsetSpec

from lagwatch.kafka import clientfix as kafkafix
from lagwatch.kafka.answers import (
    group_snapshot,
    group_type,
    log_dirs,
    partition_leaders,
    record_missing_topics,
    retention,
    topic_partitions,
    with_blind_spots,
)
from lagwatch.kafka.batches import batched, failed_keys, open_transactions
from lagwatch.kafka.causes import CAUSES, FAILURES, brief
from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.consumer_groups import describe_consumer_groups
from lagwatch.kafka.direct import committed_offsets, log_offsets
from lagwatch.kafka.offsets_reader import OffsetsTopicReader, Records
from lagwatch.kafka.unread import UnreadCache, fetch_unread
from lagwatch.kafka.versions import kafka_release
from lagwatch.model import (
    CLASSIC,
    CONSUMER,
    ClusterMeta,
    LogDir,
    LogOffsets,
    OpenTransaction,
    PollError,
    Retention,
    Snapshot,
    TopicPartition,
    Unread,
)
from lagwatch.records import OffsetCommit
from lagwatch.text import plural

log = logging.getLogger(__name__)

AdminFactory = Callable[..., Any]
T = TypeVar("T")
# Classic groups of other protocols (Kafka Connect workers) commit no consumer offsets.
_CONSUMER_PROTOCOLS = frozenset({"consumer", ""})
_RETENTION_KEYS = {"retention.ms": None, "retention.bytes": None, "cleanup.policy": None,
                   "min.compaction.lag.ms": None, "min.insync.replicas": None,
                   "unclean.leader.election.enable": None}
_TXN_TIMEOUT = "transaction.max.timeout.ms"
# The admin client caches group coordinators and never invalidates them: after one of
# these the client is rebuilt for the next poll.
_COORDINATOR_ERRORS = ("NotCoordinatorError", "CoordinatorNotAvailableError",
                       "CoordinatorLoadInProgressError")


class ClusterReader:
    """Polls one cluster with one long-lived admin client, rebuilt after a failed poll."""

    def __init__(self, cluster: ClusterConfig, retention_refresh_s: float,
                 admin_factory: AdminFactory = KafkaAdminClient,
                 also_watch: Callable[[str], bool] = lambda _topic: False,
                 owns: Callable[[str], bool] = lambda _group: True) -> None:
        self.cluster = cluster
        self.owns = owns  # groups this replica watches (with ha, those of its shards)
        self.retention_refresh_s = retention_refresh_s
        self.also_watch = also_watch  # topics to read even when no group uses them (DLQs)
        self.reader = OffsetsTopicReader(cluster) if cluster.read_offsets_topic else None
        self._admin_factory = admin_factory
        self._admin: Any = None
        self._retention: dict[str, Retention] = {}
        self._retention_at = float("-inf")
        self._txn_timeout_s: float | None = None
        self._txn_timeout_at = float("-inf")
        self.unread = UnreadCache(cluster.record_fetches_per_poll)
        self._last_stable: dict[TopicPartition, int] = {}  # the previous poll's LSOs
        self.client_id = f"lagwatch-{cluster.name}"  # names kafka-python's IO thread
        self.kafka_release: str | None = None  # as the cluster's API versions tell
        self._warned_newer = False
        kafkafix.apply()

    def _client(self) -> Any:
        if self._admin is None:
            options = self.cluster.client_options()
            self._admin = self._admin_factory(
                client_id=self.client_id,
                bootstrap_timeout_ms=options["request_timeout_ms"], **options)
            self._say_release(self._admin)
        return self._admin

    def _say_release(self, admin: Any) -> None:
        """Log the cluster's Kafka release as its API versions tell, at each (re)connect;
        warn once when it is newer than the newest release lagwatch was tested with."""
        versions = getattr(admin._manager.broker_version_data, "api_versions", None) or {}
        self.kafka_release, newer = kafka_release(versions)
        log.info("cluster %s: Apache Kafka %s, as its API versions tell", self.cluster.name,
                 self.kafka_release)
        if newer and not self._warned_newer:
            self._warned_newer = True
            log.warning("cluster %s runs Apache Kafka %s, the newest release lagwatch was tested "
                        "with; lagwatch asks for the request versions it was tested with, "
                        "and a group it cannot read is reported unknown (the blind finding)",
                        self.cluster.name, self.kafka_release)

    def close(self) -> None:
        """Close the clients; the next poll builds new ones."""
        if self.reader is not None:
            self.reader.close()
        self._drop_admin()

    def _drop_admin(self) -> None:
        # After a failed poll or a coordinator error only the admin client is rebuilt; the
        # offsets-topic reader keeps its position.
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except FAILURES as exc:  # closing a broken client must not fail a poll
                log.debug("closing admin client for %s: %s", self.cluster.name, brief(exc))

    def _attempt(self, errors: list[PollError], stage: str, call: Callable[[], T],
                 what: str = "") -> T | None:
        """Return what a request answers; on failure record a poll error and return None."""
        try:
            return call()
        except FAILURES as exc:
            problem = f"{what}: {brief(exc)}" if what else brief(exc)
            errors.append(PollError(stage, self.cluster.name, problem))
            return None

    def poll(self) -> Snapshot:
        """Read the cluster once; never raises for Kafka errors."""
        taken_at, started = time.time(), time.monotonic()
        errors: list[PollError] = []
        try:
            admin = self._client()
            listed = self._list_groups(admin)
        except FAILURES as exc:
            self._drop_admin()
            cause = CAUSES.take(self.client_id)  # the reason behind a bootstrap timeout
            errors.append(PollError("connect", self.cluster.name, cause or brief(exc)))
            return Snapshot(self.cluster.name, taken_at, time.monotonic() - started,
                            up=False, errors=tuple(errors))
        judged = [gid for gid, g in listed.items() if group_type(g) in (CLASSIC, CONSUMER)]
        committed = self._committed(admin, judged, errors)
        described = self._describe(admin, listed, errors)
        groups = {gid: group_snapshot(gid, g, described.get(gid), committed.get(gid, {}))
                  for gid, g in listed.items()}
        records = self._group_records(errors)
        watched = self._watched(records or [])
        topics, meta, leaders = self._metadata(admin, errors)
        used = {tp[0] for g in groups.values() for tp in g.partitions()}
        if meta is not None:  # else no topic is known to exist or not
            record_missing_topics(groups, used - topics.keys(), errors)
        wanted = used | {t for t in topics if self.also_watch(t)}
        partitions = [(topic, p) for topic in sorted(wanted & topics.keys())
                      for p in topics[topic]]
        offsets = self._log_offsets(admin, partitions, leaders, errors)
        groups = with_blind_spots(
            groups, failed_keys(errors, "offsets", "group", set(judged) - committed.keys()),
            None if meta is not None else next(
                (e.message for e in errors if e.stage == "metadata"), "no broker answered"),
            failed_keys(errors, "log_offsets", "topic",
                    {tp[0] for tp in partitions if tp not in offsets}))
        retention = self._retention_of(admin, wanted & topics.keys(), errors)
        committed_at = [(tp, c) for g in groups.values() for tp, c in g.committed.items()]
        fetched_before = self.unread.fetched
        unread = self._read_unread(admin, committed_at, offsets, taken_at, leaders=leaders,
                                   errors=errors)
        transactions = self._transactions(admin, offsets, errors)
        if any(e.message.startswith(_COORDINATOR_ERRORS) for e in errors):
            self._drop_admin()
        return Snapshot(self.cluster.name, taken_at, time.monotonic() - started, up=True,
                        groups=groups, offsets=offsets, meta=meta, retention=retention,
                        group_records=tuple((at, r) for at, r in watched
                                            if not isinstance(r, OffsetCommit)),
                        commit_records=tuple((at, r) for at, r in watched
                                             if isinstance(r, OffsetCommit)),
                        records_exact=records is not None,
                        records_skipped=(self.reader.skipped, self.reader.undecodable)
                        if self.reader else (0, 0),
                        unread=unread, transactions=transactions,
                        records_fetched=self.unread.fetched - fetched_before,
                        transaction_max_timeout_s=self._transaction_timeout(
                            admin, meta, errors),
                        errors=tuple(errors))

    def _group_records(self, errors: list[PollError]) -> Records | None:
        """__consumer_offsets records since the last poll; None when the topic is not read."""
        if self.reader is None:
            return None
        records, error = self.reader.read()
        if error is not None:
            errors.append(PollError("offsets_topic", self.cluster.name,
                                    f"{error}; counting rebalances from polls instead"))
        return records

    def _watched(self, records: Records) -> Records:
        """The records of watched groups (each group's name is matched once)."""
        watched = {g for g in {r.group for _, r in records}
                   if self.cluster.groups.matches(g) and self.owns(g)}
        return [(at, r) for at, r in records if r.group in watched]

    def _list_groups(self, admin: Any) -> dict[str, dict[str, Any]]:
        """The watched groups, each with what ListGroups says of it (every type but classic
        groups of other protocols, such as Kafka Connect's)."""
        return {
            g["group_id"]: g for g in sorted(admin.list_groups(), key=lambda g: g["group_id"])
            if (group_type(g) != CLASSIC or g.get("protocol_type", "") in _CONSUMER_PROTOCOLS)
            and self.cluster.groups.matches(g["group_id"]) and self.owns(g["group_id"])
        }

    def _committed(self, admin: Any, group_ids: list[str],
                   errors: list[PollError]) -> dict[str, dict[TopicPartition, int]]:
        """Committed offsets per group; -1 (no commit) is left out, never turned into lag."""
        found, left = committed_offsets(admin, group_ids)
        raw = batched(left, lambda ids: admin.list_group_offsets(dict.fromkeys(ids)),
                       "offsets", errors)
        for gid, offsets in raw.items():
            nameless = sum(1 for tp in offsets if not tp.topic)
            if nameless:  # never taken as "no commits": the group is blind, and says why
                errors.append(PollError("offsets", f"group {gid}", (
                    f"OffsetFetch answered {plural(nameless, 'committed offset')} with no "
                    "topic name (a topic id lagwatch cannot resolve)")))
                continue
            found[gid] = {(tp.topic, tp.partition): om.offset
                          for tp, om in offsets.items() if om.offset >= 0}
        return found


    def _describe(self, admin: Any, listed: dict[str, dict[str, Any]],
                  errors: list[PollError]) -> dict[str, dict[str, Any]]:
        """Describe classic and consumer-protocol groups, each with its own request."""
        described = batched([g for g, info in listed.items() if group_type(info) == CLASSIC],
                             admin.describe_groups, "describe", errors)
        described.update(batched(
            [g for g, info in listed.items() if group_type(info) == CONSUMER],
            lambda ids: describe_consumer_groups(admin, ids), "describe", errors))
        for gid, info in list(described.items()):
            if info.get("error") and info.get("group_state") != "Dead":
                errors.append(PollError("describe", f"group {gid}", str(info["error"])))
                del described[gid]
        return described

    def _metadata(self, admin: Any, errors: list[PollError]) -> tuple[
            dict[str, list[int]], ClusterMeta | None, dict[TopicPartition, int]]:
        """Partitions per existing topic, cluster-wide health facts, and each partition's
        leader."""
        described = self._attempt(errors, "metadata", admin.describe_topics)
        if described is None:
            return {}, None, {}
        topics, offline, under, replication = topic_partitions(described)
        cluster = self._attempt(errors, "cluster", admin.describe_cluster) or {}
        meta = ClusterMeta(
            cluster_id=cluster.get("cluster_id"),
            controller_id=cluster.get("controller_id"),
            # a fenced broker (stopped, or lost its controller session) does not count
            brokers=tuple(sorted(b["broker_id"] for b in cluster.get("brokers", ())
                                 if not b.get("is_fenced"))),
            partitions=sum(len(parts) for parts in topics.values()),
            offline=tuple(sorted(offline)),
            under_replicated=tuple(sorted(under)),
            under_min_isr=self._under_min_isr(admin, under, errors),
            log_dirs=self._log_dirs(admin, errors),
            replication=replication,
        )
        return topics, meta, partition_leaders(described)

    def _under_min_isr(self, admin: Any, isr: dict[TopicPartition, int],
                       errors: list[PollError]) -> tuple[TopicPartition, ...]:
        """Under-replicated partitions whose in-sync replicas fell below min.insync.replicas
        (producers with acks=all are refused there)."""
        if not isr:
            return ()
        topics = sorted({t for t, _ in isr})
        described = self._attempt(errors, "metadata", lambda: admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"min.insync.replicas": None})
             for t in topics], config_filter="all").get("topic", {}), "min.insync.replicas")
        if described is None:
            return ()
        minimum = {t: int(c.get("min.insync.replicas", {}).get("value") or 1)
                   for t, c in described.items()}
        return tuple(sorted(tp for tp, n in isr.items() if n < minimum.get(tp[0], 1)))

    def _log_dirs(self, admin: Any, errors: list[PollError]) -> tuple[LogDir, ...]:
        """Each broker's log directories: partition bytes, free and total disk."""
        described = self._attempt(errors, "log_dirs", admin.describe_log_dirs)
        if described is None:
            return ()
        return log_dirs(described)

    def _retention_of(self, admin: Any, topics: set[str],
                      errors: list[PollError]) -> dict[str, Retention]:
        """Each topic's retention, read when first seen and every retention_refresh_s."""
        now = time.monotonic()
        stale = now - self._retention_at >= self.retention_refresh_s
        wanted = topics if stale else topics - self._retention.keys()
        described = self._attempt(errors, "retention", lambda: admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, dict(_RETENTION_KEYS))
             for t in sorted(wanted)], config_filter="all").get("topic", {})) if wanted else None
        if described is not None:
            self._retention.update({t: retention(c) for t, c in described.items() if c})
            if stale:
                self._retention_at = now
        return {t: self._retention[t] for t in topics if t in self._retention}

    def _transaction_timeout(self, admin: Any, meta: ClusterMeta | None,
                             errors: list[PollError]) -> float | None:
        """The brokers' transaction.max.timeout.ms, read from one broker when first known
        and every retention_refresh_s."""
        now = time.monotonic()
        if meta is None or not meta.brokers or (
                self._txn_timeout_s is not None
                and now - self._txn_timeout_at < self.retention_refresh_s):
            return self._txn_timeout_s
        self._txn_timeout_at = now
        node = meta.brokers[0]
        described = self._attempt(errors, "retention", lambda: admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(node), {_TXN_TIMEOUT: None})],
            config_filter="all").get("broker", {}), _TXN_TIMEOUT)
        for configs in (described or {}).values():
            value = str(configs.get(_TXN_TIMEOUT, {}).get("value") or "")
            if value.isdigit():
                return int(value) / 1000
        return self._txn_timeout_s

    def _read_unread(self, admin: Any, committed: list[tuple[TopicPartition, int]],
                     offsets: dict[TopicPartition, LogOffsets], now: float, *,
                     leaders: dict[TopicPartition, int], errors: list[PollError]
                     ) -> dict[tuple[TopicPartition, int], Unread]:
        """The records at committed offsets: a budget of fetches, the rest from the cache."""
        cache = self.unread
        wanted = cache.wanted(committed, offsets, now) if cache.budget else []
        fetched = self._attempt(errors, "records", lambda: fetch_unread(
            admin, wanted, self.cluster.client_options()["request_timeout_ms"], leaders)
        ) if wanted else None
        if fetched is not None:
            errors.extend(PollError("records", f"topic {t}", (
                "not authorized to read its records (TopicAuthorizationFailedError): its "
                "time lag is estimated; grant lagwatch Read on it for the exact one"))
                for t in cache.store(len(wanted), fetched, now))
        return cache.of(committed)

    def _transactions(self, admin: Any, offsets: dict[TopicPartition, LogOffsets],
                      errors: list[PollError]) -> dict[TopicPartition, OpenTransaction]:
        """Who holds the last stable offset where it stood still since the last poll."""
        held = {tp: lso for tp, lo in offsets.items()
                if lo.held_back and (lso := lo.last_stable) is not None
                and self._last_stable.get(tp) == lso}
        self._last_stable = {tp: lo.last_stable for tp, lo in offsets.items()
                             if lo.last_stable is not None}
        if not held:
            return {}
        return self._attempt(errors, "transactions",
                             lambda: open_transactions(admin, held)) or {}

    def _log_offsets(self, admin: Any, partitions: list[TopicPartition],
                     leaders: dict[TopicPartition, int], errors: list[PollError]
                     ) -> dict[TopicPartition, LogOffsets]:
        found, left = log_offsets(admin, partitions, leaders)
        by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in left:
            by_topic[tp[0]].append(tp)

        def fetch(topics: list[str]) -> dict[str, dict[TopicPartition, LogOffsets]]:
            tps = [KafkaTP(*tp) for topic in topics for tp in by_topic[topic]]
            # the LSO first: read after the high watermark it could pass it
            stable = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.LATEST),
                                                  isolation_level=IsolationLevel.READ_COMMITTED)
            end = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.LATEST))
            start = admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.EARLIEST))
            result: dict[str, dict[TopicPartition, LogOffsets]] = defaultdict(dict)
            for tp in tps:
                result[tp.topic][(tp.topic, tp.partition)] = LogOffsets(
                    start[tp].offset, end[tp].offset, min(stable[tp].offset, end[tp].offset))
            return result

        fetched = batched(sorted(by_topic), fetch, "log_offsets", errors, subject="topic")
        for per_topic in fetched.values():
            found.update(per_topic)
        return {tp: found[tp] for tp in partitions if tp in found}  # in the given order
