"""ConsumerGroupDescribe (API key 69) through kafka-python's admin client (I/O).

kafka-python 3.0 describes classic groups only; DescribeGroups reports a group on the
KIP-848 consumer protocol as dead with no members. This sends Kafka's own
ConsumerGroupDescribe message (``lagwatch.schemas``) the way kafka-python sends
DescribeGroups: the groups are bucketed by coordinator, one request per coordinator, over
the admin client's own connections and IO thread.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kafka import errors

from lagwatch.kafka.versions import CONSUMER_GROUP_DESCRIBE_MAX
from lagwatch.model import Member, TopicPartition
from lagwatch.schemas import ConsumerGroupDescribeRequest


def describe_consumer_groups(admin: Any, group_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Describe consumer-protocol groups: ``{group: {group_state, epoch, assignment_epoch,
    assignor, members, error}}``, an error for one group in its ``error`` (not raised)."""
    described: dict[str, dict[str, Any]] = admin._manager.run(_describe, admin, group_ids)
    return described


async def _describe(admin: Any, group_ids: list[str]) -> dict[str, dict[str, Any]]:
    by_coordinator: dict[int, list[str]] = defaultdict(list)
    for group_id, node in (await admin._find_coordinator_ids(group_ids)).items():
        by_coordinator[node].append(group_id)
    result = {}
    for node, ids in by_coordinator.items():
        request = ConsumerGroupDescribeRequest(group_ids=ids,
                                               include_authorized_operations=False,
                                               max_version=CONSUMER_GROUP_DESCRIBE_MAX)
        response = await admin._manager.send(request, node_id=node)
        result.update({g.group_id: _group(g) for g in response.groups})
    return result


def _group(raw: Any) -> dict[str, Any]:
    error = (str(errors.for_code(raw.error_code)(raw.error_message or ""))
             if raw.error_code else None)
    return {"group_state": raw.group_state, "epoch": raw.group_epoch,
            "assignment_epoch": raw.assignment_epoch, "assignor": raw.assignor_name or None,
            "members": tuple(_member(m) for m in raw.members), "error": error}


def _member(raw: Any) -> Member:
    return Member(member_id=raw.member_id, client_id=raw.client_id,
                  client_host=raw.client_host.lstrip("/"), group_instance_id=raw.instance_id,
                  assignment=_partitions(raw.assignment), member_epoch=raw.member_epoch,
                  target=_partitions(raw.target_assignment))


def _partitions(assignment: Any) -> tuple[TopicPartition, ...]:
    return tuple(sorted((t.topic_name, p) for t in assignment.topic_partitions
                        for p in t.partitions))
