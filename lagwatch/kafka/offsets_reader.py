"""Read new records of ``__consumer_offsets`` at each poll (I/O at the edge).

The reader starts at the end of the topic when lagwatch starts and hands each poll the group
records (classic and consumer-protocol) and OffsetCommit records written since the previous
one. Where the topic cannot be read (an ACL, say), it gives up for a while: lagwatch then
counts rebalances from describe polls and times commits by its polls.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from lagwatch.kafka.config import ClusterConfig
from lagwatch.records import DecodeError, GroupRecord, OffsetCommit, Skipped, decode

log = logging.getLogger(__name__)
TOPIC = "__consumer_offsets"
RETRY_AFTER_POLLS = 20
Records = list[tuple[float, GroupRecord | OffsetCommit]]
"""Records in the order they were read, each with its time: the commit timestamp of an
OffsetCommit, the append time of anything else."""


class OffsetsTopicReader:
    """A group-less consumer of every __consumer_offsets partition, used from one thread."""

    def __init__(self, cluster: ClusterConfig, max_records: int = 200_000) -> None:
        self.cluster = cluster
        self.max_records = max_records
        self.skipped = 0  # records of types this decoder does not handle
        self.undecodable = 0  # truncated or unknown versions
        self._told: set[str] = set()  # what could not be decoded, said once each
        self._consumer: Any = None
        self._wait_polls = 0

    def read(self) -> tuple[Records | None, str | None]:
        """Return the records since the last read (None when unreadable), and an error
        message when reading failed this time."""
        if self._wait_polls:
            self._wait_polls -= 1
            return None, None
        try:
            consumer = self._open()
            return self._drain(consumer), None
        except (KafkaError, OSError, ValueError) as exc:
            self.close()
            self._wait_polls = RETRY_AFTER_POLLS
            return None, f"{type(exc).__name__}: {exc}"[:200]

    def _open(self) -> Any:
        if self._consumer is None:
            options = self.cluster.client_options()
            # kafka-python wants a consumer's request timeout above its session timeout (10 s)
            options["request_timeout_ms"] = max(options["request_timeout_ms"], 11000)
            consumer = KafkaConsumer(
                group_id=None, client_id="lagwatch-offsets-reader", enable_auto_commit=False,
                exclude_internal_topics=False, **options)
            partitions = consumer.partitions_for_topic(TOPIC)
            if not partitions:
                consumer.close()
                raise ValueError(f"{TOPIC} has no partitions visible to lagwatch")
            tps = [TopicPartition(TOPIC, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the lazy seek now: records from here on are counted
                consumer.position(tp)
            self._consumer = consumer
        return self._consumer

    def _drain(self, consumer: Any) -> Records:
        """Read up to the end offsets as they were when the poll began, bounded in time."""
        records: Records = []
        ends = consumer.end_offsets(list(consumer.assignment()))
        seen = 0
        deadline = time.monotonic() + self.cluster.request_timeout
        while (seen < self.max_records and time.monotonic() < deadline
               and any(consumer.position(tp) < end for tp, end in ends.items())):
            batch = consumer.poll(timeout_ms=200, max_records=10_000)
            for messages in batch.values():
                for message in messages:
                    seen += 1
                    self._decode(message, records)
        return records

    def _decode(self, message: Any, records: Records) -> None:
        try:
            record = decode(message.key, message.value)
        except DecodeError as exc:
            self.undecodable += 1
            kind = str(exc).split(":")[0]  # "unknown OffsetCommitValue version 5", ...
            if kind not in self._told:  # once each: counted in the metric from then on
                self._told.add(kind)
                log.warning("cluster %s: skipping %s records lagwatch cannot decode (%s); "
                            "they are counted in lagwatch_offsets_topic_records_skipped_total"
                            "{kind=\"undecodable\"}, and commit times and rebalance counts "
                            "may miss what they held", self.cluster.name, TOPIC, exc)
            return
        if isinstance(record, Skipped):
            self.skipped += 1
        elif isinstance(record, OffsetCommit) and record.commit_timestamp_ms is not None:
            records.append((record.commit_timestamp_ms / 1000.0, record))
        else:
            records.append((message.timestamp / 1000.0, record))

    def close(self) -> None:
        """Close the consumer; the next read opens a new one at the end of the topic."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except (KafkaError, OSError):
                log.debug("closing the %s reader failed", TOPIC, exc_info=True)
