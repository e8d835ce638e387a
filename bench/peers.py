"""lagwatch beside KMinion and kafka_exporter on one fixture: CPU, memory and scrape time.

    .venv/bin/python bench/peers.py [--rounds 4] [--interval 30]
        [--kminion-source DIR] [--kafka-exporter-source DIR]   # fixture: bench/poll_scale

Builds the two Go exporters (KMinion 2.3.5, kafka_exporter 1.9.0) with the Go toolchain
into ~/.cache/lagwatch/peers, from their Go module releases through the module proxy, or
from a source checkout of the release when the proxy does not serve it
(``--kminion-source``, ``--kafka-exporter-source``: e.g. ``git clone --branch v2.3.5
https://github.com/redpanda-data/kminion``). Then starts a local broker (or uses
$LAGWATCH_BENCH_BOOTSTRAP), builds bench/poll_scale.py's fixture (200 topics x 10
partitions, 500 groups each committing to 10 topics: 50,000 group-partitions, every
group 1 to 5 messages behind, no members), and runs each tool alone against it, scraped
every ``--interval`` seconds with gzip, as Prometheus does, for ``--rounds`` scrapes after
the first full one:

- scrape: the median time of those scrapes;
- RSS: the median of the process's resident memory at each scrape;
- CPU per collection: the process's CPU seconds over the rounds, per round. lagwatch
  polls Kafka every ``--interval`` on its own and serves scrapes from what it rendered;
  the exporters read Kafka when scraped. Either way, one collection per round.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path += [str(ROOT), str(ROOT / "tools")]

from kafka_local import free_port  # noqa: E402

from bench.poll_scale import broker, build_fixture, fixture_arguments, say  # noqa: E402

CACHE = Path.home() / ".cache" / "lagwatch" / "peers"


@dataclass(frozen=True)
class Peer:
    name: str
    module: str  # the Go module, @version
    binary: str


KMINION = Peer("KMinion 2.3.5", "github.com/cloudhut/kminion/v2@v2.3.5", "kminion-2.3.5")
KAFKA_EXPORTER = Peer("kafka_exporter 1.9.0", "github.com/danielqsj/kafka_exporter@v1.9.0",
                      "kafka_exporter-1.9.0")


def build(peer: Peer, source: str | None) -> Path:
    """The peer's binary: cached, else built from ``source``, else installed from the
    module proxy."""
    target = CACHE / peer.binary
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"building {peer.name} ...")
    if source:
        done = subprocess.run(["go", "build", "-o", str(target), "."], cwd=source,
                              capture_output=True, text=True, check=False)
    else:
        with tempfile.TemporaryDirectory() as gobin:
            done = subprocess.run(["go", "install", peer.module], capture_output=True,
                                  text=True, check=False, env=dict(os.environ, GOBIN=gobin))
            built = list(Path(gobin).iterdir()) if done.returncode == 0 else []
            if built:
                shutil.move(str(built[0]), target)
    if done.returncode != 0 or not target.exists():
        raise SystemExit(f"bench: building {peer.name} failed:\n{done.stderr.strip()}\n"
                         "(where the Go module proxy does not serve it, pass a source "
                         "checkout of the release: --kminion-source / "
                         "--kafka-exporter-source)")
    return target


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    ready: str  # a series name the first full scrape holds


@contextmanager
def started(name: str, argv: list[str], url: str, ready: str, *, home: Path,
            env: dict[str, str] | None = None) -> Iterator[Running]:
    log = (home / f"{name.split(maxsplit=1)[0]}.log").open("wb")
    proc = subprocess.Popen(argv, cwd=home, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {})))
    try:
        yield Running(name, proc, url, ready)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def scrape(url: str) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})  # noqa: S310 - http://127.0.0.1 made here
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - as above
        body = response.read()
        took = time.perf_counter() - began
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return took, body


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(tool: Running, rounds: int, interval: float) -> dict[str, float]:
    """Wait for a full scrape, then scrape every ``interval`` for ``rounds`` rounds."""
    deadline = time.monotonic() + 900
    while True:
        if tool.proc.poll() is not None:
            raise SystemExit(f"bench: {tool.name} ended with {tool.proc.returncode}")
        try:
            _, body = scrape(tool.url)
            if tool.ready.encode() in body:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {tool.name} never exported {tool.ready}")
        time.sleep(2)
    say(f"  {tool.name}: exporting; measuring {rounds} rounds of {interval:g} s")
    took, rss = [], []
    cpu_before, next_at = cpu_s(tool.proc.pid), time.monotonic() + interval
    for _ in range(rounds):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        seconds, _ = scrape(tool.url)
        took.append(seconds)
        rss.append(rss_mb(tool.proc.pid))
    return {"scrape_s": statistics.median(took), "rss_mb": statistics.median(rss),
            "cpu_s": (cpu_s(tool.proc.pid) - cpu_before) / rounds}


def lagwatch(bootstrap: str, home: Path, interval: float) -> tuple[list[str], str]:
    port = free_port()
    config = {"clusters": [{"name": "bench", "bootstrap_servers": bootstrap.split(",")}],
              "poll_interval": f"{interval:g}s", "http": {"listen": f"127.0.0.1:{port}"},
              "state_dir": str(home / "state"), "detection": {"window": "30m"}}
    (home / "lagwatch.yaml").write_text(json.dumps(config))
    return ([sys.executable, "-m", "lagwatch", "run", "-c", str(home / "lagwatch.yaml")],
            f"http://127.0.0.1:{port}/metrics")


def kminion(binary: Path, bootstrap: str, home: Path) -> tuple[list[str], str, dict[str, str]]:
    port = free_port()
    (home / "kminion.yaml").write_text(json.dumps({
        "logger": {"level": "warn"},
        "kafka": {"brokers": bootstrap.split(",")},
        "minion": {"consumerGroups": {"enabled": True, "scrapeMode": "adminApi",
                                      "granularity": "partition"},
                   "topics": {"granularity": "partition"}},
        "exporter": {"host": "127.0.0.1", "port": port}}))
    return ([str(binary)], f"http://127.0.0.1:{port}/metrics",
            {"CONFIG_FILEPATH": str(home / "kminion.yaml")})


def kafka_exporter(binary: Path, bootstrap: str) -> tuple[list[str], str]:
    port = free_port()
    argv = [str(binary), f"--web.listen-address=127.0.0.1:{port}", "--kafka.version=3.9.0",
            "--log.level=warn", *(f"--kafka.server={b}" for b in bootstrap.split(","))]
    return argv, f"http://127.0.0.1:{port}/metrics"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fixture_arguments(parser, topics=200, groups=500, heap="1g")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--kminion-source")
    parser.add_argument("--kafka-exporter-source")
    args = parser.parse_args()
    binaries = {KMINION: build(KMINION, args.kminion_source),
                KAFKA_EXPORTER: build(KAFKA_EXPORTER, args.kafka_exporter_source)}
    results: dict[str, dict[str, float]] = {}
    with broker(args.broker_heap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        say(f"fixture: {args.topics} topics x {args.partitions} partitions, {args.groups} "
            "groups")
        build_fixture(bootstrap, args)
        home = Path(tmp)
        argv, url = lagwatch(bootstrap, home, args.interval)
        with started("lagwatch", argv, url, "lagwatch_group_lag_messages",
                     home=home) as tool:
            results["lagwatch"] = measure(tool, args.rounds, args.interval)
        argv, url, env = kminion(binaries[KMINION], bootstrap, home)
        with started(KMINION.name, argv, url, "kminion_kafka_consumer_group_topic_lag",
                     home=home, env=env) as tool:
            results[KMINION.name] = measure(tool, args.rounds, args.interval)
        argv, url = kafka_exporter(binaries[KAFKA_EXPORTER], bootstrap)
        with started(KAFKA_EXPORTER.name, argv, url, "kafka_consumergroup_lag{",
                     home=home) as tool:
            results[KAFKA_EXPORTER.name] = measure(tool, args.rounds, args.interval)
    gp = args.groups * args.topics_per_group * args.partitions
    print(f"fixture: {gp} group-partitions; {args.rounds} rounds of {args.interval:g} s; "
          f"{os.cpu_count()} CPUs")
    print(f"{'tool':<22} {'scrape, gzip, median':>21} {'RSS median':>11} "
          f"{'CPU per collection':>19}")
    for name, r in results.items():
        print(f"{name:<22} {r['scrape_s']:>19.3f} s {r['rss_mb']:>8.0f} MB "
              f"{r['cpu_s']:>17.2f} s")
    ours = results["lagwatch"]["cpu_s"]
    for name, r in results.items():
        if name != "lagwatch":
            print(f"CPU per collection, {name} / lagwatch: {r['cpu_s'] / ours:.2f}x")


if __name__ == "__main__":
    main()
