"""Detection on a real local broker with real clients and the real daemon.

    .venv/bin/python bench/detection_broker.py                 # about 14 minutes
    .venv/bin/python bench/detection_broker.py --hog           # beside a busy loop on a core
    .venv/bin/python bench/detection_broker.py --minutes 20 --poll-interval 30
    .venv/bin/python bench/detection_broker.py --baseline e0fc373   # beside an older lagwatch

``lagwatch run`` (its own process, default detection settings) watches one group per
scenario, each on its own topic of 4 partitions written at 40 msg/s, its members
kafka-python 3.0 consumers or Apache Kafka's Java consumer (kafka-clients 4.1, classic or
KIP-848 consumer protocol). Every member drains partitions unevenly, as real clients do,
and kafka-python's join twice at start. After ``--onset`` seconds of health, trouble
starts: slow consumers drop to 50% or 85% of the produce rate, stuck ones hit a poison pill
(re-committing its offset), one consumer stops reading one of its partitions; a lone
consumer is restarted and three members are deployed one at a time. The rest stay healthy
throughout: steady, bursty, committing in batches, or idle.

For each group, from the status document after every poll: the time from onset to the
expected verdict, the share of polls from then on that still show it, how often that
changed, and false alarms: polls with a status or finding that has a severity and that
the scenario does not call for (for trouble, any before onset). With ``--baseline REV``,
lagwatch as of that git revision watches the same groups from its own process in the same
run, and is scored the same way.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from kafka import KafkaAdminClient  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka_local import LocalKafka, free_port  # noqa: E402
from workload import Consumer, JavaConsumer, Producer, java_classpath  # noqa: E402

from bench.baseline import checkout, run  # noqa: E402
from lagwatch.status import SEVERITY, Severity  # noqa: E402

RATE = 40.0
PARTITIONS = 4
UNEVEN = frozenset({"skewed"})  # a slow or stuck member's lag sits on some partitions
LOUD = {str(status) for status, severity in SEVERITY.items() if severity is not Severity.NONE}


def bursts(t: float) -> float:
    """4x the rate for 60 s of every 4 minutes."""
    return RATE * 4 if t % 240 < 60 else RATE


@dataclass
class Scenario:
    """One group: its members, what it should be found to be, and when."""

    name: str
    client: str  # "python", "java" (classic) or "kip848" (consumer protocol)
    expect: str | None = None  # the group status that counts as detection
    allowed: frozenset[str] = frozenset()  # what else it may rightly say after onset
    rate: float | None = None  # share of the produce rate it reads from onset
    members: int = 1
    produce: str = "steady"  # or "bursty", "idle"
    commit_every_s: float = 0.0
    topic: str = ""
    members_now: list[Any] = field(default_factory=list)


Seen = list[tuple[float, str, frozenset[str]]]
"""What a daemon said of a group after each poll: (seconds since onset, status, the kinds
of statuses and findings with a severity)."""


class Watcher:
    """One lagwatch daemon, in its own process, and what it said after each poll."""

    def __init__(self, name: str, tmp: Path, bootstrap: str, poll_s: float,
                 package: Path | None = None) -> None:
        self.name, self.port = name, free_port()
        self.seen: dict[str, Seen] = {s.name: [] for s in SCENARIOS}
        self.cause: dict[str, str | None] = {}  # the last likely cause of its rebalances
        self._process = run(tmp / name, {
            "clusters": [{"name": "bench", "bootstrap_servers": [bootstrap],
                          "groups": {"include": ["^bench-"]}}],
            "poll_interval": poll_s, "http": {"listen": f"127.0.0.1:{self.port}"},
            "state_dir": str(tmp / name / "state")}, package)
        self._last: str | None = None

    def document(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/api/v1/status", timeout=10) as response:
                cluster: dict[str, Any] = json.load(response)["clusters"]["bench"]
                return cluster
        except OSError:
            return None

    def record(self, since: float) -> None:
        """After a new poll that lists every group, record what it said of each."""
        doc = self.document()
        if doc is None or doc["last_poll"] == self._last or not all(
                s.topic in doc["groups"] for s in SCENARIOS):
            return
        self._last = doc["last_poll"]
        t = time.monotonic() - since
        for s in SCENARIOS:
            group = doc["groups"][s.topic]
            alarms = {f["kind"] for f in group["findings"] if f["severity"] != "none"}
            if group["status"] in LOUD:
                alarms.add(group["status"])
            self.seen[s.name].append((t, group["status"], frozenset(alarms)))
            self.cause[s.name] = (group.get("rebalances") or {}).get("likely_cause")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(30)


SCENARIOS = [
    *(Scenario(f"{client}-{share * 100:.0f}pct", client, "lagging", UNEVEN, share)
      for client in ("python", "java", "kip848") for share in (0.5, 0.85)),
    *(Scenario(f"{client}-pill", client, "stalled", UNEVEN)
      for client in ("python", "java", "kip848")),
    Scenario("python-one-stuck", "python", "stalled", UNEVEN),
    *(Scenario(f"{client}-healthy", client) for client in ("python", "java", "kip848")),
    Scenario("python-bursty", "python", produce="bursty"),
    Scenario("python-batch-60s", "python", commit_every_s=60.0),
    Scenario("python-idle", "python", produce="idle"),
    Scenario("python-restart", "python"),
    Scenario("java-rolling-3", "java", members=3),
]


class Bench:
    """The broker's traffic, the members of every scenario, and the daemon's verdicts."""

    def __init__(self, broker: LocalKafka, tmp: Path, poll_s: float,
                 baseline: str | None) -> None:
        self.bootstrap, self.tmp, self.poll_s = broker.bootstrap, tmp, poll_s
        self.baseline = baseline
        self.java = java_classpath(tmp)
        run = str(int(time.time()))
        for s in SCENARIOS:
            s.topic = f"bench-{s.name}-{run}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        admin.create_topics([NewTopic(s.topic, PARTITIONS, 1) for s in SCENARIOS])
        admin.wait_for_topics([s.topic for s in SCENARIOS])
        admin.close()
        self.producers = [
            Producer(self.bootstrap, [s.topic for s in SCENARIOS if s.produce == "steady"],
                     RATE),
            Producer(self.bootstrap, [s.topic for s in SCENARIOS if s.produce == "bursty"],
                     bursts)]
        self.watchers: list[Watcher] = []
        self.onset = 0.0  # monotonic
        self.done = threading.Event()

    def member(self, s: Scenario, k: int = 0) -> Any:
        if s.client == "python":
            return Consumer(self.bootstrap, s.topic, s.topic, commit_every_s=s.commit_every_s)
        protocol = "classic" if s.client == "java" else "consumer"
        # twice the produce rate: it keeps up, fetching at most 16 records a poll
        return JavaConsumer(self.java, self.bootstrap, s.topic, s.topic, protocol,
                            rate=2 * RATE, client_id=f"{s.name}-{k}")

    def start(self) -> None:
        for producer in self.producers:
            producer.start()
        for s in SCENARIOS:
            s.members_now = [self.member(s, k) for k in range(s.members)]
            for m in s.members_now:
                m.start()
        for s in SCENARIOS:
            for m in s.members_now:
                if not m.joined.wait(120):
                    raise SystemExit(f"bench: {s.name} never joined its group")
        self.watchers.append(Watcher("lagwatch", self.tmp, self.bootstrap, self.poll_s))
        if self.baseline:
            self.watchers.append(Watcher(f"lagwatch {self.baseline}", self.tmp, self.bootstrap,
                                         self.poll_s,
                                         checkout(self.baseline, self.tmp / "baseline")))

    def watch(self) -> None:
        """Record every poll's verdicts until done."""
        while not self.done.wait(0.5):
            for watcher in self.watchers:
                watcher.record(self.onset)

    def trouble(self) -> None:
        """Onset: every troubled scenario starts misbehaving now."""
        for s in SCENARIOS:
            for m in s.members_now:
                if s.rate is not None and s.client == "python":
                    m.rate = RATE * s.rate
                elif s.rate is not None:
                    m.send(f"rate {RATE * s.rate:g}")
                elif s.name.endswith("-pill") and s.client == "python":
                    m.committing, m.recommitting = False, True  # re-commits every second
                elif s.name.endswith("-pill"):
                    m.send("stuck 5")  # re-commits every 5 s
                elif s.name == "python-one-stuck":
                    m.paused = {2}

    def restart(self, name: str, k: int) -> None:
        """Restart member k of a scenario: it leaves, a new one joins from the same host."""
        s = next(s for s in SCENARIOS if s.name == name)
        s.members_now[k].stop()
        s.members_now[k] = self.member(s, k)
        s.members_now[k].start()

    def stop(self) -> None:
        self.done.set()
        for watcher in self.watchers:
            watcher.stop()
        for s in SCENARIOS:
            for m in s.members_now:
                m.stop()
        for producer in self.producers:
            producer.stop()


def score(s: Scenario, seen: Seen) -> tuple[str, str, str, str]:
    """Detection time, share of polls held and changes after it, false alarms/polls."""
    false = sum(1 for t, _, alarms in seen
                if alarms - ({s.expect, *s.allowed} if t >= 0 and s.expect else set()))
    falses = f"{false}/{len(seen)}"
    detected = next((t for t, status, _ in seen if t >= 0 and status == s.expect), None)
    if s.expect is None or detected is None:
        return "-" if s.expect is None else "never", "-", "-", falses
    after = [status == s.expect for t, status, _ in seen if t >= detected]
    changes = sum(a != b for a, b in itertools.pairwise(after))
    return (f"+{detected:.0f} s", f"{sum(after) / len(after):.0%} of {len(after)}",
            str(changes), falses)


def report(watchers: list[Watcher], poll_s: float, hog: bool) -> None:
    print(f"\nReal broker, real clients: {len(SCENARIOS)} groups, {PARTITIONS} partitions "
          f"at {RATE:g} msg/s each, {poll_s:g} s polls, default detection settings"
          f"{', a busy loop on one core' if hog else ''}")
    for watcher in watchers:
        print(f"\n{watcher.name}")
        print(f"{'group':18} {'expect':9} {'detected':>9} {'held after':>12} {'changes':>7} "
              f"{'false alarms/polls':>18}  alarms seen; rebalance cause")
        for s in SCENARIOS:
            seen = watcher.seen[s.name]
            detected, held, changes, false = score(s, seen)
            alarms = sorted(set().union(*(a for _, _, a in seen)))
            print(f"{s.name:18} {s.expect or 'quiet':9} {detected:>9} {held:>12} "
                  f"{changes:>7} {false:>18}  {', '.join(alarms) or '-'}; "
                  f"{watcher.cause.get(s.name) or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0,
                        help="how long lagwatch watches (default 12)")
    parser.add_argument("--onset", type=float, default=120.0,
                        help="seconds of health before the trouble starts (default 120)")
    parser.add_argument("--poll-interval", type=float, default=15.0)
    parser.add_argument("--hog", action="store_true", help="run a busy loop on one core")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run lagwatch as of this git revision, in the same run")
    args = parser.parse_args()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    with LocalKafka() as broker, tempfile.TemporaryDirectory() as tmp:
        bench = Bench(broker, Path(tmp), args.poll_interval, args.baseline)
        try:
            print("bench: starting the clients and the daemon ...", file=sys.stderr)
            bench.start()
            watching = threading.Thread(target=bench.watch, daemon=True)
            bench.onset = time.monotonic() + args.onset
            watching.start()
            end = bench.onset - args.onset + args.minutes * 60
            events: list[tuple[float, str, Callable[[], None]]] = [
                (bench.onset, "trouble starts", bench.trouble),
                (bench.onset + 60, "python-restart restarted",
                 lambda: bench.restart("python-restart", 0)),
                *((bench.onset + 120 + 60 * k, f"java-rolling-3 member {k} restarted",
                   lambda k=k: bench.restart("java-rolling-3", k)) for k in range(3))]
            for at, what, event in events:
                time.sleep(max(0.0, at - time.monotonic()))
                print(f"bench: {at - bench.onset:+.0f} s: {what}", file=sys.stderr)
                event()
            while (left := end - time.monotonic()) > 0:
                print(f"bench: {left / 60:.1f} minutes left", file=sys.stderr)
                time.sleep(min(60.0, left))
            bench.done.set()
            watching.join()
        finally:
            bench.stop()
            if hog is not None:
                hog.kill()
        report(bench.watchers, args.poll_interval, args.hog)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
