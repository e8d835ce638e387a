"""Poll cost at scale: 200 topics x 10 partitions, 500 groups, ~50,000 group-partitions.

    .venv/bin/python bench/poll_scale.py [--topics 200] [--partitions 10] [--groups 500]
                                         [--topics-per-group 10] [--polls 7]
                                         [--daemon-polls 60]
    .venv/bin/python bench/poll_scale.py --time-lag 0,1000 --messages 100 --lagging 0.1
                                         [--groups 2000] [--polls 7]
    .venv/bin/python bench/poll_scale.py --profile [--polls 7]

Starts a local broker (or uses $LAGWATCH_BENCH_BOOTSTRAP), builds the fixture, then prints:
- median poll time, Kafka requests per poll, history + detection + report time, and
  /metrics render time, for
  lagwatch's batched collector and, in the same run, a per-group/per-topic baseline (the
  way threshold exporters commonly read offsets), with their ratio;
- the peak RSS of a `lagwatch run` daemon once its history window is full, and the
  median and p90 times of its /metrics scrapes over HTTP meanwhile, with gzip (as
  Prometheus asks) and without, alternately.

With ``--time-lag B1,B2,...`` it measures only the collector and the processing after it,
once per ``record_fetches_per_poll`` budget (0: no records read, the baseline), over the
same polls: the cost of reading records at committed offsets for exact time lag. Each
poll is measured as if every committed offset had moved since the last, the worst case
(a cached record is never reused), so every poll spends its whole budget.
With ``--profile`` it measures only the collection (``ClusterReader.poll``): CPU seconds
per poll, and where they go by the code that spends them (kafka-python's protocol
decoding and encoding, its network and client code, lagwatch's own), from cProfile over
the polls after the first.

``--lagging`` is the share of group-partitions behind (the rest are caught up), each
group at its own offset among ``--messages`` per partition.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.protocol.consumer import OffsetSpec
from kafka.structs import OffsetAndMetadata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from kafka_local import LocalKafka, free_port  # noqa: E402

from lagwatch.config import load_config  # noqa: E402
from lagwatch.heap import Heap  # noqa: E402
from lagwatch.kafka.reader import ClusterReader  # noqa: E402
from lagwatch.pipeline import ClusterJudge  # noqa: E402
from lagwatch.report.latest import LatestReports  # noqa: E402
from lagwatch.serve.deflate import gzip_stream  # noqa: E402
from lagwatch.serve.metrics import Exporter  # noqa: E402

PRODUCERS = 8


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def broker(heap: str) -> Iterator[str]:
    given = os.environ.get("LAGWATCH_BENCH_BOOTSTRAP")
    if given:
        yield given
        return
    with LocalKafka(heap=heap) as local:
        yield local.bootstrap


def build_fixture(bootstrap: str, args: argparse.Namespace) -> None:
    """Create the topics, a few messages per partition, and the groups' commits."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)
    topics = [f"bench-{i:04d}" for i in range(args.topics)]
    for start in range(0, len(topics), 50):
        batch = topics[start:start + 50]
        admin.create_topics([NewTopic(t, args.partitions, 1) for t in batch])
        say(f"  topics: {start + len(batch)}/{len(topics)}")
    admin.wait_for_topics(topics, timeout_ms=120000)
    with ThreadPoolExecutor(PRODUCERS) as pool:
        list(pool.map(lambda k: produce(bootstrap, topics[k::PRODUCERS], args.partitions,
                                        args.messages), range(PRODUCERS)))
    say(f"  messages: {args.messages * len(topics) * args.partitions}")
    behind = round(args.lagging * 100)
    for g in range(args.groups):
        chosen = [topics[(g * 7 + k) % len(topics)] for k in range(args.topics_per_group)]
        admin.alter_group_offsets(f"bench-group-{g:04d}", {
            TopicPartition(t, p): OffsetAndMetadata(committed(g, t, p, behind, args.messages),
                                                    "", -1)
            for t in chosen for p in range(args.partitions)})
        if (g + 1) % 100 == 0:
            say(f"  groups: {g + 1}/{args.groups}")
    admin.close()


def committed(group: int, topic: str, partition: int, behind: int, messages: int) -> int:
    """Where a group stands on a partition: behind (somewhere among the messages) for
    ``behind`` percent of group-partitions, spread by a hash; caught up for the rest. The
    original fixture (``--lagging 1 --messages 5``) is every group behind by 1 to 5."""
    if behind >= 100 and messages == 5:
        return group % 5
    h = zlib.crc32(f"{group}/{topic}/{partition}".encode())
    return (h >> 8) % messages if h % 100 < behind else messages


def produce(bootstrap: str, topics: list[str], partitions: int, messages: int) -> None:
    """Write ``messages`` messages to each partition of the topics.

    A producer fetches metadata for each new topic it writes to, and each fetch covers
    every topic it knows: one producer for 1,800 topics spent about 9 minutes on that.
    Several producers, each with a share of the topics, spend a fraction of it.
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=65536)
    for t in topics:
        for p in range(partitions):
            for _ in range(messages):
                producer.send(t, b"x", partition=p)
    producer.flush()
    producer.close()


def count_requests(admin: Any) -> Callable[[], int]:
    """Count the requests an admin client sends (wraps its connection manager's send)."""
    sent = [0]
    original = admin._manager.send

    def send(*a: Any, **kw: Any) -> Any:
        sent[0] += 1
        return original(*a, **kw)

    admin._manager.send = send

    def take() -> int:
        n, sent[0] = sent[0], 0
        return n
    return take


def baseline_poll(admin: Any, groups: list[str]) -> int:
    """Read the same data one group and one topic at a time; return group-partitions."""
    total = 0
    tps: set[TopicPartition] = set()
    for g in groups:
        offsets = admin.list_group_offsets({g: None})[g]
        admin.describe_groups([g])
        total += len(offsets)
        tps.update(offsets)
    by_topic: dict[str, list[TopicPartition]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp)
    for parts in by_topic.values():
        admin.list_partition_offsets(dict.fromkeys(parts, OffsetSpec.LATEST))
        admin.list_partition_offsets(dict.fromkeys(parts, OffsetSpec.EARLIEST))
    return total


def measure_lagwatch(bootstrap: str, polls: int, fetches: int = 1000,
                     moving: bool = False) -> dict[str, float]:
    """Poll and process ``polls`` times; with ``moving``, as if every committed offset had
    moved since the poll before (nothing read at one is reused)."""
    config = load_config(None, {"bootstrap_servers": [bootstrap], "poll_interval": "30s"})
    cluster = config.clusters[0].model_copy(update={"record_fetches_per_poll": fetches})
    collector = ClusterReader(cluster, config.detection.retention_refresh)
    take = count_requests(collector._client())
    take()
    state = LatestReports(["default"], 30.0)
    exporter = Exporter(state)
    lean = Exporter(state, per_partition=False)
    pipeline = ClusterJudge("default", config.detection)
    heap = Heap()
    poll_s, report_s, render_s, lean_s, gzip_s, requests = [], [], [], [], [], []
    exact, fetched = [], []
    snapshot = None
    for i in range(polls):
        if moving:
            collector.unread.known.clear()
        started = time.perf_counter()
        snapshot = collector.poll()
        poll_s.append(time.perf_counter() - started)
        requests.append(take())
        started = time.perf_counter()
        exporter.metrics.observe(snapshot)
        state.publish(snapshot, pipeline.ingest(snapshot))
        heap.settle(snapshot.taken_at)  # as the daemon does after each poll
        report_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        exporter.refresh()
        render_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        lean.refresh()
        lean_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        b"".join(gzip_stream(exporter.pieces()))
        gzip_s.append(time.perf_counter() - started)
        fetched.append(snapshot.records_fetched)
        exact.append(sum(a.lag_seconds_exact for g in state.reports()[0].groups
                         for t in g.topics for a in (p.assessment for p in t.partitions)))
        say(f"  lagwatch poll {i + 1}/{polls}: {poll_s[-1]:.3f}s, {requests[-1]} requests, "
            f"{fetched[-1]} records read, {exact[-1]} exact time lags")
    collector.close()
    assert snapshot is not None and snapshot.up, snapshot
    group_partitions = sum(len(g.committed) for g in snapshot.groups.values())
    body, lean_body = exporter.text().encode(), lean.text().encode()
    return {"poll_s": statistics.median(poll_s), "requests": statistics.median(requests),
            "report_s": statistics.median(report_s), "render_s": statistics.median(render_s),
            "group_partitions": group_partitions, "groups": len(snapshot.groups),
            "series": body.count(b"\nlagwatch_"), "errors": len(snapshot.errors),
            "lean_render_s": statistics.median(lean_s), "gzip_s": statistics.median(gzip_s),
            "lean_series": lean_body.count(b"\nlagwatch_"),
            "fetched": statistics.median(fetched), "exact": exact[-1],
            "lagging": sum(1 for g in snapshot.groups.values() for tp, c in g.committed.items()
                           if c < snapshot.offsets[tp].log_end),
            "poll_max_s": max(poll_s), "report_max_s": max(report_s)}


def measure_baseline(bootstrap: str, polls: int) -> dict[str, float]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)
    take = count_requests(admin)
    groups = sorted(g["group_id"] for g in admin.list_groups()
                    if g["group_id"].startswith("bench-group-"))
    take()
    poll_s, requests = [], []
    for i in range(polls):
        started = time.perf_counter()
        baseline_poll(admin, groups)
        poll_s.append(time.perf_counter() - started)
        requests.append(take())
        say(f"  baseline poll {i + 1}/{polls}: {poll_s[-1]:.3f}s, {requests[-1]} requests")
    admin.close()
    return {"poll_s": statistics.median(poll_s), "requests": statistics.median(requests)}


def measure_daemon(bootstrap: str, polls: int, interval_s: float, scrape_s: float
                   ) -> dict[str, float]:
    """Run `lagwatch run` until its history window is full; return its peak RSS, mean poll
    time, mean processing time over the last 10 polls (the window nearly full), and the
    median time of a /metrics scrape over HTTP once its first poll is in.

    The window is sized to ``polls`` polls ``interval_s`` apart, so with 60 every series
    holds as many samples as a 30-minute window at 30 s polls does; /metrics is scraped
    every ``scrape_s``. The peak RSS is the kernel's high-water mark (VmHWM).
    """
    port = free_port()
    state = tempfile.TemporaryDirectory()
    config = Path(state.name) / "lagwatch.yaml"
    config.write_text(json.dumps({
        "clusters": [{"name": "default", "bootstrap_servers": [bootstrap]}],
        "poll_interval": f"{interval_s}s", "http": {"listen": f"127.0.0.1:{port}"},
        "state_dir": state.name, "log_level": "warning",
        "detection": {"window": f"{polls * interval_s}s", "min_duration": "30s",
                      "stall_after": "30s",
                      "max_samples": polls + 10}}))
    proc = subprocess.Popen([sys.executable, "-m", "lagwatch", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL)
    try:
        count, text = 0.0, ""
        timings: list[dict[str, float]] = []  # the poll histograms' counts and sums, per scrape
        scrapes: dict[bool, list[float]] = {True: [], False: []}  # by gzip or not
        while count < polls:
            time.sleep(scrape_s)
            gzipped = len(scrapes[True]) <= len(scrapes[False])  # alternate, as Prometheus first
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                             headers={"Accept-Encoding": "gzip"} if gzipped
                                             else {})
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    body = response.read()
            except OSError:
                continue
            took = time.perf_counter() - started
            text = (gzip.decompress(body) if gzipped else body).decode()
            if count:
                scrapes[gzipped].append(took)
            timings.append({name: float(line.split()[-1]) for line in text.splitlines()
                            for name in ("lagwatch_poll_duration_seconds_count",
                                         "lagwatch_poll_duration_seconds_sum",
                                         "lagwatch_poll_processing_seconds_count",
                                         "lagwatch_poll_processing_seconds_sum")
                            if line.startswith(name + "{")})
            count = timings[-1].get("lagwatch_poll_duration_seconds_count", 0.0)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm_kb = next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("VmHWM:"))
        last = timings[-1]
        start = next(t for t in timings  # where the last 10 processed polls begin
                     if t.get("lagwatch_poll_processing_seconds_count", 0.0)
                     >= last["lagwatch_poll_processing_seconds_count"] - 10)
        processed = (last["lagwatch_poll_processing_seconds_count"]
                     - start["lagwatch_poll_processing_seconds_count"])
        return {"rss_mb": hwm_kb / 1024,
                "poll_s": last["lagwatch_poll_duration_seconds_sum"] / count,
                "processing_s": (last["lagwatch_poll_processing_seconds_sum"]
                                 - start["lagwatch_poll_processing_seconds_sum"]) / processed,
                "processed": processed,
                "scrape_s": statistics.median(scrapes[True]), "scrapes": len(scrapes[True]),
                "scrape_p90_s": statistics.quantiles(scrapes[True], n=10)[-1],
                "plain_s": statistics.median(scrapes[False]),
                "plain_p90_s": statistics.quantiles(scrapes[False], n=10)[-1],
                "series": text.count("\nlagwatch_")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        state.cleanup()


def fixture_arguments(parser: argparse.ArgumentParser, topics: int, groups: int,
                      heap: str) -> None:
    """The options that shape the fixture ``build_fixture`` makes, and the broker's heap."""
    parser.add_argument("--topics", type=int, default=topics)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--groups", type=int, default=groups)
    parser.add_argument("--topics-per-group", type=int, default=10)
    parser.add_argument("--broker-heap", default=heap, help="the local broker's heap")
    parser.add_argument("--messages", type=int, default=5, help="messages per partition")
    parser.add_argument("--lagging", type=float, default=1.0,
                        help="share of group-partitions behind (the rest caught up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fixture_arguments(parser, topics=200, groups=500, heap="1g")
    parser.add_argument("--polls", type=int, default=7)
    parser.add_argument("--daemon-polls", type=int, default=60,
                        help="polls the daemon runs (its window holds them all)")
    parser.add_argument("--daemon-interval", type=float, default=3.0,
                        help="seconds between the daemon's polls")
    parser.add_argument("--scrape-interval", type=float, default=1.0,
                        help="seconds between the daemon's /metrics scrapes")
    parser.add_argument("--time-lag", default=None, metavar="B1,B2",
                        help="measure the collector per record_fetches_per_poll budget")
    parser.add_argument("--profile", action="store_true",
                        help="profile the collection alone")
    args = parser.parse_args()
    if args.profile:
        profile_collection(args)
        return
    if args.time_lag is not None:
        time_lag(args, [int(b) for b in args.time_lag.split(",")])
        return
    with broker(args.broker_heap) as bootstrap:
        say(f"building the fixture on {bootstrap}")
        build_fixture(bootstrap, args)
        say("measuring lagwatch's collector")
        ours = measure_lagwatch(bootstrap, args.polls)
        say("measuring the per-group baseline")
        base = measure_baseline(bootstrap, args.polls)
        say("measuring the daemon: peak RSS and scrapes")
        daemon = measure_daemon(bootstrap, args.daemon_polls, args.daemon_interval,
                                args.scrape_interval)
    print(f"fixture: {args.topics} topics x {args.partitions} partitions, "
          f"{ours['groups']:.0f} groups, {ours['group_partitions']:.0f} group-partitions; "
          f"{os.cpu_count()} CPUs")
    print(f"lagwatch: median poll {ours['poll_s']:.3f} s, {ours['requests']:.0f} requests/poll, "
          f"history + detection + report {ours['report_s'] * 1000:.0f} ms, /metrics render "
          f"{ours['render_s'] * 1000:.0f} ms ({ours['series']:.0f} lagwatch series), gzip scrape "
          f"in process {ours['gzip_s'] * 1000:.0f} ms, poll errors {ours['errors']:.0f}")
    print(f"lagwatch, metrics.per_partition false: /metrics render "
          f"{ours['lean_render_s'] * 1000:.0f} ms ({ours['lean_series']:.0f} lagwatch series)")
    print(f"baseline (per group, per topic): median poll {base['poll_s']:.3f} s, "
          f"{base['requests']:.0f} requests/poll")
    print(f"ratio baseline/lagwatch: poll time {base['poll_s'] / ours['poll_s']:.1f}x, "
          f"requests {base['requests'] / ours['requests']:.1f}x")
    print(f"daemon: peak RSS {daemon['rss_mb']:.0f} MB, mean poll {daemon['poll_s']:.3f} s "
          f"reading Kafka + {daemon['processing_s']:.3f} s processing (history, detection, "
          f"report, alerting, /metrics render; mean of the last {daemon['processed']:.0f} "
          f"polls; {args.daemon_polls} polls "
          f"filling its window, scraped every {args.scrape_interval:g} s); /metrics scrape "
          f"over HTTP with gzip (as Prometheus asks) median {daemon['scrape_s'] * 1000:.0f} ms, "
          f"p90 {daemon['scrape_p90_s'] * 1000:.0f} ms ({daemon['scrapes']:.0f} scrapes); "
          f"plain median {daemon['plain_s'] * 1000:.0f} ms, p90 "
          f"{daemon['plain_p90_s'] * 1000:.0f} ms; {daemon['series']:.0f} lagwatch series")


def time_lag(args: argparse.Namespace, budgets: list[int]) -> None:
    """Poll and processing time per record-fetch budget, on one fixture, in one run."""
    with broker(args.broker_heap) as bootstrap:
        say(f"building the fixture on {bootstrap}")
        build_fixture(bootstrap, args)
        runs = {}
        for budget in budgets:
            say(f"measuring the collector with record_fetches_per_poll {budget}")
            runs[budget] = measure_lagwatch(bootstrap, args.polls, budget, moving=True)
    first = runs[budgets[0]]
    print(f"fixture: {args.topics} topics x {args.partitions} partitions x {args.messages} "
          f"messages, {first['groups']:.0f} groups, {first['group_partitions']:.0f} "
          f"group-partitions, {first['lagging']:.0f} of them behind; {os.cpu_count()} CPUs; "
          f"{args.polls} polls each, one after the other, each as if every committed offset "
          f"had moved since the last (the records read at one poll are not reused)")
    print("record_fetches_per_poll  records read/poll  exact time lags  poll median (max)"
          "   processing median (max)  requests/poll")
    for budget, r in runs.items():
        print(f"{budget:>23,}  {r['fetched']:>17,.0f}  {r['exact']:>15,.0f}  "
              f"{r['poll_s']:>8.3f} s ({r['poll_max_s']:.3f})  {r['report_s']:>10.3f} s "
              f"({r['report_max_s']:.3f})  {r['requests']:>13,.0f}")
    for budget in budgets[1:]:
        r = runs[budget]
        print(f"ratio budget {budget:,} / budget {budgets[0]:,}: poll "
              f"{r['poll_s'] / first['poll_s']:.2f}x, poll + processing "
              f"{(r['poll_s'] + r['report_s']) / (first['poll_s'] + first['report_s']):.2f}x")


SHARES = (  # where a function's own time is counted, by the first part its file has
    ("lagwatch", ("/lagwatch/",)),
    ("kafka-python protocol (decode, encode)", ("site-packages/kafka/protocol/",
                                                "site-packages/kafka/record/", "<codegen")),
    ("kafka-python network and client", ("site-packages/kafka/",)),
    ("Python standard library and builtins", ("",)),
)


def profile_collection(args: argparse.Namespace) -> None:
    """CPU per collection, and its shares by code, over the polls after the first."""
    import cProfile
    import pstats

    with broker(args.broker_heap) as bootstrap:
        say(f"building the fixture on {bootstrap}")
        build_fixture(bootstrap, args)
        config = load_config(None, {"bootstrap_servers": [bootstrap],
                                    "poll_interval": "30s"})
        collector = ClusterReader(config.clusters[0], config.detection.retention_refresh)
        snapshot = collector.poll()  # connections, metadata, the records topic's start
        spent = []
        for i in range(args.polls):  # timed, not profiled: cProfile doubles the CPU
            started = time.process_time()
            snapshot = collector.poll()
            spent.append(time.process_time() - started)
            say(f"  poll {i + 1}/{args.polls}: {spent[-1]:.3f} s CPU")
        collector.close()
        # kafka-python does its network I/O, and decodes the answers, on a thread of its
        # own: each thread started from here on is profiled too, from its first call
        threads: list[cProfile.Profile] = []

        def profile_thread(*_: object) -> None:
            sys.setprofile(None)
            threads.append(cProfile.Profile())
            threads[-1].enable()

        threading.setprofile(profile_thread)
        collector = ClusterReader(config.clusters[0], config.detection.retention_refresh)
        collector.poll()
        threading.setprofile(None)  # type: ignore[arg-type]
        for started_thread in threads:
            started_thread.clear()  # the first poll is not counted
        profile = cProfile.Profile()
        for i in range(args.polls):
            profile.enable()
            snapshot = collector.poll()
            profile.disable()
            say(f"  profiled poll {i + 1}/{args.polls}")
        collector.close()
    assert snapshot.up and not snapshot.errors, snapshot.errors
    stats = pstats.Stats(profile, *threads).stats  # type: ignore[attr-defined]
    own = {f: tt for f, (_, _, tt, _, _) in stats.items() if not _waiting(f)}
    for f, (_, _, tt, _, callers) in stats.items():  # their time is their callers'
        if f[0] in ("~", "<string>") and f in own and callers:  # builtins, namedtuples
            del own[f]
            edges = {c: edge[2] for c, edge in callers.items()}
            for caller, t in edges.items():
                share = tt * (t / sum(edges.values()) if sum(edges.values()) else
                              1 / len(edges))
                own[caller] = own.get(caller, 0.0) + share
    shares = dict.fromkeys((name for name, _ in SHARES), 0.0)
    for (path, _, _), t in own.items():
        name = next(n for n, prefixes in SHARES if any(p in path for p in prefixes))
        shares[name] += t
    total = sum(shares.values())
    gps = sum(len(g.committed) for g in snapshot.groups.values())
    print(f"fixture: {args.topics} topics x {args.partitions} partitions, {len(snapshot.groups)}"
          f" groups, {gps} group-partitions; {os.cpu_count()} CPUs")
    print(f"collection: median {statistics.median(spent):.3f} s CPU per poll "
          f"({statistics.median(spent) / gps * 1e6:.1f} us per group-partition; "
          f"{args.polls} polls)")
    for name, t in shares.items():
        print(f"  {t / total:6.1%}  {name}")
    print("the functions that spend the most (own time, with the builtins they call):")
    for (path, line, function), t in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        where = path.split("site-packages/")[-1].split("/work/")[-1]
        print(f"  {t / args.polls * 1000:7.1f} ms/poll  {where}:{line}({function})")


def _waiting(function: tuple[str, int, str]) -> bool:
    """A builtin that waits (for the I/O thread, or for the broker's answer)."""
    return function[0] == "~" and any(w in function[2] for w in ("acquire", "select", "wait"))

if __name__ == "__main__":
    main()
