"""Prometheus metrics: a Collector that renders the latest reports at scrape time.

A scrape never talks to Kafka; it only reads State. Poll timings and errors are counted
as polls happen, by PollMetrics.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lagwatch.collect import STAGES
from lagwatch.model import Snapshot
from lagwatch.report import ClusterReport
from lagwatch.state import State
from lagwatch.status import Status

POLL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def _gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"lagwatch_{name}", doc, labels=["cluster", *labels])


class LagCollector(Collector):
    """Renders every cluster's latest report as lagwatch_* gauges."""

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """Yield one family per metric, filled from the latest reports."""
        reports = self._state.reports()
        yield from self._cluster_families(reports)
        yield from self._partition_families(reports)
        yield from self._group_families(reports)

    @staticmethod
    def _cluster_families(reports: list[ClusterReport]) -> Iterator[GaugeMetricFamily]:
        up = _gauge("cluster_up", "1 if the last poll of the cluster succeeded, else 0.")
        last = _gauge("last_poll_timestamp_seconds",
                      "Unix time of the last successful poll.")
        brokers = _gauge("cluster_brokers", "Brokers registered in the cluster.")
        controller = _gauge("cluster_controller_id", "Node id of the active controller.")
        offline = _gauge("cluster_offline_partitions", "Partitions without a leader.")
        under = _gauge("cluster_under_replicated_partitions",
                       "Partitions whose in-sync replicas are fewer than their replicas.")
        for r in reports:
            up.add_metric([r.cluster], 1.0 if r.up else 0.0)
            if r.last_success is not None:
                last.add_metric([r.cluster], r.last_success)
            meta = r.snapshot.meta
            if meta is None:
                continue
            brokers.add_metric([r.cluster], len(meta.brokers))
            if meta.controller_id is not None:
                controller.add_metric([r.cluster], meta.controller_id)
            offline.add_metric([r.cluster], len(meta.offline))
            under.add_metric([r.cluster], len(meta.under_replicated))
        yield from (up, last, brokers, controller, offline, under)

    @staticmethod
    def _partition_families(reports: list[ClusterReport]) -> Iterator[GaugeMetricFamily]:
        labels = ("group", "topic", "partition")
        families = {
            "lag_messages": _gauge("partition_lag_messages",
                                   "Log end offset minus committed offset.", *labels),
            "lag_seconds": _gauge("partition_lag_seconds",
                                  "Estimated age of the oldest unread message.", *labels),
            "consume_rate": _gauge("partition_consume_rate_per_second",
                                   "Messages per second the group commits past.", *labels),
            "catchup_eta_s": _gauge("partition_catchup_eta_seconds",
                                    "Time to reach the log end at current rates.", *labels),
            "retention_eta_s": _gauge("partition_retention_eta_seconds",
                                      "Time until retention deletes unread messages.",
                                      *labels),
        }
        committed = _gauge("partition_committed_offset", "The group's committed offset.",
                           *labels)
        end = _gauge("partition_log_end_offset", "High watermark.", "topic", "partition")
        start = _gauge("partition_log_start_offset", "Earliest available offset.",
                       "topic", "partition")
        produce = _gauge("partition_produce_rate_per_second",
                         "Messages per second written to the partition.", "topic", "partition")
        for r in reports:
            rates: dict[tuple[str, int], float] = {}
            for (topic, partition), log in sorted(r.snapshot.offsets.items()):
                end.add_metric([r.cluster, topic, str(partition)], log.log_end)
                start.add_metric([r.cluster, topic, str(partition)], log.log_start)
            for g in r.groups:
                for t in g.topics:
                    for p in t.partitions:
                        key = [r.cluster, g.group_id, t.topic, str(p.partition)]
                        if p.committed is not None:
                            committed.add_metric(key, p.committed)
                        for attribute, family in families.items():
                            value = getattr(p.assessment, attribute)
                            if value is not None:
                                family.add_metric(key, value)
                        if p.assessment.produce_rate is not None:
                            rates[(t.topic, p.partition)] = p.assessment.produce_rate
            for (topic, partition), rate in sorted(rates.items()):
                produce.add_metric([r.cluster, topic, str(partition)], rate)
        yield from (*families.values(), committed, end, start, produce)

    @staticmethod
    def _group_families(reports: list[ClusterReport]
                        ) -> Iterator[Metric]:
        per_topic = {
            "lag_messages": _gauge("group_lag_messages",
                                   "Lag summed over the topic's partitions.", "group", "topic"),
            "lag_seconds": _gauge("group_lag_seconds",
                                  "Largest time lag over the topic's partitions.",
                                  "group", "topic"),
            "consume_rate": _gauge("group_consume_rate_per_second",
                                   "Consume rate summed over the topic's partitions.",
                                   "group", "topic"),
            "produce_rate": _gauge("group_produce_rate_per_second",
                                   "Produce rate summed over the partitions the group reads.",
                                   "group", "topic"),
            "catchup_eta_s": _gauge("group_catchup_eta_seconds",
                                    "Time until the slowest partition catches up.",
                                    "group", "topic"),
            "retention_eta_s": _gauge("group_retention_eta_seconds",
                                      "Soonest time retention deletes unread messages.",
                                      "group", "topic"),
        }
        lost = CounterMetricFamily("lagwatch_lost_messages",
                                   "Unread messages deleted by retention, counted once.",
                                   labels=["cluster", "group", "topic"])
        status = _gauge("group_status", "1 for the group's current status, 0 for the others.",
                        "group", "status")
        members = _gauge("group_members", "Members in the group.", "group")
        state = _gauge("group_state", "1 for the group state the coordinator reports.",
                       "group", "state")
        for r in reports:
            for (group_id, topic), total in sorted(r.lost_total.items()):
                lost.add_metric([r.cluster, group_id, topic], total)
            for g in r.groups:
                for t in g.topics:
                    for attribute, family in per_topic.items():
                        value = getattr(t, attribute)
                        if value is not None:
                            family.add_metric([r.cluster, g.group_id, t.topic], value)
                for s in Status:
                    status.add_metric([r.cluster, g.group_id, s.value],
                                      1.0 if s is g.status else 0.0)
                if g.members is not None:
                    members.add_metric([r.cluster, g.group_id], g.members)
                state.add_metric([r.cluster, g.group_id, g.state], 1.0)
        yield from (*per_topic.values(), lost, status, members, state)


class PollMetrics:
    """Counts what polls take and what they fail to read, as they happen."""

    def __init__(self, registry: CollectorRegistry, clusters: list[str]) -> None:
        self.duration = Histogram("lagwatch_poll_duration_seconds", "Time one poll took.",
                                  ["cluster"], buckets=POLL_BUCKETS_S, registry=registry)
        self.errors = Counter("lagwatch_poll_errors_total",
                              "Things a poll could not read, by pipeline stage.",
                              ["cluster", "stage"], registry=registry)
        for cluster in clusters:  # present at 0 from the start, so rate() sees the first error
            for stage in STAGES:
                self.errors.labels(cluster, stage)

    def observe(self, snapshot: Snapshot) -> None:
        """Record one poll's duration and its errors."""
        self.duration.labels(snapshot.cluster).observe(snapshot.duration_s)
        for error in snapshot.errors:
            self.errors.labels(snapshot.cluster, error.stage).inc()


def build_registry(state: State) -> tuple[CollectorRegistry, PollMetrics]:
    """Return a registry holding lagwatch's metrics and its own process_* metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LagCollector(state))
    ProcessCollector(registry=registry)
    return registry, PollMetrics(registry, state.clusters)
