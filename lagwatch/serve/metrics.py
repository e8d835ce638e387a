"""Prometheus metrics, rendered from the latest reports.

A scrape never talks to Kafka; it only reads what the polls left. The lagwatch_* families
(lagwatch.serve.families) are written as Prometheus text one family at a time, in chunks,
straight into compressed pieces (lagwatch.serve.deflate), once per poll of each cluster;
a scrape lays the pieces out as gzip, or decompresses them for a client that did not ask
for gzip. Poll timings and errors
are counted as polls happen (PollMetrics), in a prometheus-client registry rendered live at
each scrape, first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from lagwatch.model import STAGES, Snapshot
from lagwatch.report.latest import LatestReports
from lagwatch.report.view import ClusterReport
from lagwatch.serve.deflate import Piece, deflate, join, text_stream
from lagwatch.serve.families import families

POLL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PollMetrics:
    """Counts what polls take and what they fail to read, as they happen."""

    def __init__(self, registry: CollectorRegistry, clusters: list[str]) -> None:
        self.duration = Histogram("lagwatch_poll_duration_seconds", "Time one poll took.",
                                  ["cluster"], buckets=POLL_BUCKETS_S, registry=registry)
        self.errors = Counter("lagwatch_poll_errors_total",
                              "Things a poll could not read, by pipeline stage.",
                              ["cluster", "stage"], registry=registry)
        self.processing = Histogram(
            "lagwatch_poll_processing_seconds",
            "Time a poll took after reading Kafka: history, detection, report, alerting and "
            "rendering /metrics.", ["cluster"], buckets=POLL_BUCKETS_S, registry=registry)
        self.records = Counter(
            "lagwatch_record_fetches_total",
            "Committed offsets whose record was fetched, for exact time lag and unread "
            "counts.", ["cluster"], registry=registry)
        self.overruns = Counter("lagwatch_poll_overruns_total",
                                "Polls skipped because the previous one was still running.",
                                ["cluster"], registry=registry)
        for cluster in clusters:  # present at 0 from the start, so rate() sees the first error
            self.overruns.labels(cluster)
            self.records.labels(cluster)
            for stage in STAGES:
                self.errors.labels(cluster, stage)

    def observe(self, snapshot: Snapshot) -> None:
        """Record one poll's duration and its errors."""
        self.duration.labels(snapshot.cluster).observe(snapshot.duration_s)
        self.records.labels(snapshot.cluster).inc(snapshot.records_fetched)
        for error in snapshot.errors:
            self.errors.labels(snapshot.cluster, error.stage).inc()


class Exporter:
    """Everything /metrics serves: the poll registry, then the lagwatch_* families.

    The families are rendered once per report, not once per scrape: each cluster's share of
    each family is kept as a compressed Piece, rendered when the cluster's report changes
    (the poller asks right after publishing), and a scrape only lays the pieces out.
    """

    def __init__(self, state: LatestReports, per_partition: bool = True,
                 health: Callable[[str], bool] = lambda _cluster: True) -> None:
        self.per_partition = per_partition
        self.health = health  # with ha: whether this replica owns the cluster's shard
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        self.state = state
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        self.metrics = PollMetrics(self.registry, state.clusters)
        self._headers = [deflate([header.encode()]) for header, _ in families([], per_partition)]
        self._rendered: dict[str, tuple[ClusterReport, bool, list[Piece]]] = {}
        # every family's header and every cluster's share of it, laid out, as one piece
        self._families = join(self._headers)
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Render every cluster whose report changed since it was last rendered."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        rendered = {}
        for report in self.state.reports():
            kept = self._rendered.get(report.cluster)
            health = self.health(report.cluster)
            fresh = kept is not None and kept[0] is report and kept[1] == health
            rendered[report.cluster] = kept if kept is not None and fresh else (
                report, health, [deflate(samples) for _, samples in families(
                    [report], self.per_partition, health)])
        if rendered.keys() != self._rendered.keys() or any(
                rendered[c] is not self._rendered[c] for c in rendered):
            clusters = [pieces for _, _, pieces in rendered.values()]
            self._families = join(piece for f, header in enumerate(self._headers)
                                  for piece in (header, *(pieces[f] for pieces in clusters)))
        self._rendered = rendered

    def pieces(self) -> list[Piece]:
        """The whole exposition as pieces: the registry as it is now, then each family's
        header followed by every cluster's samples. A scrape that arrives while a render is
        running gets the pieces from before it rather than waiting."""
        if self._lock.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._lock.release()
        return [deflate([generate_latest(self.registry)]), self._families]

    def text(self) -> str:
        """Return the whole exposition (for tests and small clusters)."""
        return b"".join(text_stream(self.pieces())).decode()
