"""What a poll costs after reading Kafka, with full windows, without a broker.

    .venv/bin/python bench/processing.py [--sizes 5000,50000] [--polls 61]
                                         [--baseline REV]

For each size (group-partitions: groups of 10 topics x 10 partitions), one process feeds
``--polls`` polls 30 s apart through what the daemon does after each read of Kafka:
history, detection, the audit's evidence and the state file (``ClusterJudge.ingest``),
the report, alerting, and the /metrics render. Every group has a member and commits
every partition each poll (the OffsetCommit records are handed over, as when
__consumer_offsets is read); one group in 20 reads half the produce rate (lagging), the
others stay 3 messages behind. Prints, over the last 5 polls (windows full): CPU seconds
per poll in all and per stage, microseconds per group-partition, and RSS at the end and
at its peak.

``--baseline REV`` runs the same polls with lagwatch as of a git revision (extracted by
``git archive``), each size in its own process too, and prints the ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURED = 5  # the last polls, with full windows


def snapshots(size: int, polls: int) -> Iterator[object]:
    """The polls: offsets near 10^9, so that none is a small cached int."""
    from lagwatch.model import GroupSnapshot, LogOffsets, Member, Snapshot
    from lagwatch.records import OffsetCommit

    groups = max(1, size // 100)
    topics = [f"bench-{i:04d}" for i in range(max(10, groups * 10 // 25))]
    base = 10**9
    for k in range(polls):
        t = 1.79e9 + 30.0 * k
        offsets = {(n, p): LogOffsets(base, base + 300 * k + p) for n in topics
                   for p in range(10)}
        made, records = {}, []
        for g in range(groups):
            gid = f"bench-group-{g:05d}"
            behind = 150 * k if g % 20 == 0 else 3
            committed = {(n, p): max(base, base + 300 * k + p - behind)
                         for j in range(10) for n in [topics[(g * 7 + j) % len(topics)]]
                         for p in range(10)}
            records += [(t - 1.0, OffsetCommit(gid, n, p, c)) for (n, p), c in committed.items()]
            member = Member(f"m-{g}", "bench", "/127.0.0.1", assignment=tuple(committed))
            made[gid] = GroupSnapshot(gid, "Stable", members=(member,), committed=committed)
        yield Snapshot("default", t, 0.5, up=True, groups=made, offsets=offsets,
                       commit_records=tuple(records), records_exact=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(size: int, polls: int) -> dict[str, float]:
    """Run the polls in this process; the figures of the last ones."""
    from lagwatch.alerting.alerter import Alerter
    from lagwatch.alerting.config import AlertingConfig
    from lagwatch.alerting.outbox import Outbox
    from lagwatch.detect.config import DetectionConfig
    from lagwatch.heap import Heap
    from lagwatch.pipeline import ClusterJudge
    from lagwatch.report.latest import LatestReports
    from lagwatch.serve.metrics import Exporter
    from lagwatch.store import StateFile

    idle = rss_mb()
    store = StateFile(tempfile.mkdtemp(prefix="lagwatch-bench-"))
    judge = ClusterJudge("default", DetectionConfig(window=1800), store)
    latest = LatestReports(["default"], 30.0)
    exporter = Exporter(latest)
    alerter = Alerter(AlertingConfig(), Outbox(store.path))
    heap = Heap()
    stages: dict[str, list[float]] = {"ingest": [], "report": [], "alerting": [],
                                      "render": []}
    for k, snapshot in enumerate(snapshots(size, polls)):
        clock = time.process_time()
        marks = [clock]
        exporter.metrics.observe(snapshot)
        verdict = judge.ingest(snapshot)
        marks.append(time.process_time())
        report = latest.publish(snapshot, verdict)
        marks.append(time.process_time())
        alerter.observe(report, snapshot.taken_at)
        marks.append(time.process_time())
        exporter.refresh()
        heap.settle(snapshot.taken_at)
        marks.append(time.process_time())
        if k >= polls - MEASURED:
            for stage, (a, b) in zip(stages, itertools.pairwise(marks), strict=True):
                stages[stage].append(b - a)
        del snapshot, verdict, report
    figures = {stage: statistics.median(spent) for stage, spent in stages.items()}
    figures["total"] = sum(figures.values())
    figures["rss_mb"] = rss_mb()
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["idle_mb"] = idle
    store.close()
    return figures


def child(size: int, polls: int, package: Path | None) -> dict[str, float]:
    """Measure one size in a process of its own (its own peak RSS)."""
    env = None
    if package is not None:
        import os
        env = dict(os.environ, PYTHONPATH=str(package))
    done = subprocess.run([sys.executable, __file__, "--one", str(size), "--polls", str(polls)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(),
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: size {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def line(name: str, size: int, f: dict[str, float]) -> str:
    return (f"{name:>8} {size:>8,} gp: {f['total']:.3f} s CPU/poll ({f['total'] / size * 1e6:.1f}"
            f" us/gp; history+detection+evidence+state {f['ingest']:.3f}, report "
            f"{f['report']:.3f}, alerting {f['alerting']:.3f}, render {f['render']:.3f}); RSS "
            f"{f['rss_mb']:.0f} MB, peak {f['peak_mb']:.0f} MB (at start {f['idle_mb']:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--polls", type=int, default=61)
    parser.add_argument("--baseline", help="a git revision to compare with")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.path.append(str(ROOT))  # after PYTHONPATH: a baseline's package comes first
        print(json.dumps(measure(args.one, args.polls)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        old = None
        if args.baseline:
            sys.path.insert(0, str(ROOT))
            from bench.baseline import checkout
            old = checkout(args.baseline, Path(tmp) / "baseline")
        for size in (int(s) for s in args.sizes.split(",")):
            now = child(size, args.polls, None)
            print(line("now", size, now), flush=True)
            if old is not None:
                then = child(size, args.polls, old)
                print(line(args.baseline[:8], size, then), flush=True)
                print(f"{'ratio':>8} {size:>8,} gp: CPU {then['total'] / now['total']:.2f}x "
                      f"less, RSS {then['rss_mb'] / now['rss_mb']:.2f}x, peak "
                      f"{then['peak_mb'] / now['peak_mb']:.2f}x less", flush=True)


if __name__ == "__main__":
    main()
