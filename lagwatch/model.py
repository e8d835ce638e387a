"""Value types shared by every stage: what one poll of one cluster saw.

Everything here is immutable once built. Times are epoch seconds (float); durations are
seconds and their names end in ``_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lagwatch.records import GroupRecord, OffsetCommit

TopicPartition = tuple[str, int]
"""(topic, partition)."""

_EMPTY: Mapping[TopicPartition, int] = MappingProxyType({})


STAGES = ("connect", "offsets", "describe", "metadata", "cluster", "log_offsets", "retention",
          "offsets_topic", "log_dirs", "records", "transactions")
"""The reader's stages a poll error can come from (the ``stage`` label of poll errors)."""


@dataclass(frozen=True, slots=True)
class LogOffsets:
    """The available range of one partition's log: [log_start, log_end).

    ``last_stable`` is the last stable offset (LSO): the first offset of the oldest open
    transaction, where ``read_committed`` consumers must wait; ``log_end`` (the high
    watermark) when no transaction is open. None when it could not be read.
    """

    log_start: int
    log_end: int
    last_stable: int | None = None

    @property
    def held_back(self) -> bool:
        """Whether an open transaction holds ``read_committed`` consumers below the end."""
        return self.last_stable is not None and self.last_stable < self.log_end


@dataclass(frozen=True, slots=True)
class Unread:
    """What one bounded fetch at a group's committed offset saw of the unread log.

    The fetch read every offset in ``[offset, read_to)``; ``complete`` says whether that
    reached the high watermark, so the counts cover everything unread. ``oldest_at`` is the
    timestamp (epoch seconds; CreateTime or LogAppendTime as the topic says) of the first
    data record at or after ``offset``, the oldest unread message.
    """

    offset: int
    oldest_at: float | None
    oldest_offset: int | None
    read_to: int
    complete: bool
    records: int = 0  # data records in [offset, read_to); fewer than offsets when compacted
    aborted: int = 0  # of those, records of aborted transactions
    pending: int = 0  # of those, records of transactions not yet ended
    markers: int = 0  # transaction markers (control records) in [offset, read_to)

    @property
    def readable(self) -> int:
        """Records a consumer will be handed (aborted and still-open ones are not)."""
        return self.records - self.aborted - self.pending


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction open on a partition, as DescribeProducers and ListTransactions say."""

    producer_id: int
    start_offset: int
    transactional_id: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a consumer group, as DescribeGroups or ConsumerGroupDescribe reports it.

    ``member_epoch`` and ``target`` (the partitions the coordinator means it to own once it
    has reconciled) are known for consumer-protocol members only.
    """

    member_id: str
    client_id: str
    client_host: str
    group_instance_id: str | None = None
    assignment: tuple[TopicPartition, ...] = ()
    member_epoch: int | None = None
    target: tuple[TopicPartition, ...] | None = None


CLASSIC, CONSUMER = "classic", "consumer"
JUDGED_TYPES = frozenset({CLASSIC, CONSUMER})
"""Group types whose committed offsets lagwatch judges: classic groups and groups on the
KIP-848 consumer protocol. Share (KIP-932) and streams (KIP-1071) groups are listed only."""


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """A consumer group: its coordinator-reported state, members and committed offsets.

    ``group_type`` is what ListGroups says (``classic``, ``consumer``, ``share``,
    ``streams``). ``members`` is None when the coordinator could not describe the group.
    ``epoch``, ``assignment_epoch`` and ``assignor`` are known for consumer-protocol groups.
    ``blind`` says, a clause each, what of the group this poll could not read or decode
    (its committed offsets, a topic's log offsets): the group is then ``unknown``, never
    ``ok``, where nothing worse is seen.
    """

    group_id: str
    state: str
    protocol_type: str = "consumer"
    members: tuple[Member, ...] | None = ()
    committed: Mapping[TopicPartition, int] = field(default_factory=lambda: _EMPTY)
    group_type: str = CLASSIC
    epoch: int | None = None
    assignment_epoch: int | None = None
    assignor: str | None = None
    blind: tuple[str, ...] = ()

    @property
    def judged(self) -> bool:
        """Whether lagwatch judges this type of group."""
        return self.group_type in JUDGED_TYPES

    def assigned(self) -> frozenset[TopicPartition]:
        """Return every partition some member is assigned."""
        return frozenset(tp for member in self.members or () for tp in member.assignment)

    def partitions(self) -> frozenset[TopicPartition]:
        """Return the partitions the group commits to or is assigned."""
        return frozenset(self.committed) | self.assigned()


@dataclass(frozen=True, slots=True)
class LogDir:
    """One broker's log directory: what its partitions hold, and its disk."""

    broker: int
    path: str
    size_bytes: int
    usable_bytes: int | None = None
    total_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterMeta:
    """Cluster-wide facts from one poll."""

    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[int, ...]
    partitions: int
    offline: tuple[TopicPartition, ...] = ()
    under_replicated: tuple[TopicPartition, ...] = ()
    under_min_isr: tuple[TopicPartition, ...] = ()
    log_dirs: tuple[LogDir, ...] = ()
    replication: Mapping[str, int] = field(default_factory=dict)  # topic -> fewest replicas


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a topic keeps messages (``retention_s`` None means forever, or compaction),
    and the settings that decide whether an acknowledged message survives a broker."""

    retention_s: float | None
    retention_bytes: int | None = None
    cleanup_policy: str = "delete"
    min_compaction_lag_s: float = 0.0  # compacted topics: how long a record is kept whole
    min_insync_replicas: int | None = None
    unclean_leader_election: bool | None = None

    @property
    def compacted(self) -> bool:
        """Whether the log cleaner may remove records older updates of a key superseded."""
        return "compact" in self.cleanup_policy


@dataclass(frozen=True, slots=True)
class PollError:
    """Something one poll could not read; the rest of the poll went on without it."""

    stage: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.stage} {self.subject}: {self.message}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one poll of one cluster saw. ``up`` is False when the cluster could not be read."""

    cluster: str
    taken_at: float
    duration_s: float
    up: bool
    groups: Mapping[str, GroupSnapshot] = field(default_factory=dict)
    offsets: Mapping[TopicPartition, LogOffsets] = field(default_factory=dict)
    meta: ClusterMeta | None = None
    retention: Mapping[str, Retention] = field(default_factory=dict)
    group_records: tuple[tuple[float, GroupRecord], ...] = ()
    """Group records (classic group metadata, consumer-protocol epochs and members) read
    from __consumer_offsets since the last poll (time, record)."""
    commit_records: tuple[tuple[float, OffsetCommit], ...] = ()
    """OffsetCommit records of watched groups since the last poll (commit time, record)."""
    records_exact: bool = False
    """Whether __consumer_offsets could be read (rebalance counts and commit times are then
    exact)."""
    records_skipped: tuple[int, int] = (0, 0)
    """Records of __consumer_offsets skipped since start: (unknown types, undecodable)."""
    unread: Mapping[tuple[TopicPartition, int], Unread] = field(default_factory=dict)
    """What the log holds at committed offsets, keyed by (partition, committed offset):
    read for as many group-partitions as the poll's budget allows, kept while the offset
    stands."""
    transactions: Mapping[TopicPartition, OpenTransaction] = field(default_factory=dict)
    """Transactions open at the last stable offset of partitions where it stood still."""
    transaction_max_timeout_s: float | None = None
    """The brokers' ``transaction.max.timeout.ms``: no transaction may stay open longer."""
    records_fetched: int = 0
    """Committed offsets whose record this poll fetched."""
    errors: tuple[PollError, ...] = ()
