"""Prometheus metrics, rendered from the latest reports at scrape time.

A scrape never talks to Kafka; it only reads State. The lagwatch_* families are written
as Prometheus text one family at a time, in chunks, so a cluster with 50,000
group-partitions costs a scrape a few megabytes rather than an object per sample. Poll
timings and errors are counted as polls happen (PollMetrics), in a prometheus-client
registry rendered first.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from lagwatch.collect import STAGES
from lagwatch.detect.dlq import DlqReport
from lagwatch.model import LogDir, Snapshot
from lagwatch.report import ClusterReport, GroupReport, PartitionReport, TopicReport
from lagwatch.state import State
from lagwatch.status import Severity, Status

POLL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CHUNK = 2000  # samples per written chunk

Row = tuple[tuple[str, ...], float]


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@lru_cache(maxsize=1 << 16)
def _pair(name: str, value: str) -> str:
    # Cluster, group and topic names repeat across every series of a family: format each
    # label pair once, not once per sample (the hottest spot of a large scrape).
    return f'{name}="{_escape(value)}"'


def _family(name: str, doc: str, labels: tuple[str, ...], rows: Iterable[Row],
            kind: str = "gauge") -> Iterator[str]:
    """Yield one family in the text format: HELP, TYPE, then its samples in chunks."""
    full = f"lagwatch_{name}"
    yield f"# HELP {full} {doc}\n# TYPE {full} {kind}\n"
    names = ("cluster", *labels)
    lines: list[str] = []
    for values, value in rows:
        pairs = ",".join(map(_pair, names, values))
        lines.append(f"{full}{{{pairs}}} {_number(value)}\n")
        if len(lines) >= _CHUNK:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def _clusters(reports: list[ClusterReport], value: Callable[[ClusterReport], float | None]
              ) -> Iterator[Row]:
    for r in reports:
        v = value(r)
        if v is not None:
            yield (r.cluster,), v


def _partitions(reports: list[ClusterReport],
                value: Callable[[PartitionReport], float | None]) -> Iterator[Row]:
    for r in reports:
        for g in r.groups:
            for t in g.topics:
                for p in t.partitions:
                    v = value(p)
                    if v is not None:
                        yield (r.cluster, g.group_id, t.topic, str(p.partition)), v


def _topics(reports: list[ClusterReport], value: Callable[[TopicReport], float | None]
            ) -> Iterator[Row]:
    for r in reports:
        for g in r.groups:
            for t in g.topics:
                v = value(t)
                if v is not None:
                    yield (r.cluster, g.group_id, t.topic), v


def _groups(reports: list[ClusterReport], value: Callable[[GroupReport], float | None]
            ) -> Iterator[Row]:
    for r in reports:
        for g in r.groups:
            v = value(g)
            if v is not None:
                yield (r.cluster, g.group_id), v


def _log_offsets(reports: list[ClusterReport], start: bool) -> Iterator[Row]:
    for r in reports:
        for (topic, partition), log in sorted(r.snapshot.offsets.items()):
            yield (r.cluster, topic, str(partition)), log.log_start if start else log.log_end


def _produce_rates(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        rates: dict[tuple[str, int], float] = {}
        for g in r.groups:
            for t in g.topics:
                for p in t.partitions:
                    if p.assessment.produce_rate is not None:
                        rates[(t.topic, p.partition)] = p.assessment.produce_rate
        for (topic, partition), rate in sorted(rates.items()):
            yield (r.cluster, topic, str(partition)), rate


def _statuses(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        for g in r.groups:
            for s in Status:
                yield (r.cluster, g.group_id, s.value), 1.0 if s is g.status else 0.0


def _states(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        for g in r.groups:
            yield (r.cluster, g.group_id, g.state), 1.0


def _group_findings(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        for g in r.groups:
            counts = Tally((f.kind, str(f.severity)) for f in g.findings)
            for (kind, severity), n in sorted(counts.items()):
                yield (r.cluster, g.group_id, kind, severity), float(n)


def _cluster_findings(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        counts = Tally((f.kind, str(f.severity)) for f in r.findings)
        for (kind, severity), n in sorted(counts.items()):
            yield (r.cluster, kind, severity), float(n)


def _dlqs(reports: list[ClusterReport], value: Callable[[DlqReport], float | None]
          ) -> Iterator[Row]:
    for r in reports:
        for d in r.dlqs:
            v = value(d)
            if v is not None:
                yield (r.cluster, d.topic), float(v)


def _log_dirs(reports: list[ClusterReport], value: Callable[[ClusterReport, LogDir],
                                                            float | None]) -> Iterator[Row]:
    for r in reports:
        for d in r.snapshot.meta.log_dirs if r.snapshot.meta else ():
            v = value(r, d)
            if v is not None:
                yield (r.cluster, str(d.broker), d.path), float(v)


def _skipped_records(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        unknown, undecodable = r.snapshot.records_skipped
        yield (r.cluster, "unknown_type"), float(unknown)
        yield (r.cluster, "undecodable"), float(undecodable)


def _produce_skew(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        for topic, ratio in sorted(r.produce_skew.items()):
            yield (r.cluster, topic), ratio


def _lost(reports: list[ClusterReport]) -> Iterator[Row]:
    for r in reports:
        for (group_id, topic), total in sorted(r.lost_total.items()):
            yield (r.cluster, group_id, topic), float(total)


def _meta(attribute: str) -> Callable[[ClusterReport], float | None]:
    def value(r: ClusterReport) -> float | None:
        meta = r.snapshot.meta
        if meta is None:
            return None
        found = getattr(meta, attribute)
        return float(len(found)) if isinstance(found, tuple) else found
    return value


GP = ("group", "topic", "partition")
GT = ("group", "topic")
TP = ("topic", "partition")


def _partition_families(r: list[ClusterReport]) -> Iterator[str]:
    """The per-partition families: most of the series on a large cluster."""
    yield from _family("partition_lag_messages", "Log end offset minus committed offset.", GP,
                       _partitions(r, lambda p: p.lag_messages))
    yield from _family("partition_lag_seconds", "Estimated age of the oldest unread message.",
                       GP, _partitions(r, lambda p: p.lag_seconds))
    yield from _family("partition_committed_offset", "The group's committed offset.", GP,
                       _partitions(r, lambda p: p.committed))
    yield from _family("partition_consume_rate_per_second",
                       "Messages per second the group commits past.", GP,
                       _partitions(r, lambda p: p.assessment.consume_rate))
    yield from _family("partition_catchup_eta_seconds",
                       "Time to reach the log end at current rates.", GP,
                       _partitions(r, lambda p: p.assessment.catchup_eta_s))
    yield from _family("partition_retention_eta_seconds",
                       "Time until retention deletes unread messages.", GP,
                       _partitions(r, lambda p: p.assessment.retention_eta_s))
    yield from _family("partition_log_end_offset", "High watermark.", TP,
                       _log_offsets(r, start=False))
    yield from _family("partition_log_start_offset", "Earliest available offset.", TP,
                       _log_offsets(r, start=True))
    yield from _family("partition_produce_rate_per_second",
                       "Messages per second written to the partition.", TP, _produce_rates(r))


def render(reports: list[ClusterReport], per_partition: bool = True) -> Iterator[str]:
    """Yield the lagwatch_* families for the given reports, as Prometheus text; without
    ``per_partition``, the lagwatch_partition_* families are left out."""
    r = reports
    yield from _family("cluster_up", "1 if the last poll of the cluster succeeded, else 0.",
                       (), _clusters(r, lambda c: 1.0 if c.up else 0.0))
    yield from _family("last_poll_timestamp_seconds", "Unix time of the last successful poll.",
                       (), _clusters(r, lambda c: c.last_success))
    yield from _family("cluster_brokers", "Brokers registered in the cluster.", (),
                       _clusters(r, _meta("brokers")))
    yield from _family("cluster_controller_id", "Node id of the active controller.", (),
                       _clusters(r, _meta("controller_id")))
    yield from _family("cluster_offline_partitions", "Partitions without a leader.", (),
                       _clusters(r, _meta("offline")))
    yield from _family("cluster_under_replicated_partitions",
                       "Partitions whose in-sync replicas are fewer than their replicas.", (),
                       _clusters(r, _meta("under_replicated")))
    if per_partition:
        yield from _partition_families(r)
    yield from _family("group_lag_messages", "Lag summed over the topic's partitions.", GT,
                       _topics(r, lambda t: t.lag_messages))
    yield from _family("group_lag_seconds", "Largest time lag over the topic's partitions.",
                       GT, _topics(r, lambda t: t.lag_seconds))
    yield from _family("group_consume_rate_per_second",
                       "Consume rate summed over the topic's partitions.", GT,
                       _topics(r, lambda t: t.consume_rate))
    yield from _family("group_produce_rate_per_second",
                       "Produce rate summed over the partitions the group reads.", GT,
                       _topics(r, lambda t: t.produce_rate))
    yield from _family("group_catchup_eta_seconds",
                       "Time until the slowest partition catches up.", GT,
                       _topics(r, lambda t: t.catchup_eta_s))
    yield from _family("group_retention_eta_seconds",
                       "Soonest time retention deletes unread messages.", GT,
                       _topics(r, lambda t: t.retention_eta_s))
    yield from _family("lost_messages_total",
                       "Unread messages deleted by retention, counted once.", GT, _lost(r),
                       kind="counter")
    yield from _family("group_status", "1 for the group's current status, 0 for the others.",
                       ("group", "status"), _statuses(r))
    yield from _family("group_members", "Members in the group.", ("group",),
                       _groups(r, lambda g: g.members))
    yield from _family("group_state", "1 for the group state the coordinator reports.",
                       ("group", "state"), _states(r))
    yield from _family("group_severity",
                       "Worst of the group's status and findings: 0 none, 1 warning, "
                       "2 critical.", ("group",),
                       _groups(r, lambda g: float(list(Severity).index(g.severity))))
    yield from _family("group_rebalances_total",
                       "Rebalances counted since lagwatch started (exact when "
                       "__consumer_offsets is read, else a lower bound).", ("group",),
                       _groups(r, lambda g: g.churn.total if g.churn else None), kind="counter")
    yield from _family("group_rebalances_per_hour", "Rebalance rate over the window.",
                       ("group",), _groups(r, lambda g: g.churn.per_hour if g.churn else None))
    yield from _family("group_rebalancing_ratio",
                       "Share of the window's polls that caught the group rebalancing.",
                       ("group",),
                       _groups(r, lambda g: g.churn.rebalancing_share if g.churn else None))
    yield from _family("group_findings", "Active findings about the group, by kind.",
                       ("group", "kind", "severity"), _group_findings(r))
    yield from _family("cluster_findings", "Active findings about the cluster, by kind.",
                       ("kind", "severity"), _cluster_findings(r))
    yield from _family("topic_produce_skew_ratio",
                       "Busiest partition's produce rate over the topic's mean.", ("topic",),
                       _produce_skew(r))
    yield from _family("dlq_inflow_per_second", "Messages per second arriving in the DLQ.",
                       ("topic",), _dlqs(r, lambda d: d.inflow_rate))
    yield from _family("dlq_unread_messages",
                       "Messages its readers have not read (all of it when none reads it).",
                       ("topic",), _dlqs(r, lambda d: d.unread))
    yield from _family("dlq_oldest_unread_seconds", "Age of the oldest unread DLQ message.",
                       ("topic",), _dlqs(r, lambda d: d.oldest_unread_s))
    yield from _family("dlq_consumer_groups", "Consumer groups reading the DLQ.", ("topic",),
                       _dlqs(r, lambda d: len(d.readers)))
    yield from _family("cluster_under_min_isr_partitions",
                       "Partitions with fewer in-sync replicas than min.insync.replicas.", (),
                       _clusters(r, _meta("under_min_isr")))
    broker_dir = ("broker", "log_dir")
    yield from _family("broker_log_dir_bytes", "Bytes the log dir's partitions hold.",
                       broker_dir, _log_dirs(r, lambda _c, d: d.size_bytes))
    yield from _family("broker_log_dir_usable_bytes", "Free bytes on the log dir's disk.",
                       broker_dir, _log_dirs(r, lambda _c, d: d.usable_bytes))
    yield from _family("broker_log_dir_growth_bytes_per_second",
                       "How fast the log dir grew over the window.", broker_dir,
                       _log_dirs(r, lambda c, d: c.log_dir_growth.get((d.broker, d.path))))
    yield from _family("offsets_topic_records_skipped_total",
                       "__consumer_offsets records skipped: record types not decoded, "
                       "or undecodable (truncated, unknown version).", ("kind",),
                       _skipped_records(r), kind="counter")
    yield from _family("cluster_controller_changes_total",
                       "Controller moves seen since lagwatch started.", (),
                       _clusters(r, lambda c: float(c.controller_changes)), kind="counter")


class PollMetrics:
    """Counts what polls take and what they fail to read, as they happen."""

    def __init__(self, registry: CollectorRegistry, clusters: list[str]) -> None:
        self.duration = Histogram("lagwatch_poll_duration_seconds", "Time one poll took.",
                                  ["cluster"], buckets=POLL_BUCKETS_S, registry=registry)
        self.errors = Counter("lagwatch_poll_errors_total",
                              "Things a poll could not read, by pipeline stage.",
                              ["cluster", "stage"], registry=registry)
        self.overruns = Counter("lagwatch_poll_overruns_total",
                                "Polls skipped because the previous one was still running.",
                                ["cluster"], registry=registry)
        for cluster in clusters:  # present at 0 from the start, so rate() sees the first error
            self.overruns.labels(cluster)
            for stage in STAGES:
                self.errors.labels(cluster, stage)

    def observe(self, snapshot: Snapshot) -> None:
        """Record one poll's duration and its errors."""
        self.duration.labels(snapshot.cluster).observe(snapshot.duration_s)
        for error in snapshot.errors:
            self.errors.labels(snapshot.cluster, error.stage).inc()


class Exporter:
    """Everything /metrics serves: the poll registry, then the lagwatch_* families."""

    def __init__(self, state: State, per_partition: bool = True) -> None:
        self.per_partition = per_partition
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        self.state = state
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        self.metrics = PollMetrics(self.registry, state.clusters)

    def chunks(self) -> Iterator[bytes]:
        """Yield the whole exposition in chunks, ready to write to a socket."""
        yield generate_latest(self.registry)
        for text in render(self.state.reports(), self.per_partition):
            yield text.encode()

    def text(self) -> str:
        """Return the whole exposition (for tests and small clusters)."""
        return b"".join(self.chunks()).decode()
