"""A replica's memory while someone without the key floods the ha state topic, the current
lagwatch against an older one in the same run.

    .venv/bin/python bench/state_topic_flood.py            # baseline: 967d431 (unsigned)
    .venv/bin/python bench/state_topic_flood.py --baseline REV --megabytes 600

Starts a local broker (or uses $LAGWATCH_BENCH_BOOTSTRAP) and, for each lagwatch in
turn, one replica with an ``ha`` section on a state topic of its own. Once the replica
owns its shards, it writes ``--megabytes`` of status parts with a plain producer, 900 kB
of random bytes each, every one for another cluster name and in turn to every shard, each
with the header a replica writes but no signature, after a forged claim on every shard
(an older lagwatch believed it, and then the parts); then it samples the replica's RSS
until the current one has counted every record refused (the older one: for as long, and
10 s more) and prints it before and after, its peak, and the growth's share of what was
written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from kafka_local import free_port  # noqa: E402

from bench.baseline import checkout, run  # noqa: E402
from bench.poll_scale import broker, say  # noqa: E402

SHARDS, PART = 4, 900_000
KEY = "bench-replicas-share-this-key-0123456789"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("bench: no VmRSS")


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        return str(answer.read().decode())


def owns_all(port: int) -> bool:
    try:
        text = metrics(port)
    except OSError:
        return False
    return sum(1 for line in text.splitlines()
               if line.startswith("lagwatch_shard_owned{") and line.endswith(" 1.0")) == SHARDS


def wait(condition: object, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise SystemExit(f"bench: timed out waiting for {what}")


def refused(port: int) -> float:
    """The records the replica refused as unsigned (0 for a lagwatch that does not count)."""
    for line in metrics(port).splitlines():
        if line.startswith('lagwatch_ha_records_skipped_total{reason="unsigned"}'):
            return float(line.split()[-1])
    return 0.0


def measure(label: str, package: Path | None, bootstrap: str, *, home: Path, megabytes: int,
            signed: bool, read_s: float) -> float:
    """Flood a replica; return how long it took to refuse it all (``read_s`` for one
    that does not count)."""
    port, topic = free_port(), f"bench-state-{label.split(maxsplit=1)[0]}-{os.getpid()}"
    ha = {"cluster": "prod", "topic": topic, "group": topic, "shards": SHARDS,
          "session_timeout": "6s", "replica": "bench"}
    if signed:
        (home / "ha-key").parent.mkdir(parents=True, exist_ok=True)
        (home / "ha-key").write_text(KEY)
        ha["key_file"] = str(home / "ha-key")
    daemon = run(home, {"clusters": [{"name": "prod", "bootstrap_servers": [bootstrap]}],
                        "poll_interval": "5s", "persist": False,
                        "state_dir": str(home / "state"), "ha": ha,
                        "http": {"listen": f"127.0.0.1:{port}"}}, package)
    try:
        wait(lambda: owns_all(port), f"{label} to own its shards")
        time.sleep(10)  # its first polls and parts written
        before = rss_mb(daemon.pid)
        producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 << 20,
                                 linger_ms=50)
        head = json.dumps({"v": 1, "replica": "mallory", "incarnation": "x",
                           "generation": 1}).encode()
        claim = json.dumps({"v": 1, "replica": "mallory", "incarnation": "x",
                            "generation": 1}).encode()
        for shard in range(SHARDS):
            producer.send(topic, key=b"claim", value=claim, partition=shard)
        count = megabytes * 1_000_000 // PART
        for n in range(count):
            producer.send(topic, key=f"status:forged-{n}".encode(),
                          value=head + b"\n" + os.urandom(PART), partition=n % SHARDS)
        producer.flush()
        producer.close()
        say(f"  {label}: wrote {count} parts of {PART:,} bytes")
        started, peak = time.monotonic(), before
        while (refused(port) < count + SHARDS if signed
               else time.monotonic() - started < read_s + 10):
            peak = max(peak, rss_mb(daemon.pid))
            time.sleep(0.5)
        took = time.monotonic() - started
        after = rss_mb(daemon.pid)
        counted = refused(port)
    finally:
        daemon.terminate()
        daemon.wait(60)
    written = count * PART / 1e6
    print(f"{label:<22} RSS before {before:7.1f} MB, after {after:7.1f} MB (peak "
          f"{peak:7.1f}); grew {after - before:7.1f} MB for {written:.0f} MB forged "
          f"({(after - before) / written:.2f} of it); {counted:.0f} refused in {took:.0f} s",
          flush=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="967d431")
    parser.add_argument("--megabytes", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lagwatch-state-flood-") as tmp, \
            broker("1g") as bootstrap:
        home = Path(tmp)
        old = checkout(args.baseline, home / "baseline")
        took = measure("current", None, bootstrap, home=home / "new",
                       megabytes=args.megabytes, signed=True, read_s=0)
        measure(f"baseline {args.baseline}", old, bootstrap, home=home / "old",
                megabytes=args.megabytes, signed=False, read_s=took)


if __name__ == "__main__":
    main()
