"""Kafka message schemas that kafka-python 3.0 lacks, loaded by its own schema machinery.

The JSON files are Apache Kafka 4.1.1's own (``common/message/`` in the kafka-clients and
kafka-group-coordinator source jars), unchanged. kafka-python builds a message class from
such a file, so nothing here parses bytes by hand:

- ConsumerGroupDescribe (API key 69, versions 0-1): describes groups on the KIP-848
  consumer protocol, which DescribeGroups reports as dead.
- The consumer-protocol records the group coordinator writes to ``__consumer_offsets``:
  the group's epoch (record type 3) and each member's metadata (record type 5).
"""

from __future__ import annotations

import sys
from typing import Any

from kafka.protocol.api_data import ApiData
from kafka.protocol.api_message import ApiMessage

_HERE = sys.modules[__name__]


class ConsumerGroupDescribeRequest(ApiMessage, load_json=_HERE):  # type: ignore[misc,call-arg]
    """Describe consumer-protocol groups (one request per coordinator)."""


class ConsumerGroupDescribeResponse(ApiMessage, load_json=_HERE):  # type: ignore[misc,call-arg]
    """Groups with their epochs, assignor and members (epochs, assignments, targets)."""


def _as_record(_cls: type, schema: dict[str, Any]) -> dict[str, Any]:
    # Record schemas are typed coordinator-key/-value; kafka-python decodes them as plain
    # data. Their tagged fields (the metadata hash, a classic member's protocols) are not
    # needed, and kafka-python 3.0 cannot decode a null tagged struct, so they are skipped
    # like any unknown tag.
    schema["type"] = "data"
    schema["fields"] = [f for f in schema["fields"] if "taggedVersions" not in f]
    return schema


_RECORD: Any = classmethod(_as_record)  # kafka-python reads json_patch from each class's own body


class ConsumerGroupMetadataKey(ApiData, load_json=_HERE):  # type: ignore[misc,call-arg]
    """Key of record type 3: the group."""

    json_patch = _RECORD


class ConsumerGroupMetadataValue(ApiData, load_json=_HERE):  # type: ignore[misc,call-arg]
    """The group epoch, bumped by every change of members or subscriptions."""

    json_patch = _RECORD


class ConsumerGroupMemberMetadataKey(ApiData, load_json=_HERE):  # type: ignore[misc,call-arg]
    """Key of record type 5: the group and the member id."""

    json_patch = _RECORD


class ConsumerGroupMemberMetadataValue(ApiData, load_json=_HERE):  # type: ignore[misc,call-arg]
    """A member: instance id, client id and host, subscriptions (null value: it left)."""

    json_patch = _RECORD
