"""One lagwatch against three replicas sharing the watching (``ha``), on one fixture.

    .venv/bin/python bench/ha_replicas.py [--topics 1800] [--partitions 10]
                                          [--groups 2000] [--topics-per-group 10]
                                          [--polls 8] [--interval 15] [--broker-heap 2g]

Starts a local broker (or uses $LAGWATCH_BENCH_BOOTSTRAP), builds bench/poll_scale.py's
fixture, then runs, one after the other on the same machine:

- one ``lagwatch run`` without ``ha``: the baseline;
- three ``lagwatch run`` with ``ha`` (12 shards, session timeout 6 s).

For each process it prints the mean time a poll spends reading Kafka and processing
(``lagwatch_poll_duration_seconds`` and ``lagwatch_poll_processing_seconds``, over the
polls after the first) and the CPU seconds it used per poll (from /proc), and the ratio of
the replicas' to the baseline's. Then it kills one replica with SIGKILL and prints the
failover time: from the kill until every shard is owned by the two left, and until the
first poll of a new owner after that.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from kafka_local import free_port  # noqa: E402

from bench.poll_scale import broker, build_fixture, fixture_arguments, say  # noqa: E402

SHARDS = 12
SESSION_S = 6.0


class Lagwatch:
    """One ``lagwatch run`` process, and what its /metrics and /proc say."""

    def __init__(self, bootstrap: str, workdir: Path, name: str, interval_s: float,
                 ha: dict[str, object] | None) -> None:
        self.name, self.port = name, free_port()
        config = workdir / f"{name}.yaml"
        config.write_text(json.dumps({
            "clusters": [{"name": "default", "bootstrap_servers": [bootstrap],
                          "request_timeout": "60s"}],
            "poll_interval": f"{interval_s}s", "http": {"listen": f"127.0.0.1:{self.port}"},
            "state_dir": str(workdir / name), "log_level": "warning",
            **({"ha": {**ha, "replica": name}} if ha else {})}))
        self.proc = subprocess.Popen([sys.executable, "-m", "lagwatch", "run", "-c",
                                      str(config)], stdout=subprocess.DEVNULL)

    def samples(self) -> dict[str, float]:
        """The poll counters and shards owned, summed over clusters; {} while down."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                        timeout=60) as response:
                text = response.read().decode()
        except OSError:
            return {}
        found: dict[str, float] = {}
        for line in text.splitlines():
            for name in ("lagwatch_poll_duration_seconds_count",
                         "lagwatch_poll_duration_seconds_sum",
                         "lagwatch_poll_processing_seconds_count",
                         "lagwatch_poll_processing_seconds_sum", "lagwatch_shard_owned"):
                if line.startswith(name + "{") or line.startswith(name + " "):
                    found[name] = found.get(name, 0.0) + float(line.split()[-1])
        return found

    def cpu_s(self) -> float:
        """User and system CPU seconds the process has used."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait(condition: object, what: str, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def measure(processes: list[Lagwatch], polls: int) -> list[dict[str, float]]:
    """Wait for each process's first poll, then for ``polls`` more; return per process the
    mean poll time, processing time and CPU seconds per poll over those."""
    wait(lambda: all(p.samples().get("lagwatch_poll_processing_seconds_count", 0) >= 1
                     for p in processes), "every process's first poll")
    start = [(p.samples(), p.cpu_s()) for p in processes]
    wait(lambda: all(p.samples().get("lagwatch_poll_processing_seconds_count", 0)
                     >= s["lagwatch_poll_processing_seconds_count"] + polls
                     for p, (s, _) in zip(processes, start, strict=True)), f"{polls} polls")
    out = []
    for p, (before, cpu) in zip(processes, start, strict=True):
        after = p.samples()
        n = after["lagwatch_poll_processing_seconds_count"] - before[
            "lagwatch_poll_processing_seconds_count"]
        read = after["lagwatch_poll_duration_seconds_sum"] - before[
            "lagwatch_poll_duration_seconds_sum"]
        read_n = after["lagwatch_poll_duration_seconds_count"] - before[
            "lagwatch_poll_duration_seconds_count"]
        out.append({"read_s": read / read_n, "processing_s": (
            after["lagwatch_poll_processing_seconds_sum"]
            - before["lagwatch_poll_processing_seconds_sum"]) / n,
                    "cpu_s": (p.cpu_s() - cpu) / n, "polls": n})
    return out


def failover(replicas: list[Lagwatch]) -> tuple[float, float]:
    """Kill the first replica; return the seconds until the others own every shard, and
    until a new owner's first poll after that."""
    victim, rest = replicas[0], replicas[1:]
    killed = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    wait(lambda: sum(p.samples().get("lagwatch_shard_owned", 0.0) for p in rest) == SHARDS,
         "the shards owned by the replicas left", timeout_s=120)
    owned = time.monotonic() - killed
    owned_polls = {p.name: p.samples().get("lagwatch_poll_processing_seconds_count", 0.0)
                   for p in rest}
    wait(lambda: any(p.samples().get("lagwatch_poll_processing_seconds_count", 0.0)
                     > owned_polls[p.name] for p in rest), "a poll after the move",
         timeout_s=300)
    return owned, time.monotonic() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fixture_arguments(parser, topics=1800, groups=2000, heap="2g")
    parser.add_argument("--polls", type=int, default=8)
    parser.add_argument("--interval", type=float, default=15.0)
    args = parser.parse_args()
    gps = args.groups * args.topics_per_group * args.partitions
    with broker(args.broker_heap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        say("building the fixture")
        build_fixture(bootstrap, args)
        workdir = Path(tmp)
        say("one lagwatch, without ha")
        single = Lagwatch(bootstrap, workdir, "single", args.interval, None)
        try:
            alone, = measure([single], args.polls)
        finally:
            single.stop()
        say("three replicas, with ha")
        ha = {"cluster": "default", "group": "bench-ha", "topic": "bench-ha-state",
              "shards": SHARDS, "session_timeout": f"{SESSION_S:g}s"}
        replicas = [Lagwatch(bootstrap, workdir, f"r{i}", args.interval, ha)
                    for i in range(3)]
        try:
            wait(lambda: sum(r.samples().get("lagwatch_shard_owned", 0.0)
                             for r in replicas) == SHARDS
                 and all(r.samples().get("lagwatch_shard_owned", 0.0) for r in replicas),
                 "the shards shared out")
            each = measure(replicas, args.polls)
            owned_s, polled_s = failover(replicas)
        finally:
            for r in replicas:
                r.stop()
    print(f"fixture: {args.topics} topics x {args.partitions} partitions, {args.groups} "
          f"groups, {gps} group-partitions; {os.cpu_count()} CPUs; polls every "
          f"{args.interval:g} s, {args.polls} measured per process")
    print(f"one lagwatch: poll {alone['read_s']:.3f} s reading Kafka + "
          f"{alone['processing_s']:.3f} s processing, {alone['cpu_s']:.2f} CPU s per poll")
    for r, m in zip(replicas, each, strict=True):
        print(f"replica {r.name}: poll {m['read_s']:.3f} s reading Kafka + "
              f"{m['processing_s']:.3f} s processing, {m['cpu_s']:.2f} CPU s per poll")
    mean = {k: statistics.mean(m[k] for m in each) for k in ("read_s", "processing_s",
                                                               "cpu_s")}
    print(f"ratio replica (mean of 3) / one lagwatch: reading "
          f"{mean['read_s'] / alone['read_s']:.2f}x, processing "
          f"{mean['processing_s'] / alone['processing_s']:.2f}x, CPU per poll "
          f"{mean['cpu_s'] / alone['cpu_s']:.2f}x; CPU of all 3 / one: "
          f"{3 * mean['cpu_s'] / alone['cpu_s']:.2f}x")
    print(f"failover after kill -9 (session timeout {SESSION_S:g} s): every shard owned "
          f"again after {owned_s:.1f} s, first poll by a new owner after {polled_s:.1f} s")


if __name__ == "__main__":
    main()
