"""Read the log at committed offsets: the oldest unread record and what lies behind it.

A group's time lag is the age of the record at its committed offset. Rather than guess it
from how fast the log end moved, one bounded Fetch per leader reads the first batches at
each committed offset (``read_uncommitted``, no wait, up to ``PARTITION_BYTES`` a
partition) and takes the record's own timestamp. The batches read also say what the
unread offsets hold: transaction markers, aborted and still-open transactional records,
and offsets compaction removed.

``UnreadCache`` keeps one answer per (partition, committed offset), so a stuck group
costs one fetch, and spends at most ``budget`` fetches a poll, the longest-waiting first.
``scan`` is pure; ``fetch_unread`` is the only I/O here.
"""

from __future__ import annotations

import heapq
import logging
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kafka import TopicPartition as KafkaTP
from kafka.errors import KafkaError
from kafka.protocol.consumer import FetchRequest
from kafka.record import MemoryRecords

from lagwatch.kafka.versions import FETCH_MAX
from lagwatch.model import LogOffsets, TopicPartition, Unread

log = logging.getLogger(__name__)

PARTITION_BYTES = 64 * 1024  # read from each partition: a few producer batches
REFRESH_S = 60.0  # with budget to spare, read a standing offset again after this long
REQUEST_BYTES = 16 * 1024 * 1024  # read in one Fetch response at most
_NO_ERROR = 0
_TOPIC_AUTHORIZATION_FAILED = 29
REFUSED_S = 600.0  # a topic lagwatch may not read is asked again after this long
_ABORT = 0  # control record type of an abort marker

Key = tuple[TopicPartition, int]
"""(partition, committed offset)."""


class Refused(NamedTuple):
    """The broker refused to let lagwatch read the topic (no Read permission)."""

    topic: str


Answer = Unread | Refused | None
"""What a read at one committed offset gave: what it saw, a refusal, or nothing whole."""


def scan(data: bytes | None, offset: int, high_watermark: int) -> Unread | None:
    """Read fetched record batches from ``offset``; None when no complete batch came back.

    Counts stop at the last complete batch. A transactional record is aborted when an
    abort marker of its producer follows it in what was read, and pending when no marker
    of its producer does.
    """
    records = MemoryRecords(data or b"")
    oldest_at: float | None = None
    oldest_offset: int | None = None
    read_to = None
    count = markers = aborted = 0
    open_txn: dict[int, int] = defaultdict(int)  # producer id -> its records read so far
    while (batch := records.next_batch()) is not None:
        if batch.magic < 2:  # message format v0/v1, from before Kafka 0.11: records only
            for record in batch:
                read_to = record.offset + 1
                if record.offset >= offset:
                    count += 1
                    if oldest_offset is None:
                        oldest_at, oldest_offset = _seconds(record.timestamp), record.offset
            continue
        read_to = batch.next_offset
        if batch.next_offset <= offset:
            continue  # a batch before the offset (a compacted log can return one)
        if batch.is_control_batch:
            for marker in batch:
                markers += 1
                ended = open_txn.pop(batch.producer_id, 0)
                if marker.type == _ABORT:
                    aborted += ended
            continue
        n, first = _records_from(batch, offset)
        if oldest_offset is None and first is not None:
            oldest_at, oldest_offset = _seconds(first.timestamp), first.offset
        count += n
        if batch.is_transactional:
            open_txn[batch.producer_id] += n
    if read_to is None:
        return None
    read_to = max(read_to, offset)
    return Unread(offset, oldest_at, oldest_offset, read_to,
                  complete=read_to >= high_watermark, records=count, aborted=aborted,
                  pending=sum(open_txn.values()), markers=markers)


def _seconds(timestamp_ms: int | None) -> float | None:
    """A record's timestamp in epoch seconds; None when it has none (-1, or format v0)."""
    return None if timestamp_ms is None or timestamp_ms < 0 else timestamp_ms / 1000


# what decoding other producers' batches raises: kafka-python's errors, and those of the
# codecs (gzip and zlib, lz4, snappy, zstd) it hands the bytes to
_UNDECODABLE = (KafkaError, OSError, ValueError, RuntimeError, EOFError, zlib.error,
                struct.error)


class _Head(NamedTuple):
    timestamp: int
    offset: int


def _records_from(batch: Any, offset: int) -> tuple[int, Any]:
    """How many of a batch's records are at or after offset, and the first of them."""
    try:
        if batch.base_offset >= offset:  # the usual case: count from the header
            return batch.records_count, next(iter(batch), None)
        n, first = 0, None
        for record in batch:  # the batch holding the offset starts before it
            if record.offset >= offset:
                n += 1
                first = first or record
        return n, first
    except _UNDECODABLE as exc:  # a codec this host lacks, or a corrupt batch: the header
        log.debug("batch at %d not decoded (%s); reading its header", batch.base_offset, exc)
        start = max(offset, batch.base_offset)
        # the batch's newest timestamp: an age never above the true one
        return batch.last_offset - start + 1, _Head(batch.max_timestamp, start)


@dataclass(slots=True)
class UnreadCache:
    """What the log holds at each watched committed offset, read a budget at a time."""

    budget: int
    known: dict[Key, Unread] = field(default_factory=dict)
    read_at: dict[Key, float] = field(default_factory=dict)
    waiting_since: dict[Key, float] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)  # topic -> asked again after
    fetched: int = 0  # offsets asked for since start

    def wanted(self, committed: Iterable[tuple[TopicPartition, int]],
               offsets: Mapping[TopicPartition, LogOffsets], now: float) -> list[Key]:
        """Forget offsets no group holds any more; return what to fetch this poll.

        Wanted: every committed offset with unread messages inside the log. First those
        never read, the longest-waiting (and then the furthest behind) first; with budget
        to spare, offsets read before whose log has grown since (so counts stay whole), or
        read ``REFRESH_S`` ago (compaction may have removed the record since), the longest
        ago first.
        """
        self.refused = {t: until for t, until in self.refused.items() if until > now}
        refused = self.refused
        behind = {(tp, c): lo.log_end - c for tp, c in committed
                  if (lo := offsets.get(tp)) is not None and lo.log_start <= c < lo.log_end
                  and tp[0] not in refused}
        self.known = {k: v for k, v in self.known.items() if k in behind}
        self.read_at = {k: t for k, t in self.read_at.items() if k in self.known}
        waiting = self.waiting_since
        self.waiting_since = waiting = {k: waiting.get(k, now) for k in behind
                                        if k not in self.known}
        # the budget's worth of the smallest, not a sort of every offset waiting
        fresh = heapq.nsmallest(self.budget, waiting,
                                key=lambda k: (waiting[k], -behind[k], k))
        if len(fresh) >= self.budget:
            return fresh
        read_at = self.read_at
        stale = heapq.nsmallest(
            self.budget - len(fresh),
            (k for k, u in self.known.items()
             if now - read_at[k] >= REFRESH_S or (
                 u.complete and u.read_to < offsets[k[0]].log_end
                 and behind[k] <= PARTITION_BYTES // 16)),
            key=lambda k: (read_at[k], k))
        return fresh + stale

    def store(self, asked: int, results: Mapping[Key, Answer], now: float) -> list[str]:
        """Keep what a fetch read (a key not read waits for another poll); return the
        topics newly refused, which are not asked again for ``REFUSED_S``."""
        self.fetched += asked
        refused = []
        for key, answer in results.items():
            if isinstance(answer, Refused):
                if answer.topic not in self.refused:
                    refused.append(answer.topic)
                self.refused[answer.topic] = now + REFUSED_S
            elif answer is not None:
                self.known[key] = answer
                self.read_at[key] = now
                self.waiting_since.pop(key, None)
        return sorted(set(refused))

    def of(self, keys: Iterable[Key]) -> dict[Key, Unread]:
        """Return what is known of these keys."""
        return {k: u for k in keys if (u := self.known.get(k)) is not None}


def fetch_unread(admin: Any, keys: list[Key], timeout_ms: int,
                 leaders: Mapping[TopicPartition, int] | None = None) -> dict[Key, Answer]:
    """Fetch the first batches at each (partition, offset): one request per leader and
    round (a partition appears once in a request, so a second offset on it waits a round).
    ``leaders`` are the partitions' leaders when the caller knows them (a poll's own
    metadata); else they are looked up.
    """
    if not keys:
        return {}
    return dict(admin._manager.run(_fetch_all, admin, keys, timeout_ms, leaders))


async def _fetch_all(admin: Any, keys: list[Key], timeout_ms: int,
                     leaders: Mapping[TopicPartition, int] | None) -> dict[Key, Answer]:
    leader_of = leaders
    if leader_of is None:
        found = await admin._async_get_leader_for_partitions({KafkaTP(*tp) for tp, _ in keys})
        leader_of = {(tp.topic, tp.partition): leader for leader, tps in found.items()
                     for tp in tps}
    rounds: list[dict[int, dict[TopicPartition, int]]] = []
    for tp, offset in keys:
        leader = leader_of.get(tp, -1)
        if leader < 0:
            continue  # no leader: offline, asked again next poll
        for batch in rounds:
            if tp not in batch.setdefault(leader, {}):
                batch[leader][tp] = offset
                break
        else:
            rounds.append({leader: {tp: offset}})
    results: dict[Key, Answer] = {}
    for batch in rounds:
        results.update(await _send(admin, batch, timeout_ms))
    # A partition whose first batch is larger than PARTITION_BYTES comes back without a
    # complete batch unless it is the first of its request: ask for each such one alone.
    for (tp, offset), unread in list(results.items()):
        if unread is None:
            results.update(await _send(admin, {leader_of[tp]: {tp: offset}}, timeout_ms))
    return results


async def _send(admin: Any, batch: Mapping[int, Mapping[TopicPartition, int]],
                timeout_ms: int) -> dict[Key, Answer]:
    """Send one request to each leader at once, then read the answers."""
    sent = [(admin._manager.send(_request(wanted), node_id=leader,
                                 request_timeout_ms=timeout_ms), wanted)
            for leader, wanted in batch.items() if wanted]
    results: dict[Key, Answer] = {}
    for future, wanted in sent:
        results.update(_read_response(await future, wanted))
    return results


def _request(wanted: Mapping[TopicPartition, int]) -> Any:
    by_topic: dict[str, list[Any]] = defaultdict(list)
    for (topic, partition), offset in wanted.items():
        by_topic[topic].append(FetchRequest.FetchTopic.FetchPartition(
            partition=partition, current_leader_epoch=-1, fetch_offset=offset,
            last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=PARTITION_BYTES))
    return FetchRequest(
        replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=REQUEST_BYTES,
        isolation_level=0, session_id=0, session_epoch=-1, rack_id="",
        topics=[FetchRequest.FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
        forgotten_topics_data=[], max_version=FETCH_MAX)


def _read_response(response: Any, wanted: Mapping[TopicPartition, int]
                   ) -> dict[Key, Answer]:
    results: dict[Key, Answer] = {}
    for topic in response.responses:
        for p in topic.partitions:
            tp = (topic.topic, p.partition_index)
            if tp not in wanted:
                continue
            key = (tp, wanted[tp])
            if p.error_code == _TOPIC_AUTHORIZATION_FAILED:
                results[key] = Refused(tp[0])
                continue
            if p.error_code != _NO_ERROR:  # left out: asked again next poll
                log.debug("fetch %s[%d] at %d: error code %d", tp[0], tp[1], key[1],
                          p.error_code)
                continue
            results[key] = scan(p.records, key[1], p.high_watermark)
    return results
