"""What the audit's evidence costs beside the detection history, at fleet scale.

Every group commits every partition at each poll (the most records ``__consumer_offsets``
gives): the audit's AuditEvidence keeps one committed offset per group-partition and up
to 50 commit requests per group; the baseline, in the same run and from the same polls,
is the detection History the daemon keeps anyway (two series per group-partition and
log end). Prints the memory each retains after the polls (tracemalloc) and the time each
takes per poll, and the ratios.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from lagwatch.audit.evidence import AuditEvidence
from lagwatch.detect.history import History
from lagwatch.detect.verdict import Verdict
from lagwatch.model import GroupSnapshot, LogOffsets, Snapshot
from lagwatch.records import OffsetCommit


def polls(args: argparse.Namespace) -> Iterator[Snapshot]:
    """The fixture's polls, 15 s apart: every group a step further on each partition."""
    topics = [f"topic-{t:04d}" for t in range(args.topics)]
    owned = {f"group-{g:05d}": [(topics[(g * args.topics_per_group + k) % args.topics], p)
                                for k in range(args.topics_per_group)
                                for p in range(args.partitions)]
             for g in range(args.groups)}
    start = 1_790_000_000.0
    for n in range(args.polls):
        now = start + 15.0 * n
        groups = {gid: GroupSnapshot(gid, "Stable", committed=dict.fromkeys(tps, 100 * n))
                  for gid, tps in owned.items()}
        offsets = {(t, p): LogOffsets(0, 100 * n + 50) for t in topics
                   for p in range(args.partitions)}
        records = tuple((now, OffsetCommit(gid, tp[0], tp[1], 100 * n,
                                           commit_timestamp_ms=int(now * 1000)))
                        for gid, tps in owned.items() for tp in tps)
        yield Snapshot("bench", now, 1.0, up=True, groups=groups, offsets=offsets,
                       commit_records=records, records_exact=True)


def measure(args: argparse.Namespace, build: Callable[[], Any],
            feed: Callable[[Any, Snapshot], None]) -> tuple[int, float]:
    """Bytes the structure retains after every poll, and its mean seconds per poll."""
    spent = 0.0
    gc.collect()
    tracemalloc.start()
    held = build()
    for k, snapshot in enumerate(polls(args)):
        began = time.perf_counter()
        feed(held, snapshot)
        spent += time.perf_counter() - began
        del snapshot
        print(f"  poll {k + 1}/{args.polls}", flush=True, end="\r")
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print()
    return retained, spent / args.polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1800)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--topics-per-group", type=int, default=10)
    parser.add_argument("--polls", type=int, default=60)
    args = parser.parse_args()
    gps = args.groups * args.topics_per_group * args.partitions
    print(f"fixture: {args.groups} groups x {args.topics_per_group * args.partitions} "
          f"partitions = {gps} group-partitions, {args.polls} polls; "
          f"{os.cpu_count()} CPUs")

    def judged(snapshot: Snapshot) -> Verdict:  # no statuses: the evidence's least work
        return Verdict(assessments={gid: {} for gid in snapshot.groups})

    base_bytes, base_s = measure(args, lambda: History(window_s=1800.0),
                                 lambda h, s: h.observe(s))
    ev_bytes, ev_s = measure(args, lambda: AuditEvidence(window_s=1800.0),
                             lambda e, s: e.observe(s, judged(s)))
    print(f"baseline (detection History): {base_bytes / 1e6:.1f} MB retained, "
          f"{base_s * 1000:.0f} ms/poll")
    print(f"audit evidence: {ev_bytes / 1e6:.1f} MB retained ({ev_bytes / gps:.0f} B per "
          f"group-partition), {ev_s * 1000:.0f} ms/poll")
    print(f"ratio evidence/baseline: memory {ev_bytes / base_bytes:.2f}x, "
          f"time {ev_s / base_s:.2f}x")


if __name__ == "__main__":
    main()
