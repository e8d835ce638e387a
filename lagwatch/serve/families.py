"""The lagwatch_* families as Prometheus text, rendered from the reports.

Each family is written one at a time, in chunks of samples, for the Exporter to compress
into pieces; labels are escaped once per series prefix, values written as Prometheus does.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import TypeVar

from lagwatch.detect.dlq import DlqReport
from lagwatch.detect.findings import Finding
from lagwatch.model import LogDir, TopicPartition
from lagwatch.report.view import ClusterReport, GroupReport, PartitionReport, TopicReport
from lagwatch.status import Status, severity_rank

_CHUNK = 2000  # samples per written chunk

Row = tuple[str, float]  # a series' label block, rendered ('cluster="c",group="g"'), and its value
Family = tuple[str, Iterator[bytes]]  # HELP and TYPE lines, then the samples in chunks


def _number(value: float) -> str:
    if type(value) is int:
        return str(value)
    if value.is_integer():
        return str(int(value))
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@lru_cache(maxsize=1 << 16)
def _pair(name: str, value: str) -> str:
    # Cluster, group and topic names repeat across every series of a family: format each
    # label pair once, not once per sample.
    return f'{name}="{_escape(value)}"'


def _labels(*pairs: tuple[str, str]) -> str:
    return ",".join(_pair(name, value) for name, value in pairs)


def _header(name: str, doc: str, kind: str = "gauge") -> str:
    return f"# HELP lagwatch_{name} {doc}\n# TYPE lagwatch_{name} {kind}\n"


def _family(name: str, doc: str, rows: Iterable[Row], kind: str = "gauge") -> Family:
    """One family in the text format: its HELP and TYPE lines, and its samples in chunks."""
    return _header(name, doc, kind), _samples(f"lagwatch_{name}", rows)


def _samples(full: str, rows: Iterable[Row]) -> Iterator[bytes]:
    lines: list[str] = []
    for labels, value in rows:
        lines.append(f"{full}{{{labels}}} {_number(value)}\n")
        if len(lines) >= _CHUNK:
            yield "".join(lines).encode()
            lines.clear()
    if lines:
        yield "".join(lines).encode()


T = TypeVar("T")
V = TypeVar("V")
Series = list[tuple[str, T]]  # label blocks paired with what their values are read from


@dataclass(frozen=True)
class _Index:
    """Every cluster, group and group-topic with its label block, built once per render
    and shared by all the families of its level. Formatting labels was most of a large
    render; a group-partition's block is its group-topic's plus a cached partition pair,
    which is quicker than keeping 200,000 of them and takes no memory."""

    clusters: Series[ClusterReport]
    groups: Series[GroupReport]
    topics: Series[TopicReport]
    health: Series[ClusterReport]  # the clusters whose own series are exported here

    @classmethod
    def of(cls, reports: list[ClusterReport], health: bool) -> _Index:
        clusters: Series[ClusterReport] = []
        groups: Series[GroupReport] = []
        topics: Series[TopicReport] = []
        for r in reports:
            cluster = _pair("cluster", r.cluster)
            clusters.append((cluster, r))
            for g in r.groups:
                group = f"{cluster},{_pair('group', g.group_id)}"
                groups.append((group, g))
                topics.extend((f"{group},{_pair('topic', t.topic)}", t) for t in g.topics)
        return cls(clusters, groups, topics, clusters if health else [])


@lru_cache(maxsize=1 << 14)
def _partition(partition: int) -> str:
    return _pair("partition", str(partition))


def _values(series: Series[T], value: Callable[[T], float | None]) -> Iterator[Row]:
    for labels, item in series:
        v = value(item)
        if v is not None:
            yield labels, v


def _partitions(name: str, doc: str, index: _Index,
                value: Callable[[PartitionReport], float | None]) -> Family:
    """A family with a series per group-partition: most of the series on a large cluster,
    so its lines are written in one step each (the group-topic's labels, the partition's
    cached pair, the value), with no row in between."""
    return _header(name, doc), _partition_samples(f"lagwatch_{name}", index, value)


def _partition_samples(full: str, index: _Index,
                       value: Callable[[PartitionReport], float | None]) -> Iterator[bytes]:
    lines: list[str] = []
    for labels, t in index.topics:
        head = f"{full}{{{labels},"
        for p in t.partitions:
            v = value(p)
            if v is not None:
                lines.append(f"{head}{_partition(p.partition)}}} "
                             f"{v if type(v) is int else _number(v)}\n")
        if len(lines) >= _CHUNK:
            yield "".join(lines).encode()
            lines.clear()
    if lines:
        yield "".join(lines).encode()


def _topic_partitions(index: _Index, values: Callable[[ClusterReport], Mapping[
        TopicPartition, V]], value: Callable[[V], float]) -> Iterator[Row]:
    """Series per topic-partition of a cluster (not of a group), in partition order."""
    for labels, r in index.clusters:
        for (topic, partition), item in sorted(values(r).items()):
            yield f"{labels},{_pair('topic', topic)},{_partition(partition)}", value(item)


def _last_stable(r: ClusterReport) -> dict[TopicPartition, int]:
    return {tp: o.last_stable for tp, o in r.snapshot.offsets.items()
            if o.last_stable is not None}


def _statuses(index: _Index) -> Iterator[Row]:
    for labels, g in index.groups:
        for s in Status:
            yield f"{labels},{_pair('status', s.value)}", 1.0 if s is g.status else 0.0


def _states(index: _Index) -> Iterator[Row]:
    for labels, g in index.groups:
        yield f"{labels},{_pair('state', g.state)}", 1.0


def _types(index: _Index) -> Iterator[Row]:
    for labels, g in index.groups:
        yield f"{labels},{_pair('type', g.group_type)}", 1.0


def _kinds(labels: str, findings: Iterable[Finding]) -> Iterator[Row]:
    counts = Tally((f.kind, str(f.severity)) for f in findings)
    for (kind, severity), n in sorted(counts.items()):
        yield f"{labels},{_labels(('kind', kind), ('severity', severity))}", float(n)


def _group_findings(index: _Index) -> Iterator[Row]:
    for labels, g in index.groups:
        yield from _kinds(labels, g.findings)


def _cluster_findings(index: _Index) -> Iterator[Row]:
    for labels, r in index.health:
        yield from _kinds(labels, r.verdict.cluster_findings)


def _dlqs(index: _Index, value: Callable[[DlqReport], float | None]) -> Iterator[Row]:
    for labels, r in index.clusters:
        for d in r.verdict.dlqs:
            v = value(d)
            if v is not None:
                yield f"{labels},{_pair('topic', d.topic)}", float(v)


def _log_dirs(index: _Index, value: Callable[[ClusterReport, LogDir], float | None]
              ) -> Iterator[Row]:
    for labels, r in index.health:
        for d in r.snapshot.meta.log_dirs if r.snapshot.meta else ():
            v = value(r, d)
            if v is not None:
                yield (f"{labels},{_labels(('broker', str(d.broker)), ('log_dir', d.path))}",
                       float(v))


def _skipped_records(index: _Index) -> Iterator[Row]:
    for labels, r in index.health:
        unknown, undecodable = r.snapshot.records_skipped
        yield f"{labels},{_pair('kind', 'unknown_type')}", float(unknown)
        yield f"{labels},{_pair('kind', 'undecodable')}", float(undecodable)


def _produce_skew(index: _Index) -> Iterator[Row]:
    for labels, r in index.clusters:
        for topic, ratio in sorted(r.verdict.produce_skew.items()):
            yield f"{labels},{_pair('topic', topic)}", ratio


def _lost(index: _Index) -> Iterator[Row]:
    for labels, r in index.clusters:
        for (group_id, topic), total in sorted(r.verdict.lost_total.items()):
            yield f"{labels},{_labels(('group', group_id), ('topic', topic))}", float(total)


def _meta(attribute: str) -> Callable[[ClusterReport], float | None]:
    def value(r: ClusterReport) -> float | None:
        meta = r.snapshot.meta
        if meta is None:
            return None
        found = getattr(meta, attribute)
        return float(len(found)) if isinstance(found, tuple) else found
    return value


def _partition_families(i: _Index) -> Iterator[Family]:
    """The per-partition families: most of the series on a large cluster."""
    yield _partitions("partition_lag_messages", "Log end offset minus committed offset.", i,
                      attrgetter("assessment.lag_messages"))
    yield _partitions("partition_lag_seconds", "Estimated age of the oldest unread message.", i,
                      attrgetter("assessment.lag_seconds"))
    yield _partitions("partition_committed_offset", "The group's committed offset.", i,
                      attrgetter("committed"))
    yield _partitions("partition_consume_rate_per_second",
                      "Messages per second the group commits past.", i,
                      attrgetter("assessment.consume_rate"))
    yield _partitions("partition_catchup_eta_seconds",
                      "Time to reach the log end at current rates.", i,
                      attrgetter("assessment.catchup_eta_s"))
    yield _partitions("partition_retention_eta_seconds",
                      "Time until retention deletes unread messages.", i,
                      attrgetter("assessment.retention_eta_s"))
    yield _family("partition_log_end_offset", "High watermark.",
                  _topic_partitions(i, attrgetter("snapshot.offsets"), attrgetter("log_end")))
    yield _family("partition_log_start_offset", "Earliest available offset.",
                  _topic_partitions(i, attrgetter("snapshot.offsets"), attrgetter("log_start")))
    yield _family("partition_last_stable_offset",
                  "Last stable offset: where read_committed consumers wait for the oldest "
                  "open transaction (the high watermark when none is open).",
                  _topic_partitions(i, _last_stable, float))
    yield _family("partition_produce_rate_per_second",
                  "Messages per second written to the partition.",
                  _topic_partitions(i, attrgetter("verdict.produce_rates"), float))


def families(reports: list[ClusterReport], per_partition: bool = True,
             health: bool = True) -> Iterator[Family]:
    """Yield the lagwatch_* families for the given reports, always the same families in the
    same order; without ``per_partition``, the lagwatch_partition_* families are left out.
    Without ``health`` (ha: another replica owns the cluster's shard), the clusters' own
    series (reachability, brokers, partitions' health, log dirs, cluster findings, the
    offsets topic and the controller) are left out too."""
    i = _Index.of(reports, health)
    yield _family("cluster_up", "1 if the last poll of the cluster succeeded, else 0.",
                  _values(i.health, lambda c: 1.0 if c.up else 0.0))
    yield _family("last_poll_timestamp_seconds", "Unix time of the last successful poll.",
                  _values(i.health, lambda c: c.last_success))
    yield _family("cluster_brokers", "Brokers registered in the cluster.",
                  _values(i.health, _meta("brokers")))
    yield _family("cluster_controller_id", "Node id of the active controller.",
                  _values(i.health, _meta("controller_id")))
    yield _family("cluster_offline_partitions", "Partitions without a leader.",
                  _values(i.health, _meta("offline")))
    yield _family("cluster_under_replicated_partitions",
                  "Partitions whose in-sync replicas are fewer than their replicas.",
                  _values(i.health, _meta("under_replicated")))
    if per_partition:
        yield from _partition_families(i)
    yield _family("group_lag_messages", "Lag summed over the topic's partitions.",
                  _values(i.topics, attrgetter("lag_messages")))
    yield _family("group_lag_seconds", "Largest time lag over the topic's partitions.",
                  _values(i.topics, attrgetter("lag_seconds")))
    yield _family("group_consume_rate_per_second",
                  "Consume rate summed over the topic's partitions.",
                  _values(i.topics, attrgetter("consume_rate")))
    yield _family("group_produce_rate_per_second",
                  "Produce rate summed over the partitions the group reads.",
                  _values(i.topics, attrgetter("produce_rate")))
    yield _family("group_catchup_eta_seconds",
                  "Time until the slowest partition catches up.",
                  _values(i.topics, attrgetter("catchup_eta_s")))
    yield _family("group_retention_eta_seconds",
                  "Soonest time retention deletes unread messages.",
                  _values(i.topics, attrgetter("retention_eta_s")))
    yield _family("lost_messages_total",
                  "Unread messages deleted by retention, counted once.", _lost(i),
                  kind="counter")
    yield _family("group_status", "1 for the group's current status, 0 for the others.",
                  _statuses(i))
    yield _family("blind_groups",
                  "Watched groups lagwatch cannot judge this poll: their committed or log "
                  "offsets could not be read or decoded (status unknown, never ok).",
                  _values(i.clusters, lambda c: float(sum(1 for g in c.groups if g.blind))))
    yield _family("group_members", "Members in the group.",
                  _values(i.groups, attrgetter("members")))
    yield _family("group_state", "1 for the group state the coordinator reports.",
                  _states(i))
    yield _family("group_info",
                  "1, labelled with the group's type: classic, consumer (KIP-848), share or "
                  "streams.", _types(i))
    yield _family("group_epoch",
                  "A consumer-protocol group's epoch (bumped by each change of members or "
                  "subscriptions).",
                  _values(i.groups, attrgetter("epoch")))
    yield _family("group_severity",
                  "Worst of the group's status and findings: 0 none, 1 warning, "
                  "2 critical.",
                  _values(i.groups, lambda g: float(severity_rank(g.severity))))
    yield _family("group_rebalances_total",
                  "Rebalances counted since lagwatch started (exact when "
                  "__consumer_offsets is read, else a lower bound).",
                  _values(i.groups, lambda g: g.churn.total if g.churn else None),
                  kind="counter")
    yield _family("group_rebalances_per_hour", "Rebalance rate over the window.",
                  _values(i.groups, lambda g: g.churn.per_hour if g.churn else None))
    yield _family("group_rebalancing_ratio",
                  "Share of the window's polls that caught the group rebalancing.",
                  _values(i.groups, lambda g: g.churn.rebalancing_share if g.churn else None))
    yield _family("group_findings", "Active findings about the group, by kind.",
                  _group_findings(i))
    yield _family("cluster_findings", "Active findings about the cluster, by kind.",
                  _cluster_findings(i))
    yield _family("topic_produce_skew_ratio",
                  "Busiest partition's produce rate over the topic's mean.",
                  _produce_skew(i))
    yield _family("dlq_inflow_per_second", "Messages per second arriving in the DLQ.",
                  _dlqs(i, lambda d: d.inflow_rate))
    yield _family("dlq_unread_messages",
                  "Messages its readers have not read (all of it when none reads it).",
                  _dlqs(i, lambda d: d.unread))
    yield _family("dlq_oldest_unread_seconds", "Age of the oldest unread DLQ message.",
                  _dlqs(i, lambda d: d.oldest_unread_s))
    yield _family("dlq_consumer_groups", "Consumer groups reading the DLQ.",
                  _dlqs(i, lambda d: len(d.readers)))
    yield _family("cluster_under_min_isr_partitions",
                  "Partitions with fewer in-sync replicas than min.insync.replicas.",
                  _values(i.health, _meta("under_min_isr")))
    yield _family("broker_log_dir_bytes", "Bytes the log dir's partitions hold.",
                  _log_dirs(i, lambda _c, d: d.size_bytes))
    yield _family("broker_log_dir_usable_bytes", "Free bytes on the log dir's disk.",
                  _log_dirs(i, lambda _c, d: d.usable_bytes))
    yield _family("broker_log_dir_growth_bytes_per_second",
                  "How fast the log dir grew over the window.",
                  _log_dirs(i, lambda c, d: c.verdict.log_dir_growth.get((d.broker, d.path))))
    yield _family("offsets_topic_records_skipped_total",
                  "__consumer_offsets records skipped: record types not decoded, "
                  "or undecodable (truncated, unknown version).",
                  _skipped_records(i), kind="counter")
    yield _family("cluster_controller_changes_total",
                  "Controller moves seen since lagwatch started.",
                  _values(i.health, lambda c: float(c.verdict.controller_changes)),
                  kind="counter")
