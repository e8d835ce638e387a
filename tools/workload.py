"""Real producers and consumers at controlled rates, each client on its own thread.

Used by the integration tests, the demo traffic and the benchmarks. Besides kafka-python's
clients, JavaConsumer runs Apache Kafka's own Java consumer (kafka-clients, from the jars
the local broker runs on) on the classic or the KIP-848 consumer protocol.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TextIO

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata
from kafka_local import resolve_jars

Rate = Callable[[float], float]
"""Messages per second at a time (seconds since the client started)."""


class Producer(threading.Thread):
    """Writes ``rate`` messages per second to each topic (a number, or a function of the
    seconds since it started, for bursts).

    ``key`` gives the key of the n-th message (None: no key, spread by the partitioner).
    """

    def __init__(self, bootstrap: str, topics: list[str], rate: float | Rate,
                 key: Callable[[int], bytes | None] | None = None) -> None:
        super().__init__(daemon=True, name="test-producer")
        self.bootstrap, self.topics = bootstrap, topics
        self.rate: Rate = rate if callable(rate) else (lambda _t, r=rate: r)
        self.key = key or (lambda _n: None)
        self._stop_event = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        sent, owed = 0, 0.0
        started = last = time.monotonic()
        while not self._stop_event.is_set():
            now = time.monotonic()
            owed += self.rate(now - started) * (now - last)
            last = now
            for n in range(sent, sent + int(owed)):
                for topic in self.topics:
                    producer.send(topic, b"x", key=self.key(n))
            sent, owed = sent + int(owed), owed - int(owed)
            self._stop_event.wait(0.05)
        producer.close()

    def stop(self) -> None:
        """Stop producing and close the client."""
        self._stop_event.set()
        self.join(timeout=15)


def subscribed(bootstrap: str, topic: str, group: str, **config: object) -> KafkaConsumer:
    """A group consumer subscribed to ``topic`` once its metadata is known.

    Subscribing first lets the group's leader compute the assignment before the topic's
    metadata arrives; it then assigns nothing and, until a later metadata refresh, every
    member sits idle (kafka-python issue 2377). Loading the topic first closes that race.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **config)
    deadline = time.monotonic() + 30
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            consumer.close()
            raise TimeoutError(f"no metadata for topic {topic} after 30 s")
        time.sleep(0.2)
    consumer.subscribe([topic])
    return consumer


WEDGED_S = 15.0  # how long a consumer may fail to commit for a rebalance before a restart


class Consumer(threading.Thread):
    """A group member that reads at most ``rate`` msg/s (None: as fast as it can).

    ``committing`` can be switched off to play a consumer stuck on a poison pill: it stays
    in the group (polls keep its membership) but its committed offset freezes. With
    ``recommitting`` on as well, it commits that same offset again every second, as a
    consumer that catches the failure and retries does. ``commit_every_s`` commits at most
    that often (a batch committer); by default it commits after every poll that read.
    """

    def __init__(self, bootstrap: str, topic: str, group: str,
                 rate: float | None = None, commit_every_s: float = 0.0) -> None:
        super().__init__(daemon=True, name=f"test-consumer-{group}")
        self.bootstrap, self.topic, self.group, self.rate = bootstrap, topic, group, rate
        self.commit_every_s = commit_every_s
        self._commit_at = 0.0
        self.committing = True
        self.recommitting = False
        self._owed = False  # a commit failed: commit at the next step, read or not
        self._recommit_at = 0.0
        self.paused: set[int] = set()  # partitions this member holds but stops reading
        self.joined = threading.Event()
        self.generation = -1  # the group generation of this member's latest assignment
        self.last_error: KafkaError | None = None  # what the latest failed step raised
        self.restarts = 0  # times the client was found wedged and made anew
        self.longest_gap_s = 0.0  # the longest time between two commits after the first
        self._committed_at: float | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        consumer = self._subscribe()
        wedged_since: float | None = None
        try:
            while not self._stop_event.is_set():
                try:
                    if self._step(consumer):
                        wedged_since = None
                except (CommitFailedError, RebalanceInProgressError) as exc:
                    # kafka-python 3.0 can stay "rebalancing" for good after the coordinator
                    # dropped it: every commit fails and poll never rejoins. Restart the
                    # client, as a supervisor would restart a wedged consumer.
                    self.last_error = exc
                    self._owed = True  # what it read is committed at the next step
                    wedged_since = wedged_since or time.monotonic()
                    if time.monotonic() - wedged_since > WEDGED_S:
                        consumer.close()
                        consumer, wedged_since = self._subscribe(), None
                        self.restarts += 1
                    self._stop_event.wait(0.5)
                except KafkaError as exc:  # the broker is restarting or going away: again
                    self.last_error = exc
                    self._stop_event.wait(0.5)
        finally:
            consumer.close()

    def _subscribe(self) -> KafkaConsumer:
        return subscribed(
            self.bootstrap, self.topic, self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=max(1, int((self.rate or 500) / 5)), session_timeout_ms=10000)

    def _step(self, consumer: KafkaConsumer) -> bool:
        """Poll once, and commit as this consumer does; whether the step shows it is a
        member: any step that did not fail, but for a consumer stuck on its poison pill,
        whose polls go on whatever happened to its membership, only a re-commit that went
        through."""
        started = time.monotonic()
        held = [tp for tp in consumer.assignment() if tp.partition in self.paused]
        consumer.pause(*held)
        records = consumer.poll(timeout_ms=200)
        if consumer.assignment():
            self.joined.set()
            self.generation = consumer.group_metadata().generation_id
        if not self.committing:
            # a poison pill: go back to it every time, never commit past it
            stuck_at = {tp: consumer.committed(tp) or 0 for tp in consumer.assignment()}
            for tp, offset in stuck_at.items():
                consumer.seek(tp, offset)
            if self.recommitting and time.monotonic() >= self._recommit_at:
                self._recommit_at = time.monotonic() + 1.0
                consumer.commit({tp: OffsetAndMetadata(offset, "", -1)
                                 for tp, offset in stuck_at.items()})
                return True
            return False
        if (records or self._owed) and time.monotonic() >= self._commit_at:
            consumer.commit()
            self._owed = False
            now = time.monotonic()
            if self._committed_at is not None:
                self.longest_gap_s = max(self.longest_gap_s, now - self._committed_at)
            self._committed_at, self._commit_at = now, now + self.commit_every_s
        if self.rate:
            count = sum(len(batch) for batch in records.values())
            self._stop_event.wait(max(0.0, count / self.rate - (time.monotonic() - started)))
        return True

    def stop(self) -> None:
        """Leave the group and close the client."""
        self._stop_event.set()
        self.join(timeout=15)


JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "Workload.java"
# a small, quick JVM: tests run many of them beside the broker on two cores
_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xms16m", "-Xmx96m",
        f"-Dlog4j2.configurationFile={JAVA_SOURCE.with_name('log4j2.properties')}")


def java_classpath(workdir: Path) -> str:
    """Compile tools/java/Workload.java into ``workdir`` once; return the classpath that
    runs it (the Kafka jars the local broker uses, and the compiled class)."""
    jars = resolve_jars(progress=False)
    classes = workdir / "java-workload"
    if not (classes / "Workload.class").exists():
        javac = shutil.which("javac")
        if javac is None:
            raise RuntimeError("'javac' was not found on PATH: the Java test clients need a "
                               "JDK 17 or newer")
        result = subprocess.run([javac, "-nowarn", "-cp", f"{jars}/*", "-d", str(classes),
                                 str(JAVA_SOURCE)], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"javac failed: {result.stderr.strip()[-500:]}")
    return f"{jars}/*:{classes}"


def java_describe(classpath: str, bootstrap: str, group: str) -> dict[str, Any]:
    """The group as Kafka's Java Admin.describeConsumerGroups reports it."""
    result = subprocess.run(["java", *_JVM, "-cp", classpath, "Workload", "describe",
                             bootstrap, group], capture_output=True, text=True, check=False,
                            timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"describe {group} failed: {result.stderr.strip()[-500:]}")
    described: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return described


class JavaWorkload:
    """tools/java/Workload.java in its own JVM: started, told commands on stdin, stopped."""

    def __init__(self, classpath: str, group: str, *mode: str) -> None:
        self.group = group
        self._command = ["java", *_JVM, "-cp", classpath, "Workload", *mode]
        self._process: subprocess.Popen[str] | None = None
        self.joined = threading.Event()
        self.closed = threading.Event()
        self.epoch = -1  # generation (classic) or member epoch (consumer) at the last assignment
        self.assigned: list[tuple[str, int]] = []

    def start(self) -> Self:
        """Start the JVM; ``joined`` is set once it has been assigned partitions."""
        self._process = subprocess.Popen(self._command, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
        assert self._process.stdout is not None
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True,
                         name=f"java-{self.group}").start()
        return self

    def _read(self, out: TextIO) -> None:
        for line in out:
            event = json.loads(line)
            if event["event"] in ("joined", "open"):  # a share member's first poll, or
                self.joined.set()  # the transaction a producer leaves open
            elif event["event"] == "assigned":
                self.epoch = event["epoch"]
                self.assigned = [(t, p) for t, p in event["partitions"]]
                if self.assigned:
                    self.joined.set()
        self.closed.set()

    def send(self, command: str) -> None:
        """Tell the consumer: "stuck" or "stuck S" (a poison pill it re-commits every 2 or S
        seconds), "rate N", "stop"."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()

    def stop(self) -> None:
        """Leave the group and end the JVM (killed if it does not leave within 20 s)."""
        if self._process is None or self._process.poll() is not None:
            return
        try:
            self.send("stop")
            self._process.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait(10)


class JavaConsumer(JavaWorkload):
    """A kafka-clients 4.x consumer in its own JVM, reading at most ``rate`` msg/s (0: as
    fast as it can) on ``protocol`` ("classic" or "consumer") at ``isolation``, with any
    other consumer ``settings`` an application would set (``enable.auto.commit=true``: it
    then commits on the client's timer, never itself); with "share", a member of a share
    group (KIP-932), which it first enables on the broker."""

    def __init__(self, classpath: str, bootstrap: str, topic: str, group: str,
                 protocol: str, *, rate: float = 0.0, client_id: str | None = None,
                 isolation: str = "read_uncommitted",
                 settings: dict[str, str] | None = None) -> None:
        self.topic, self.protocol = topic, protocol
        self.client_id = client_id or f"java-{protocol}"
        mode = (["share", bootstrap, topic, group] if protocol == "share" else
                ["consume", bootstrap, topic, group, protocol, str(rate), self.client_id,
                 isolation, *(f"{k}={v}" for k, v in (settings or {}).items())])
        super().__init__(classpath, group, *mode)


class JavaTransaction(JavaWorkload):
    """A kafka-clients transactional producer that commits ``commits`` transactions of 10
    records to partition 0 of ``topic``, then leaves one of ``records`` open; ``joined`` is
    set once it has. ``stop`` ends the JVM without ending the transaction: the broker
    aborts it after ``timeout_ms``."""

    def __init__(self, classpath: str, bootstrap: str, topic: str, transactional_id: str, *,
                 commits: int, records: int, timeout_ms: int) -> None:
        super().__init__(classpath, transactional_id, "transact", bootstrap, topic,
                         transactional_id, str(commits), str(records), str(timeout_ms))
