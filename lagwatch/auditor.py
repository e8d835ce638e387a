"""Audits a cluster against the production checklist: the judge's evidence, the latest
report, and what only an audit reads (the record at each log start, the groups' metadata
records), read with clients of its own and kept for a while."""

from __future__ import annotations

import logging
import threading
import time

from lagwatch.alerting.config import SilenceConfig
from lagwatch.audit.checklist import Standards, audit
from lagwatch.audit.items import ClusterAudit
from lagwatch.config import Config
from lagwatch.kafka.audit_reads import Progress, group_metadata, log_start_times
from lagwatch.kafka.causes import FAILURES, brief
from lagwatch.kafka.config import ClusterConfig
from lagwatch.model import CLASSIC, TopicPartition
from lagwatch.patterns import Pattern
from lagwatch.pipeline import ClusterJudge
from lagwatch.report.view import ClusterReport

log = logging.getLogger(__name__)
LOG_START_TTL_S = 600.0  # how long the log-start records read stay good


class Auditor:
    """Audits the clusters of one configuration; safe to use from several threads."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._log_starts: dict[str, tuple[float, dict[TopicPartition, float]]] = {}
        self._read_metadata: set[tuple[str, str]] = set()  # (cluster, group) read once
        self._lock = threading.Lock()

    def audit(self, cluster: ClusterConfig, judge: ClusterJudge, report: ClusterReport, *,
              silences: tuple[SilenceConfig, ...], groups: Pattern | None = None,
              progress: Progress = lambda _line: None) -> ClusterAudit:
        """Audit one cluster's watched groups (those ``groups`` matches, when given)."""
        now = time.time()
        wanted = [g for g in report.groups if groups is None or groups.search(g.group_id)]
        errors = []
        classic = [g.group_id for g in wanted if g.group_type == CLASSIC
                   and (cluster.name, g.group_id) not in self._read_metadata]
        try:
            metadata = group_metadata(cluster, classic, progress) if (
                classic and cluster.read_offsets_topic) else {}
        except FAILURES as exc:
            errors.append(f"group metadata from __consumer_offsets: {brief(exc)}")
            metadata = {}
        else:
            self._read_metadata.update((cluster.name, g) for g in classic)
        topics = {t.topic for g in wanted for t in g.topics}
        try:
            starts = self._log_start_times(cluster, report, topics, now)
        except FAILURES as exc:
            errors.append(f"records at the log start: {brief(exc)}")
            starts = {}
        c = self.config
        standards = Standards(c.audit, c.health.settings(cluster.expected_brokers,
                                                         c.detection.window),
                              c.health.churn(c.detection.window), c.alerting, silences)
        with judge.lock:
            judge.evidence.bootstrap(metadata)
            result = audit(report, judge.evidence, standards, starts, now)
        chosen = {g.group_id for g in wanted}
        return ClusterAudit(result.cluster, result.items,
                            tuple(g for g in result.groups if g.group in chosen),
                            result.observed_s, tuple(errors))

    def _log_start_times(self, cluster: ClusterConfig, report: ClusterReport,
                         topics: set[str], now: float) -> dict[TopicPartition, float]:
        """The log-start record times of the topics' partitions, read again once older
        than LOG_START_TTL_S."""
        with self._lock:
            read_at, known = self._log_starts.get(cluster.name, (float("-inf"), {}))
        if now - read_at > LOG_START_TTL_S:
            read_at, known = now, {}
        missing = {tp: lo for tp, lo in report.snapshot.offsets.items()
                   if tp[0] in topics and tp not in known}
        if missing:
            known = {**known, **log_start_times(cluster, missing)}
        with self._lock:
            self._log_starts[cluster.name] = (read_at, known)
        return {tp: t for tp, t in known.items() if tp[0] in topics}
