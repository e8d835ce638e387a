"""/metrics render time for one poll of 200,000 group-partitions, without a broker.

    .venv/bin/python bench/metrics_render.py

Publishes three polls shaped like bench/poll_scale.py's large fixture (1,800 topics x 10
partitions, 2,000 groups each committing to 10 topics, offsets moving), and prints the medians
of three runs of: rendering the lagwatch_* families into compressed pieces (what the poll
thread does after each poll), a gzip scrape (what Prometheus asks for), and a plain-text
scrape; and the number of lagwatch series.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lagwatch.heap import Heap
from lagwatch.model import GroupSnapshot, LogOffsets, Snapshot
from lagwatch.report.latest import LatestReports
from lagwatch.serve.deflate import gzip_stream
from lagwatch.serve.metrics import Exporter
from lagwatch.simulate import replay

POLLS = 3


def polls(topics: list[str]) -> Iterator[Snapshot]:
    """2,000 groups of 10 topics of 10 partitions; offsets that move, so rates and ETAs
    are exported too."""
    for poll in range(POLLS):
        offsets = {(t, p): LogOffsets(0, 5 + 10 * poll) for t in topics for p in range(10)}
        groups = {}
        for g in range(2000):
            chosen = [topics[(g * 7 + k) % len(topics)] for k in range(10)]
            name = f"bench-group-{g:04d}"
            groups[name] = GroupSnapshot(name, "Empty", members=(), committed={
                (t, p): g % 5 + 8 * poll for t in chosen for p in range(10)})
        yield Snapshot("default", 1.79e9 + 30 * poll, 1.0, up=True, groups=groups,
                       offsets=offsets)


def main() -> None:
    topics = [f"bench-{i:04d}" for i in range(1800)]
    state = LatestReports(["default"], 30.0)
    heap = Heap()
    for report in replay(polls(topics), latest=state):
        heap.settle(report.polled_at)  # as the daemon does after each poll
    renders, gzipped, plain = [], [], []
    for _ in range(3):
        exporter = Exporter(state)  # a fresh one each time, so that each renders
        renders.append(timed(exporter.refresh))
        gzipped.append(timed(gzip_body, exporter))
        plain.append(timed(exporter.text))
    zipped, body = gzip_body(exporter), exporter.text()
    print(f"/metrics: render {statistics.median(renders):.3f} s, gzip scrape "
          f"{statistics.median(gzipped) * 1000:.0f} ms ({len(zipped) / 1e6:.1f} MB), plain "
          f"scrape {statistics.median(plain):.3f} s ({len(body) / 1e6:.0f} MB); "
          f"{body.count(chr(10) + 'lagwatch_')} lagwatch series")


def gzip_body(exporter: Exporter) -> bytes:
    return b"".join(gzip_stream(exporter.pieces()))


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
