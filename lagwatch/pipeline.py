"""One cluster's path from snapshot to assessments: history, detection, persistence."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from lagwatch.audit.evidence import AuditEvidence
from lagwatch.config import Config
from lagwatch.detect.config import DetectionConfig, DlqConfig
from lagwatch.detect.findings import HealthSettings
from lagwatch.detect.history import History
from lagwatch.detect.rebalance import ChurnSettings
from lagwatch.detect.rules import rewind_of
from lagwatch.detect.verdict import DetectionMemory, Verdict, judge
from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.reader import ClusterReader
from lagwatch.model import Snapshot, TopicPartition
from lagwatch.store import StateFile

log = logging.getLogger(__name__)


class ClusterJudge:
    """Keeps a cluster's history and detection memory; judges each new snapshot."""

    def __init__(self, cluster: str, detection: DetectionConfig, store: StateFile | None = None,
                 *, health: HealthSettings | None = None, dlq: DlqConfig | None = None,
                 churn: ChurnSettings | None = None) -> None:
        self.cluster = cluster
        self.dlq = dlq or DlqConfig()
        self.settings = detection.settings()
        self.health = health or HealthSettings(memory_s=detection.window)
        self.history = History(detection.window, detection.max_samples)
        self.memory = DetectionMemory(detection.window,
                                      churn or ChurnSettings(window_s=detection.window))
        self.evidence = AuditEvidence(detection.window)
        self.lock = threading.Lock()  # held while the evidence changes or is read
        self.store = store

    def restore(self, now: float) -> int:
        """Replay the stored polls inside the window; return how many were replayed."""
        if self.store is None:
            return 0
        snapshots, memory = self.store.load(self.cluster, now - self.settings.window_s)
        for snapshot in snapshots:
            self.history.observe(snapshot)
        self.memory.rules = memory
        if snapshots:
            log.info("cluster %s: restored %d polls (%s of history) from %s", self.cluster,
                     len(snapshots), f"{self.history.span_s():.0f}s", self.store.path)
        return len(snapshots)

    def ingest(self, snapshot: Snapshot) -> Verdict | None:
        """Add a poll to the history and judge it; a failed poll is not judged."""
        if not snapshot.up:
            return None
        for note in self.history.observe(snapshot):
            log.info("cluster %s: %s", self.cluster, note)
        dlqs = {t: source for t in {tp[0] for tp in snapshot.offsets}
                for is_dlq, source in [self.dlq.source_of(t)] if is_dlq}
        verdict = judge(snapshot, self.history, self.settings, self.memory,
                        health=self.health, dlqs=dlqs)
        with self.lock:
            self.evidence.observe(snapshot, verdict, self._replayed)
        if self.store is not None:
            self.store.save(snapshot, self.memory.rules,
                            snapshot.taken_at - self.settings.window_s)
        return verdict

    def _replayed(self, group: str, tp: TopicPartition) -> int | None:
        """How many messages a rewound group-partition will read again."""
        moved = rewind_of(self.history.committed_window(group, tp))
        return None if moved is None else moved[0] - moved[1]


def wire(config: Config, cluster: ClusterConfig, store: StateFile | None = None,
         owns: Callable[[str], bool] = lambda _group: True
         ) -> tuple[ClusterReader, ClusterJudge]:
    """Build one cluster's reader and judge from the configuration (``owns`` says which
    groups this replica watches: with ha, those of its shards)."""
    reader = ClusterReader(cluster, config.detection.retention_refresh,
                           also_watch=lambda topic: config.dlq.source_of(topic)[0], owns=owns)
    judge = ClusterJudge(cluster.name, config.detection, store,
                         health=config.health.settings(cluster.expected_brokers,
                                                       config.detection.window),
                         dlq=config.dlq, churn=config.health.churn(config.detection.window))
    return reader, judge
