"""Committed offsets and log offsets read with Kafka's requests directly (I/O).

kafka-python's ``list_group_offsets`` and ``list_partition_offsets`` answer with a
TopicPartition and an OffsetAndMetadata (or OffsetAndTimestamp) per partition, and
``list_partition_offsets`` looks the leaders up with a Metadata request of its own, turned
into dicts, at each call. At 50,000 group-partitions that was a third of a poll's CPU
(``bench/poll_scale.py --profile``). Here OffsetFetch (v8-9: every group of a coordinator
in one request, topics by name) and ListOffsets go over the admin client's own connections
and I/O thread,
as ``consumer_groups`` sends ConsumerGroupDescribe, and the answers go straight into the
dicts a poll keeps; the leaders are those of the poll's own Metadata.

Only clean answers are taken. A group or partition whose answer carries an error or a
topic without a name (a topic id: OffsetFetch v10 answers so), a partition without a known
leader, a broker too old for OffsetFetch v8, and everything
asked when a request fails are handed back as left over, for the reader to ask through
kafka-python's calls as before (which retry a moved leader, and raise the errors the
reader reports).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kafka.protocol.consumer import (
    IsolationLevel,
    ListOffsetsRequest,
    OffsetFetchRequest,
    OffsetSpec,
)

from lagwatch.kafka.causes import FAILURES, brief
from lagwatch.kafka.versions import LIST_OFFSETS, OFFSET_FETCH
from lagwatch.model import LogOffsets, TopicPartition

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")

_Topic = ListOffsetsRequest.ListOffsetsTopic
_Partition = _Topic.ListOffsetsPartition
_Group = OffsetFetchRequest.OffsetFetchRequestGroup
# read in this order: the LSO first, or the log end read before it could be passed
_SPECS = ((IsolationLevel.READ_COMMITTED, OffsetSpec.LATEST),
          (IsolationLevel.READ_UNCOMMITTED, OffsetSpec.LATEST),
          (IsolationLevel.READ_UNCOMMITTED, OffsetSpec.EARLIEST))


def committed_offsets(admin: Any, group_ids: list[str]
                      ) -> tuple[dict[str, dict[TopicPartition, int]], list[str]]:
    """Each group's committed offsets (-1, no commit, left out), and the groups left over.
    """
    if not group_ids:
        return {}, []
    if admin._manager.broker_version_data.api_version(OffsetFetchRequest) < OFFSET_FETCH[0]:
        return {}, group_ids
    return _clean("offsets", lambda: admin._manager.run(_committed, admin, group_ids),
                  group_ids)


async def _committed(admin: Any, group_ids: list[str]) -> dict[str, dict[TopicPartition, int]]:
    by_coordinator: dict[int, list[str]] = defaultdict(list)
    for group_id, node in (await admin._find_coordinator_ids(group_ids)).items():
        by_coordinator[node].append(group_id)
    sent = [admin._manager.send(OffsetFetchRequest(  # to every coordinator at once
        groups=[_Group(group_id=g, topics=None) for g in ids],
        min_version=OFFSET_FETCH[0], max_version=OFFSET_FETCH[1]), node_id=node)
        for node, ids in by_coordinator.items()]
    committed = {}
    for answer in sent:
        for group in (await answer).groups:
            if group.error_code or any(p.error_code or not t.name for t in group.topics
                                       for p in t.partitions):
                continue  # left over
            committed[group.group_id] = {(t.name, p.partition_index): p.committed_offset
                                         for t in group.topics for p in t.partitions
                                         if p.committed_offset >= 0}
    return committed


def log_offsets(admin: Any, partitions: list[TopicPartition],
                leaders: Mapping[TopicPartition, int]
                ) -> tuple[dict[TopicPartition, LogOffsets], list[TopicPartition]]:
    """Each partition's log start, log end and last stable offset, and the partitions
    left over."""
    by_leader: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for topic, partition in partitions:
        leader = leaders.get((topic, partition), -1)
        if leader >= 0:
            by_leader[leader][topic].append(partition)
    if not by_leader:
        return {}, partitions
    return _clean("log offsets", lambda: {
        tp: LogOffsets(start, end, min(stable, end)) for tp, (stable, end, start)
        in admin._manager.run(_log_offsets, admin, by_leader).items()}, partitions)


def _clean(what: str, read: Callable[[], dict[K, V]], keys: list[K]
           ) -> tuple[dict[K, V], list[K]]:
    """What was read, and the keys left over (all of them when the read failed)."""
    try:
        found = read()
    except FAILURES as exc:
        log.debug("reading %s directly failed (%s); asking through the admin client", what,
                  brief(exc))
        return {}, keys
    return found, [k for k in keys if k not in found]


async def _log_offsets(admin: Any, by_leader: dict[int, dict[str, list[int]]]
                       ) -> dict[TopicPartition, list[int]]:
    """Every partition read cleanly by all three requests: [stable, end, start]."""
    read: dict[TopicPartition, list[int]] = {}
    failed: set[TopicPartition] = set()
    for k, (isolation, spec) in enumerate(_SPECS):
        sent = [admin._manager.send(ListOffsetsRequest(  # to every leader at once
            replica_id=-1, isolation_level=isolation.value, topics=[
                _Topic(name=topic, partitions=[
                    _Partition(partition_index=p, timestamp=spec) for p in parts])
                for topic, parts in topics.items()],
            min_version=LIST_OFFSETS[0], max_version=LIST_OFFSETS[1]), node_id=leader)
            for leader, topics in by_leader.items()]
        for answer in sent:
            for topic in (await answer).topics:
                for p in topic.partitions:
                    tp = (topic.name, p.partition_index)
                    if p.error_code:
                        failed.add(tp)
                    elif k == 0:
                        read[tp] = [p.offset]
                    elif tp in read:
                        read[tp].append(p.offset)
    return {tp: offsets for tp, offsets in read.items()
            if tp not in failed and len(offsets) == len(_SPECS)}
