"""/metrics render time for one poll of 200,000 group-partitions, without a broker.

    .venv/bin/python bench/metrics_render.py

Publishes three polls shaped like bench/poll_scale.py's large fixture (1,800 topics x 10
partitions, 2,000 groups each committing to 10 topics, offsets moving), and prints the median
of three full renders of /metrics and the number of lagwatch series.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lagwatch.config import load_config
from lagwatch.export import Exporter
from lagwatch.heap import Heap
from lagwatch.model import GroupSnapshot, LogOffsets, Snapshot
from lagwatch.pipeline import Pipeline
from lagwatch.state import State

POLLS = 3


def main() -> None:
    topics = [f"bench-{i:04d}" for i in range(1800)]
    state = State(["default"], 30.0)
    detection = load_config(None, {"bootstrap_servers": ["bench:9092"]}).detection
    pipeline = Pipeline("default", detection)
    heap = Heap()
    for poll in range(POLLS):  # offsets that move, so rates and ETAs are exported too
        offsets = {(t, p): LogOffsets(0, 5 + 10 * poll) for t in topics for p in range(10)}
        groups = {}
        for g in range(2000):
            chosen = [topics[(g * 7 + k) % len(topics)] for k in range(10)]
            name = f"bench-group-{g:04d}"
            groups[name] = GroupSnapshot(name, "Empty", members=(), committed={
                (t, p): g % 5 + 8 * poll for t in chosen for p in range(10)})
        snapshot = Snapshot("default", 1.79e9 + 30 * poll, 1.0, up=True, groups=groups,
                            offsets=offsets)
        state.publish(snapshot, pipeline.ingest(snapshot))
        heap.settle(snapshot.taken_at)  # as the daemon does after each poll
    exporter = Exporter(state)
    times, body = [], ""
    for _ in range(3):
        started = time.perf_counter()
        body = exporter.text()
        times.append(time.perf_counter() - started)
    print(f"/metrics render: median {statistics.median(times):.3f} s, "
          f"{body.count(chr(10) + 'lagwatch_')} lagwatch series")


if __name__ == "__main__":
    main()
