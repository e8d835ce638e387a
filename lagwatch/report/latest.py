"""The latest report per cluster: written by the pollers, read by scrapes and API requests."""

from __future__ import annotations

import threading

from lagwatch.detect.verdict import Verdict
from lagwatch.model import Snapshot
from lagwatch.report.view import ClusterReport, build_report

READY_INTERVALS = 3


class LatestReports:
    """Holds each cluster's latest ClusterReport; swapping a report is atomic."""

    def __init__(self, clusters: list[str], poll_interval_s: float) -> None:
        self.clusters = list(clusters)
        self.poll_interval_s = poll_interval_s
        self._reports: dict[str, ClusterReport] = {}
        self._lock = threading.Lock()

    def publish(self, snapshot: Snapshot, verdict: Verdict | None) -> ClusterReport:
        """Report on a new snapshot and make it the cluster's latest."""
        with self._lock:
            report = build_report(snapshot, self._reports.get(snapshot.cluster), verdict)
            self._reports[snapshot.cluster] = report
        return report

    def reports(self) -> list[ClusterReport]:
        """Return the latest report of every cluster polled at least once, in config order."""
        with self._lock:
            return [self._reports[c] for c in self.clusters if c in self._reports]

    def report(self, cluster: str) -> ClusterReport | None:
        """Return one cluster's latest report."""
        with self._lock:
            return self._reports.get(cluster)

    def ready(self, now: float) -> bool:
        """Say whether every cluster had a successful poll finish within the last 3 intervals.

        A poll's time is when it started; one that waited long on a broker coming back is
        judged by when it finished, so the poll that brings a cluster back up makes it ready.
        """
        horizon = now - READY_INTERVALS * self.poll_interval_s
        with self._lock:
            return all(
                (r := self._reports.get(c)) is not None and r.last_success is not None
                and r.last_success + r.snapshot.duration_s >= horizon
                for c in self.clusters)
