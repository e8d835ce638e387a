"""kafka-python's answers turned into lagwatch's model: pure functions, no requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from lagwatch.model import (
    CLASSIC,
    CONSUMER,
    GroupSnapshot,
    LogDir,
    Member,
    PollError,
    Retention,
    TopicPartition,
)

_UNKNOWN_TOPIC = 3


def topic_partitions(described: list[dict[str, Any]]) -> tuple[
        dict[str, list[int]], list[TopicPartition], dict[TopicPartition, int], dict[str, int]]:
    """From a Metadata answer: partitions per existing topic, the offline partitions, the
    under-replicated ones with their count of in-sync replicas, and each topic's
    replication factor (its partition with the fewest replicas)."""
    topics: dict[str, list[int]] = {}
    offline: list[TopicPartition] = []
    under: dict[TopicPartition, int] = {}  # under-replicated -> in-sync replicas
    replication: dict[str, int] = {}
    for topic in described:
        if topic.get("error_code", 0) == _UNKNOWN_TOPIC:
            continue
        name = topic["name"]
        topics[name] = sorted(p["partition_index"] for p in topic["partitions"])
        replication[name] = min((len(p.get("replica_nodes", ())) for p in topic["partitions"]),
                                default=0)
        for p in topic["partitions"]:
            tp = (name, p["partition_index"])
            if p.get("leader_id", -1) < 0:
                offline.append(tp)
            if len(p.get("isr_nodes", ())) < len(p.get("replica_nodes", ())):
                under[tp] = len(p.get("isr_nodes", ()))
    return topics, offline, under, replication


def partition_leaders(described: list[dict[str, Any]]) -> dict[TopicPartition, int]:
    """From a Metadata answer: each partition's leader (-1: none)."""
    return {(t["name"], p["partition_index"]): p.get("leader_id", -1)
            for t in described if t.get("error_code", 0) != _UNKNOWN_TOPIC
            for p in t["partitions"]}


def log_dirs(described: list[dict[str, Any]]) -> tuple[LogDir, ...]:
    """From a DescribeLogDirs answer: each broker's log directories."""
    dirs = []
    for broker in described:
        for d in broker.get("log_dirs", ()):
            size = sum(p.get("partition_size", 0) for t in d.get("topics", ())
                       for p in t.get("partitions", ()))
            usable, total = d.get("usable_bytes", -1), d.get("total_bytes", -1)
            code = d.get("error_code", 0)
            dirs.append(LogDir(broker["broker"], d.get("log_dir", "?"), size,
                               usable if usable >= 0 else None,
                               total if total >= 0 else None,
                               f"error code {code}" if code else None))
    return tuple(sorted(dirs, key=lambda d: (d.broker, d.path)))


def retention(configs: dict[str, dict[str, Any]]) -> Retention:
    """From a DescribeConfigs answer: a topic's retention and cleanup policy."""
    def value(key: str) -> str:
        return str(configs.get(key, {}).get("value") or "")

    policy = value("cleanup.policy") or "delete"
    isr = value("min.insync.replicas")
    unclean = value("unclean.leader.election.enable")
    ms = int(value("retention.ms") or -1)
    size = int(value("retention.bytes") or -1)
    deletes = "delete" in policy
    return Retention(retention_s=ms / 1000 if ms >= 0 and deletes else None,
                     retention_bytes=size if size >= 0 and deletes else None,
                     cleanup_policy=policy,
                     min_compaction_lag_s=max(0, int(value("min.compaction.lag.ms") or 0)) / 1000,
                     min_insync_replicas=int(isr) if isr.isdigit() else None,
                     unclean_leader_election={"true": True, "false": False}.get(unclean.lower()))


def group_type(listed: dict[str, Any]) -> str:
    """A group's type; brokers before ListGroups v5 (Kafka 3.8) know classic groups only."""
    return str(listed.get("group_type") or CLASSIC).lower()


def group_snapshot(group_id: str, listed: dict[str, Any], info: dict[str, Any] | None,
           committed: dict[TopicPartition, int]) -> GroupSnapshot:
    kind = group_type(listed)
    protocol = str(listed.get("protocol_type") or "")
    if kind == CONSUMER and info is not None:
        return GroupSnapshot(group_id, state=info["group_state"] or "Unknown",
                             protocol_type=protocol, members=info["members"],
                             committed=committed, group_type=kind, epoch=info["epoch"],
                             assignment_epoch=info["assignment_epoch"],
                             assignor=info["assignor"])
    if kind != CLASSIC or info is None:
        # not described (a type lagwatch does not judge, or describing failed): ListGroups
        # still knows the state
        return GroupSnapshot(group_id, state=listed.get("group_state") or "Unknown",
                             protocol_type=protocol, members=None, committed=committed,
                             group_type=kind)
    return GroupSnapshot(
        group_id=group_id,
        state=info.get("group_state") or "Unknown",
        protocol_type=info.get("protocol_type") or "",
        members=tuple(_member(m) for m in info.get("members", ())),
        committed=committed,
        assignor=info.get("protocol_data") or None,  # the assignor the group agreed on
    )


def _member(raw: dict[str, Any]) -> Member:
    assignment = raw.get("member_assignment")
    assigned: Iterable[dict[str, Any]] = (
        assignment.get("assigned_partitions", ()) if isinstance(assignment, dict) else ())
    return Member(
        member_id=raw.get("member_id", ""),
        client_id=raw.get("client_id", ""),
        client_host=raw.get("client_host", "").lstrip("/"),
        group_instance_id=raw.get("group_instance_id"),
        assignment=tuple(sorted((a["topic"], p) for a in assigned for p in a["partitions"])),
    )


def record_missing_topics(groups: dict[str, GroupSnapshot], missing: set[str],
                           errors: list[PollError]) -> None:
    for topic in sorted(missing):
        holders = sorted(g.group_id for g in groups.values()
                         if any(tp[0] == topic for tp in g.partitions()))
        errors.append(PollError("metadata", f"topic {topic}",
                                "topic does not exist; offsets are still held by group(s) "
                                + ", ".join(holders)))


def with_blind_spots(groups: dict[str, GroupSnapshot], unread: Mapping[str, str],
                     metadata_error: str | None, log_unread: Mapping[str, str]
                     ) -> dict[str, GroupSnapshot]:
    """The groups, each judged one with what this poll could not read of it
    (``GroupSnapshot.blind``): its committed offsets (``unread``: group -> why), the
    cluster's metadata (``metadata_error``), the log offsets of a topic that exists
    (``log_unread``: topic -> why).

    A topic that does not exist is no blind spot: its offsets are stale commits, and a
    poll error says so.
    """
    if not (unread or metadata_error or log_unread):
        return groups
    result = {}
    for gid, group in groups.items():
        causes = []
        if gid in unread:
            causes.append(f"the committed offsets could not be read ({unread[gid]})")
        topics = {tp[0] for tp in group.partitions()}
        if metadata_error is not None and topics:
            causes.append(f"the cluster's metadata could not be read ({metadata_error})")
        causes.extend(f"the log offsets of topic {t} could not be read ({log_unread[t]})"
                      for t in sorted(topics & log_unread.keys()))
        result[gid] = replace(group, blind=tuple(causes)) if causes and group.judged else group
    return result
