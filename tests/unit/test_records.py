"""Decoding __consumer_offsets records: every supported version, and what is skipped."""

from __future__ import annotations

import logging
import struct
from types import SimpleNamespace
from typing import Any

import pytest

from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.offsets_reader import OffsetsTopicReader
from lagwatch.records import (
    DecodeError,
    GroupEpoch,
    GroupMember,
    GroupMetadata,
    MemberMetadata,
    OffsetCommit,
    Skipped,
    decode,
)

# Captured from Apache Kafka 4.1.1: OffsetCommitKey v1 + OffsetCommitValue v4 (flexible),
# and GroupMetadataKey v2 + GroupMetadataValue v3 with one kafka-python member.
KAFKA_41_COMMIT = (
    bytes.fromhex("0001000e67726f75702d6432383833382d31000e746f7069632d6432383833382d30"
                  "00000000"),
    bytes.fromhex("00040000000000000004ffffffff01000001a21b27fd4c00"))
KAFKA_41_GROUP = (
    bytes.fromhex("0002000e67726f75702d3137336363312d31"),
    bytes.fromhex(
        "00030008636f6e73756d657200000001000572616e676500386b61666b612d707974686f6e2d332e30"
        "2e31322d33316661633735652d316337662d346364302d623232312d306239306232643561353932"
        "000001a21b28212b0000000100386b61666b612d707974686f6e2d332e302e31322d333166616337"
        "35652d316337662d346364302d623232312d306239306232643561353932ffff00136b61666b612d"
        "707974686f6e2d332e302e3132000a2f3132372e302e302e31000493e0000017700000001a000000"
        "000001000e746f7069632d3137336363312d30000000000000000a00000000000000000000"))
MEMBER = "kafka-python-3.0.12-31fac75e-1c7f-4cd0-b221-0b90b2d5a592"

# Captured from Apache Kafka 4.1.1 as a kafka-clients 4.1.1 consumer (group.protocol=consumer)
# joined group g848 and left it: ConsumerGroupMemberMetadataKey (record type 5) with its v0
# value, then ConsumerGroupMetadataKey (record type 3) with a v0 value holding epoch 1 and
# the metadata hash as tagged field 0; on leaving, the member's tombstone and epoch 2.
KAFKA_41_MEMBER_KEY = bytes.fromhex(
    "000500046738343800164f3462395f564a75514832384776624e50616c5f6251")
KAFKA_41_MEMBER = bytes.fromhex(
    "0000000012776f726b6c6f61642d636f6e73756d65720b2f3132372e302e302e31020770726f746f3101"
    "000493e00001000100")
KAFKA_41_EPOCH_KEY = bytes.fromhex("0003000467383438")
KAFKA_41_EPOCH_1 = bytes.fromhex("0000000000010100089275ad5cce60906f")
KAFKA_41_EPOCH_2 = bytes.fromhex("00000000000200")
JAVA_MEMBER = "O4b9_VJuQH28GvbNPal_bQ"


def s(text: str | None) -> bytes:
    """A classic (int16-length) string."""
    if text is None:
        return struct.pack(">h", -1)
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def cs(text: str | None) -> bytes:
    """A compact (varint length + 1) string, for lengths under 127."""
    if text is None:
        return b"\x00"
    raw = text.encode()
    return bytes([len(raw) + 1]) + raw


def commit_key(version: int = 1) -> bytes:
    return struct.pack(">h", version) + s("billing") + s("orders") + struct.pack(">i", 3)


def group_key() -> bytes:
    return struct.pack(">h", 2) + s("billing")


def test_kafka_41_offset_commit_v4_decodes() -> None:
    assert decode(*KAFKA_41_COMMIT) == OffsetCommit(
        "group-d28838-1", "topic-d28838-0", 0, 4, commit_timestamp_ms=1795751935308)


def test_kafka_41_group_metadata_v3_decodes() -> None:
    assert decode(*KAFKA_41_GROUP) == GroupMetadata(
        "group-173cc1-1", 1, "consumer", "range", MEMBER, 1795751944491,
        (GroupMember(MEMBER, "kafka-python-3.0.12", "127.0.0.1", None, 6000, 300000),))


@pytest.mark.parametrize(("version", "body", "epoch"), [
    (0, struct.pack(">q", 42) + s("m") + struct.pack(">q", 1000), None),
    (1, struct.pack(">q", 42) + s("m") + struct.pack(">qq", 1000, 9999), None),
    (2, struct.pack(">q", 42) + s("") + struct.pack(">q", 1000), None),
    (3, struct.pack(">qi", 42, 7) + s(None) + struct.pack(">q", 1000), 7),
    (4, struct.pack(">qi", 42, 7) + cs("meta") + struct.pack(">q", 1000) + b"\x00", 7),
])
def test_offset_commit_value_versions(version: int, body: bytes, epoch: int | None) -> None:
    value = struct.pack(">h", version) + body
    assert decode(commit_key(0), value) == OffsetCommit("billing", "orders", 3, 42, 1000, epoch)


def _member(version: int) -> bytes:
    if version >= 4:
        return (cs("m-1") + cs("inst-1") + cs("client-1") + cs("/10.0.0.1")
                + struct.pack(">ii", 60000, 10000) + b"\x04sub" + b"\x01" + b"\x00")
    fields = s("m-1") + (s("inst-1") if version >= 3 else b"") + s("client-1") + s("/10.0.0.1")
    fields += struct.pack(">i", 60000) if version >= 1 else b""
    return fields + struct.pack(">i", 10000) + struct.pack(">i", 3) + b"sub" + struct.pack(
        ">i", 0)


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_group_metadata_value_versions(version: int) -> None:
    if version >= 4:
        header = cs("consumer") + struct.pack(">i", 5) + cs("range") + cs("m-1")
        header += struct.pack(">q", 123) + b"\x02"  # one member (compact array: count + 1)
        value = struct.pack(">h", version) + header + _member(version) + b"\x00"
    else:
        header = s("consumer") + struct.pack(">i", 5) + s("range") + s("m-1")
        header += struct.pack(">q", 123) if version >= 2 else b""
        value = struct.pack(">h", version) + header + struct.pack(">i", 1) + _member(version)
    decoded = decode(group_key(), value)
    assert decoded == GroupMetadata(
        "billing", 5, "consumer", "range", "m-1", 123 if version >= 2 else None,
        (GroupMember("m-1", "client-1", "10.0.0.1", "inst-1" if version >= 3 else None,
                     10000, 60000 if version >= 1 else None),))


def test_tombstones_mean_deleted() -> None:
    assert decode(commit_key(), None) == OffsetCommit("billing", "orders", 3, None)
    assert decode(group_key(), None) == GroupMetadata("billing", None)


def test_kafka_41_consumer_protocol_member_joins_and_leaves() -> None:
    assert decode(KAFKA_41_MEMBER_KEY, KAFKA_41_MEMBER) == MemberMetadata(
        "g848", JAVA_MEMBER, "workload-consumer", "127.0.0.1", None)
    assert decode(KAFKA_41_MEMBER_KEY, None) == MemberMetadata("g848", JAVA_MEMBER, None)


def test_kafka_41_consumer_protocol_group_epochs_with_and_without_tagged_fields() -> None:
    assert decode(KAFKA_41_EPOCH_KEY, KAFKA_41_EPOCH_1) == GroupEpoch("g848", 1)
    assert decode(KAFKA_41_EPOCH_KEY, KAFKA_41_EPOCH_2) == GroupEpoch("g848", 2)
    assert decode(KAFKA_41_EPOCH_KEY, None) == GroupEpoch("g848", None)


def test_static_member_keeps_its_instance_id() -> None:
    value = (struct.pack(">h", 0) + cs("pod-1") + cs(None) + cs("billing-1") + cs("/10.0.0.7")
             + b"\x02" + cs("orders") + cs(None) + struct.pack(">i", 300000) + cs("uniform")
             + b"\x00")
    assert decode(KAFKA_41_MEMBER_KEY, value) == MemberMetadata(
        "g848", JAVA_MEMBER, "billing-1", "10.0.0.7", "pod-1")


@pytest.mark.parametrize("version", [4, 6, 7, 8, 9, 11, 16, 17])
def test_newer_record_types_are_skipped_not_failed(version: int) -> None:
    assert decode(struct.pack(">h", version) + b"anything", b"whatever") == Skipped(version)


@pytest.mark.parametrize(("key", "value", "message"), [
    (commit_key(), struct.pack(">h", 9) + b"\x00" * 20, "unknown OffsetCommitValue version 9"),
    (group_key(), struct.pack(">h", 7), "unknown GroupMetadataValue version 7"),
    (commit_key(), KAFKA_41_COMMIT[1][:10], "truncated: wanted 4 bytes at 8 of 8"),
    (commit_key()[:5], None, "truncated: wanted 7 bytes at 4 of 5"),
    (struct.pack(">h", -1), None, "negative key version -1"),
    (KAFKA_41_EPOCH_KEY, struct.pack(">h", 1) + KAFKA_41_EPOCH_2[2:],
     "unknown ConsumerGroupMetadataValue version 1"),
    (KAFKA_41_EPOCH_KEY, KAFKA_41_EPOCH_2[:4],
     "ConsumerGroupMetadataValue v0: unpack requires a buffer of 4 bytes"),
    (KAFKA_41_MEMBER_KEY[:12], None,
     "ConsumerGroupMemberMetadataKey: Buffer underrun decoding string"),
])
def test_broken_records_raise_decode_error(key: bytes, value: bytes | None,
                                           message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(key, value)
    assert str(caught.value) == message


def test_the_reader_counts_every_undecodable_record_and_says_each_kind_once(
        caplog: pytest.LogCaptureFixture) -> None:
    reader = OffsetsTopicReader(ClusterConfig(name="prod", bootstrap_servers=["k:9092"]))
    newer = SimpleNamespace(key=commit_key(), value=struct.pack(">h", 9) + b"\x00" * 20,
                            timestamp=0)
    records: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="lagwatch.kafka.offsets_reader"):
        for _ in range(3):
            reader._decode(newer, records)
    assert (records, reader.undecodable) == ([], 3)
    assert caplog.messages == [
        "cluster prod: skipping __consumer_offsets records lagwatch cannot decode (unknown "
        "OffsetCommitValue version 9); they are counted in "
        'lagwatch_offsets_topic_records_skipped_total{kind="undecodable"}, and commit times '
        "and rebalance counts may miss what they held"]
