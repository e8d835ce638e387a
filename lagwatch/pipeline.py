"""One cluster's path from snapshot to assessments: history, detection, persistence."""

from __future__ import annotations

import logging
from dataclasses import replace

from lagwatch.config import Config
from lagwatch.detect.commits import CommitClocks
from lagwatch.detect.config import DetectionConfig, DlqConfig
from lagwatch.detect.findings import HealthMemory, HealthSettings
from lagwatch.detect.history import History
from lagwatch.detect.rebalance import ChurnSettings, RebalanceTracker, churn_finding
from lagwatch.detect.rules import Memory
from lagwatch.detect.verdict import Verdict, judge
from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.reader import ClusterReader
from lagwatch.model import Snapshot
from lagwatch.store import StateFile

log = logging.getLogger(__name__)


class ClusterJudge:
    """Keeps a cluster's history and detection memory; judges each new snapshot."""

    def __init__(self, cluster: str, detection: DetectionConfig, store: StateFile | None = None,
                 *, health: HealthSettings | None = None, dlq: DlqConfig | None = None,
                 churn: ChurnSettings | None = None) -> None:
        self.cluster = cluster
        self.dlq = dlq or DlqConfig()
        self.churn = churn or ChurnSettings(window_s=detection.window)
        self.rebalances = RebalanceTracker(self.churn)
        self.commits = CommitClocks(detection.window)
        self.settings = detection.settings()
        self.health = health or HealthSettings(memory_s=detection.window)
        self.history = History(detection.window, detection.max_samples)
        self.memory = Memory()
        self.health_memory = HealthMemory()
        self.store = store

    def restore(self, now: float) -> int:
        """Replay the stored polls inside the window; return how many were replayed."""
        if self.store is None:
            return 0
        snapshots, memory = self.store.load(self.cluster, now - self.settings.window_s)
        for snapshot in snapshots:
            self.history.observe(snapshot)
        self.memory = memory
        if snapshots:
            log.info("cluster %s: restored %d polls (%s of history) from %s", self.cluster,
                     len(snapshots), f"{self.history.span_s():.0f}s", self.store.path)
        return len(snapshots)

    def _commit_clocks(self, snapshot: Snapshot) -> CommitClocks | None:
        """Fold in this poll's OffsetCommit records; None when the records are not read."""
        for at, record in snapshot.commit_records:
            self.commits.observe(record, at)
        self.commits.forget(set(snapshot.groups))
        return self.commits if snapshot.records_exact else None

    def _with_churn(self, snapshot: Snapshot, verdict: Verdict) -> Verdict:
        """Count rebalances (exactly from records when read) and add churn findings."""
        tracker, now = self.rebalances, snapshot.taken_at
        tracker.exact = snapshot.records_exact
        for at, record in snapshot.group_records:
            tracker.observe_record(record, at)
        for group in snapshot.groups.values():
            tracker.observe_poll(group, now)
        # a group created after this poll listed the groups is already in the records
        tracker.forget(set(snapshot.groups) | {r.group for _, r in snapshot.group_records})
        churn = {gid: c for gid in snapshot.groups if (c := tracker.churn(gid, now))}
        findings = dict(verdict.group_findings)
        for gid, c in churn.items():
            if (finding := churn_finding(c, self.churn)) is not None:
                findings[gid] = (*findings.get(gid, ()), finding)
        return replace(verdict, churn=churn, group_findings=findings)

    def ingest(self, snapshot: Snapshot) -> Verdict | None:
        """Add a poll to the history and judge it; a failed poll is not judged."""
        if not snapshot.up:
            return None
        for note in self.history.observe(snapshot):
            log.info("cluster %s: %s", self.cluster, note)
        dlqs = {t: source for t in {tp[0] for tp in snapshot.offsets}
                for is_dlq, source in [self.dlq.source_of(t)] if is_dlq}
        verdict = judge(snapshot, self.history, self.settings, self.memory,
                        health=self.health, health_memory=self.health_memory, dlqs=dlqs,
                        commits=self._commit_clocks(snapshot))
        verdict = self._with_churn(snapshot, verdict)
        if self.store is not None:
            self.store.save(snapshot, self.memory, snapshot.taken_at - self.settings.window_s)
        return verdict


def wire(config: Config, cluster: ClusterConfig,
         store: StateFile | None = None) -> tuple[ClusterReader, ClusterJudge]:
    """Build one cluster's collector and pipeline from the configuration."""
    collector = ClusterReader(cluster, config.detection.retention_refresh,
                          also_watch=lambda topic: config.dlq.source_of(topic)[0])
    pipeline = ClusterJudge(cluster.name, config.detection, store,
                        health=config.health.settings(cluster.expected_brokers,
                                                    config.detection.window),
                        dlq=config.dlq, churn=config.health.churn(config.detection.window))
    return collector, pipeline
