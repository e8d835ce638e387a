"""Decode the records of Kafka's internal ``__consumer_offsets`` topic (pure, no I/O).

Keys and values are big-endian and start with an int16 version.

- Key v0/v1: OffsetCommitKey (group, topic, partition). Key v2: GroupMetadataKey (group).
- Key v3: ConsumerGroupMetadataKey (group), whose value holds the consumer-protocol
  group's epoch; key v5: ConsumerGroupMemberMetadataKey (group, member id), whose value
  holds the member's client id, host and instance id. Both are decoded by kafka-python
  from Kafka's own schemas (``lagwatch.schemas``).
- Other key versions (partition metadata, assignments, regexes; share and streams groups)
  are reported as skipped, never an error.
- OffsetCommitValue v0-v4: offset, leader epoch (v3+), metadata, commit timestamp, expire
  timestamp (v1 only); v4 is a flexible version (compact strings, tagged fields).
- GroupMetadataValue v0-v4: protocol type, generation, protocol, leader, state timestamp
  (v2+), then members: member id, group instance id (v3+), client id, client host,
  rebalance timeout (v1+), session timeout, subscription, assignment; v4 is flexible.

A null value is a tombstone (the offset or the group was deleted). A truncated or unknown
record raises DecodeError, which the reader counts and skips.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from lagwatch import schemas


class DecodeError(ValueError):
    """The bytes are not a record this decoder knows."""


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    """A group committed an offset (``offset`` None: the commit was deleted)."""

    group: str
    topic: str
    partition: int
    offset: int | None
    commit_timestamp_ms: int | None = None
    leader_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member as the coordinator recorded it after a rebalance."""

    member_id: str
    client_id: str
    client_host: str
    group_instance_id: str | None = None
    session_timeout_ms: int = 0
    rebalance_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GroupMetadata:
    """A group's state after a rebalance (``generation`` None: the group was deleted)."""

    group: str
    generation: int | None
    protocol_type: str = ""
    protocol: str | None = None
    leader: str | None = None
    state_timestamp_ms: int | None = None
    members: tuple[GroupMember, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupEpoch:
    """A consumer-protocol group's epoch after a change of members or subscriptions
    (``epoch`` None: the group was deleted)."""

    group: str
    epoch: int | None


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    """A consumer-protocol member joined or was updated (``client_id`` None: it left)."""

    group: str
    member_id: str
    client_id: str | None
    client_host: str = ""
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record type this decoder does not handle (newer key versions)."""

    key_version: int


GroupRecord = GroupMetadata | GroupEpoch | MemberMetadata
"""The records that tell a group's rebalances."""
Record = OffsetCommit | GroupRecord | Skipped

_FLEXIBLE = 4


class _Reader:
    def __init__(self, data: bytes, flexible: bool = False) -> None:
        self.data, self.pos, self.flexible = data, 0, flexible

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"truncated: wanted {n} bytes at {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        return int(struct.unpack(fmt, self._take(size))[0])

    def int16(self) -> int:
        return self._unpack(">h")

    def int32(self) -> int:
        return self._unpack(">i")

    def int64(self) -> int:
        return self._unpack(">q")

    def varint(self) -> int:
        """An unsigned varint (compact lengths and tag counts)."""
        shift, value = 0, 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise DecodeError("varint too long")

    def _length(self) -> int:
        return self.varint() - 1 if self.flexible else self.int16()

    def nullable_string(self) -> str | None:
        n = self._length()
        if n < 0:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not UTF-8: {exc}") from None

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise DecodeError("null where a string is required")
        return value

    def skip_bytes(self) -> None:
        n = self.varint() - 1 if self.flexible else self.int32()
        if n > 0:
            self._take(n)

    def array_length(self) -> int:
        return self.varint() - 1 if self.flexible else self.int32()

    def skip_tagged_fields(self) -> None:
        if self.flexible:
            for _ in range(self.varint()):
                self.varint()  # tag
                self._take(self.varint())


def decode(key: bytes, value: bytes | None) -> Record:
    """Decode one record of __consumer_offsets."""
    k = _Reader(key)
    version = k.int16()
    if version in (0, 1):
        group, topic, partition = k.string(), k.string(), k.int32()
        if value is None:
            return OffsetCommit(group, topic, partition, None)
        return _offset_commit(group, topic, partition, value)
    if version == 2:
        group = k.string()
        if value is None:
            return GroupMetadata(group, None)
        return _group_metadata(group, value)
    if version == _GROUP_EPOCH:
        (group,) = _schema_key(schemas.ConsumerGroupMetadataKey, key)
        if value is None:
            return GroupEpoch(group, None)
        return GroupEpoch(group, _schema_value(schemas.ConsumerGroupMetadataValue, value).epoch)
    if version == _MEMBER_METADATA:
        group, member_id = _schema_key(schemas.ConsumerGroupMemberMetadataKey, key)
        if value is None:
            return MemberMetadata(group, member_id, None)
        m = _schema_value(schemas.ConsumerGroupMemberMetadataValue, value)
        return MemberMetadata(group, member_id, m.client_id, m.client_host.lstrip("/"),
                              m.instance_id)
    if version < 0:
        raise DecodeError(f"negative key version {version}")
    return Skipped(version)


_GROUP_EPOCH, _MEMBER_METADATA = 3, 5
# kafka-python's decoders fail with these on short or malformed input
_SCHEMA_ERRORS = (ValueError, struct.error, EOFError, IndexError, UnicodeDecodeError)


def _schema_key(schema: Any, key: bytes) -> tuple[str, ...]:
    """The string fields of a record key decoded by its schema (keys are version 0)."""
    try:
        decoded = schema.decode(key[2:], version=0, header=False)
    except _SCHEMA_ERRORS as exc:
        raise DecodeError(f"{schema.name}: {exc}") from None
    return tuple(decoded.to_dict().values())


def _schema_value(schema: Any, value: bytes) -> Any:
    """A record value decoded by its schema, whose int16 version must be one it knows."""
    version = _Reader(value).int16()
    if not 0 <= version <= schema.max_version:
        raise DecodeError(f"unknown {schema.name} version {version}")
    try:
        return schema.decode(value)
    except _SCHEMA_ERRORS as exc:
        raise DecodeError(f"{schema.name} v{version}: {exc}") from None


def _offset_commit(group: str, topic: str, partition: int, value: bytes) -> OffsetCommit:
    head = _Reader(value)
    version = head.int16()
    if not 0 <= version <= _FLEXIBLE:
        raise DecodeError(f"unknown OffsetCommitValue version {version}")
    r = _Reader(value[2:], flexible=version >= _FLEXIBLE)
    offset = r.int64()
    epoch = r.int32() if version >= 3 else None
    r.nullable_string()  # metadata
    timestamp = r.int64()
    if version == 1:
        r.int64()  # expire timestamp
    r.skip_tagged_fields()
    return OffsetCommit(group, topic, partition, offset, timestamp,
                        epoch if epoch is not None and epoch >= 0 else None)


def _group_metadata(group: str, value: bytes) -> GroupMetadata:
    version = _Reader(value).int16()
    if not 0 <= version <= _FLEXIBLE:
        raise DecodeError(f"unknown GroupMetadataValue version {version}")
    r = _Reader(value[2:], flexible=version >= _FLEXIBLE)
    protocol_type = r.string()
    generation = r.int32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_ts = r.int64() if version >= 2 else None
    members = []
    for _ in range(max(0, r.array_length())):
        member_id = r.string()
        instance = r.nullable_string() if version >= 3 else None
        client_id, client_host = r.string(), r.string()
        rebalance_timeout = r.int32() if version >= 1 else None
        session_timeout = r.int32()
        r.skip_bytes()  # subscription
        r.skip_bytes()  # assignment
        r.skip_tagged_fields()
        members.append(GroupMember(member_id, client_id, client_host.lstrip("/"), instance,
                                   session_timeout, rebalance_timeout))
    r.skip_tagged_fields()
    return GroupMetadata(group, generation, protocol_type, protocol, leader, state_ts,
                         tuple(members))
