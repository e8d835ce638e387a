"""/metrics render time for one poll of 200,000 group-partitions, without a broker.

    .venv/bin/python bench/metrics_render.py

Builds one snapshot shaped like bench/poll_scale.py's large fixture (1,800 topics x 10
partitions, 2,000 groups each committing to 10 topics), publishes it, and prints the median
of three full renders of /metrics and the number of lagwatch series.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lagwatch.export import Exporter
from lagwatch.model import GroupSnapshot, LogOffsets, Snapshot
from lagwatch.state import State


def main() -> None:
    topics = [f"bench-{i:04d}" for i in range(1800)]
    offsets = {(t, p): LogOffsets(0, 5) for t in topics for p in range(10)}
    groups = {}
    for g in range(2000):
        chosen = [topics[(g * 7 + k) % len(topics)] for k in range(10)]
        name = f"bench-group-{g:04d}"
        groups[name] = GroupSnapshot(name, "Empty", members=(), committed={
            (t, p): g % 5 for t in chosen for p in range(10)})
    state = State(["default"], 30.0)
    state.publish(Snapshot("default", 1.79e9, 1.0, up=True, groups=groups, offsets=offsets))
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
