"""What an audit reads beyond the polls, on demand, with clients of its own.

- The record at each partition's log start: how far back the log really reaches.
- Each audited group's latest metadata record (members' session and rebalance timeouts,
  the assignor), read from the start of its ``__consumer_offsets`` partition: the live
  reader starts at the end of the topic and sees one only when the group rebalances.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KafkaTP

from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.offsets_reader import TOPIC
from lagwatch.kafka.unread import fetch_unread
from lagwatch.model import LogOffsets, TopicPartition, Unread
from lagwatch.records import DecodeError, GroupMetadata, decode

MAX_RECORDS = 2_000_000  # of __consumer_offsets read for one audit, at most
Progress = Callable[[str], None]


def offsets_partition(group: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition that holds a group: Java's String.hashCode of
    the group id, made positive as Kafka's Utils.abs does, modulo the partition count."""
    h = 0
    data = group.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if signed == -(1 << 31) else abs(signed)) % partitions


def log_start_times(cluster: ClusterConfig, offsets: Mapping[TopicPartition, LogOffsets]
                    ) -> dict[TopicPartition, float]:
    """The timestamp of the record at each partition's log start (partitions that hold
    records), with one bounded Fetch per leader."""
    keys = [(tp, lo.log_start) for tp, lo in sorted(offsets.items()) if lo.log_end > lo.log_start]
    if not keys:
        return {}
    options = cluster.client_options()
    admin = KafkaAdminClient(client_id=f"lagwatch-audit-{cluster.name}",
                             bootstrap_timeout_ms=options["request_timeout_ms"], **options)
    try:
        answers = fetch_unread(admin, keys, options["request_timeout_ms"])
    finally:
        admin.close()
    return {tp: a.oldest_at for (tp, _), a in answers.items()
            if isinstance(a, Unread) and a.oldest_at is not None}


def group_metadata(cluster: ClusterConfig, groups: list[str], progress: Progress
                   ) -> dict[str, GroupMetadata]:
    """Each group's latest classic metadata record, read from the start of the
    ``__consumer_offsets`` partitions that hold them (a deleted group has none)."""
    if not groups:
        return {}
    options = cluster.client_options()
    options["request_timeout_ms"] = max(options["request_timeout_ms"], 11000)
    consumer = KafkaConsumer(group_id=None, client_id=f"lagwatch-audit-{cluster.name}",
                             enable_auto_commit=False, exclude_internal_topics=False, **options)
    try:
        count = len(consumer.partitions_for_topic(TOPIC) or ())
        if not count:
            raise ValueError(f"{TOPIC} has no partitions visible to lagwatch")
        tps = sorted({KafkaTP(TOPIC, offsets_partition(g, count)) for g in groups})
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return _read(consumer, set(groups), consumer.end_offsets(tps), progress,
                     time.monotonic() + 10 * cluster.request_timeout)
    finally:
        consumer.close()


def _read(consumer: Any, wanted: set[str], ends: dict[Any, int], progress: Progress,
          deadline: float) -> dict[str, GroupMetadata]:
    total = sum(ends.values())
    found: dict[str, GroupMetadata] = {}
    seen, told = 0, time.monotonic()
    while (seen < MAX_RECORDS and time.monotonic() < deadline
           and any(consumer.position(tp) < end for tp, end in ends.items())):
        for messages in consumer.poll(timeout_ms=200, max_records=10_000).values():
            for message in messages:
                seen += 1
                try:
                    record = decode(message.key, message.value)
                except DecodeError:
                    continue
                if isinstance(record, GroupMetadata) and record.group in wanted:
                    if record.generation is None:
                        found.pop(record.group, None)
                    else:
                        found[record.group] = record
        if time.monotonic() - told >= 5:
            told = time.monotonic()
            progress(f"reading {TOPIC} for group metadata: {seen:,} of about {total:,} "
                     "records")
    return found
