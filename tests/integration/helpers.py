"""Helpers that drive the real broker and read lagwatch's HTTP endpoint."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from lagwatch.config import load_config
from lagwatch.daemon import Daemon
from tests.exposition import Samples, parse

HA_KEY = "replicas-share-this-key-0123456789abcdef\n"  # ha.key_file's text in the tests


def produce(producer: KafkaProducer, topic: str, counts: dict[int, int]) -> None:
    """Write counts[p] messages to partition p, and wait until all are acknowledged."""
    futures = [producer.send(topic, b"m%d" % i, partition=p)
               for p, n in counts.items() for i in range(n)]
    producer.flush()
    for future in futures:
        future.get(timeout=10)


def settled(admin: KafkaAdminClient, group: str) -> tuple[int, int] | None:
    """Members, and members with partitions, of a group in the Stable state; else None."""
    described = admin.describe_groups([group])[group]
    if described["group_state"] != "Stable":
        return None
    owners = [m for m in described["members"]
              if any(a["partitions"] for a in m["member_assignment"]["assigned_partitions"])]
    return len(described["members"]), len(owners)


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for a group that has no active members, as a consumer would."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                         for p, o in offsets.items()})
    finally:
        consumer.close()


def http_get(url: str) -> tuple[int, bytes]:
    """GET a URL; return the status code and body, for errors too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_json(url: str, body: dict[str, Any], token: str | None
              ) -> tuple[int, dict[str, Any]]:
    """POST a JSON body, with a bearer token if given; return the status and the answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(),  # noqa: S310
                                     method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stopped_group(make_topic: Callable[..., str], kafka_bootstrap: str,
                  unique: Callable[[str], str], prefix: str) -> tuple[str, str]:
    """A group with 10 unread messages and no members: stopped from the first poll."""
    topic, group = make_topic([30]), unique(prefix)
    commit(kafka_bootstrap, group, topic, {0: 20})
    return topic, group


def status_document(daemon: Daemon) -> dict[str, Any]:
    assert daemon.http is not None
    code, body = http_get(daemon.http.url + "/api/v1/status")
    assert code == 200
    return json.loads(body)  # type: ignore[no-any-return]


def scrape(daemon: Daemon) -> Samples:
    """Scrape /metrics into {(sample name, labels): value}."""
    assert daemon.http is not None
    code, body = http_get(daemon.http.url + "/metrics")
    assert code == 200
    return parse(body.decode())


def polls(base_url: str) -> float:
    """How many polls of every cluster the daemon at ``base_url`` has read (its own
    count); 0 while it does not answer yet."""
    try:
        code, body = http_get(base_url + "/metrics")
    except urllib.error.URLError:
        return 0.0
    samples = parse(body.decode()) if code == 200 else {}
    return sum(v for (name, _), v in samples.items()
               if name == "lagwatch_poll_duration_seconds_count")


def wait_polls(base_url: str, count: int, timeout_s: float = 60.0) -> None:
    """Wait until the daemon has polled ``count`` more times: however slow the machine,
    whatever those polls could still make happen has had its chance."""
    start = polls(base_url)
    wait_for(lambda: polls(base_url) >= start + count, f"{count} more polls", timeout_s)


def wait_for(condition: Callable[[], Any], what: str | Callable[[], str],
             timeout_s: float = 30.0) -> Any:
    """Poll condition until it returns something truthy; fail naming what never happened
    (``what`` may be a callable, asked at the end, that says what was seen instead)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.2)
    said = what if isinstance(what, str) else what()
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {said} (last: {last!r})")


class ScenarioDaemon:
    """An in-process daemon tuned for scenario tests (1 s polls, a 2 m window, 20 s minimum
    duration, 15 s stall window) watching the groups ``include`` matches, with every
    group's status, and the kinds of its findings with a severity, recorded each second
    once started."""

    def __init__(self, bootstrap: str, tmp: Path, include: str) -> None:
        config = tmp / "lagwatch.yaml"
        config.write_text(f"""
clusters:
  - name: default
    bootstrap_servers: ["{bootstrap}"]
    groups: {{include: ["{include}"]}}
poll_interval: 1s
http: {{listen: "127.0.0.1:0"}}
state_dir: {tmp / "state"}
detection: {{window: 2m, min_duration: 20s, stall_after: 15s}}
""")
        self.daemon = Daemon(load_config(str(config)))
        self.statuses: dict[str, list[str]] = defaultdict(list)
        self.seen_at: dict[str, list[float]] = defaultdict(list)  # when (monotonic)
        # the findings with a severity seen: kind -> its first reason
        self.alarms: dict[str, dict[str, str]] = defaultdict(dict)
        # each change of status: (when, the new status, the group's reasons then)
        self.changes: dict[str, list[tuple[float, str, list[str]]]] = defaultdict(list)
        self._watching = threading.Event()

    def start(self, *groups: str) -> None:
        """Start the daemon, wait for a poll that lists ``groups``, then record statuses."""
        self.daemon.start()
        wait_for(lambda: set(groups) <= self.groups().keys(), "a poll that lists every group")
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self._watching.wait(1.0):
            now = time.monotonic()
            for group, doc in self.groups().items():
                if not self.statuses[group] or self.statuses[group][-1] != doc["status"]:
                    self.changes[group].append((now, doc["status"], doc["reasons"]))
                self.statuses[group].append(doc["status"])
                self.seen_at[group].append(now)
                for finding in doc["findings"]:
                    if finding["severity"] != "none":
                        self.alarms[group].setdefault(finding["kind"], finding["reason"])

    def first(self, group: str, status: str, since: float) -> float | None:
        """Seconds from ``since`` (monotonic) to the first recorded ``status``, if any."""
        return next((t - since for t, s in zip(self.seen_at[group], self.statuses[group],
                                                strict=False) if s == status and t >= since),
                    None)

    def groups(self) -> dict[str, dict[str, Any]]:
        """The groups of the status document."""
        return status_document(self.daemon)["clusters"]["default"]["groups"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Stop recording, then the daemon."""
        self._watching.set()
        self.daemon.stop()


class Worker(Protocol):
    """A test consumer or producer thread (kafka-python or a JVM)."""

    def start(self) -> Any: ...
    def stop(self) -> None: ...


class Member(Worker, Protocol):
    """A test consumer: it joins ``group`` and says so."""

    group: str
    joined: threading.Event


class ScenarioStage:
    """Traffic, the consumers of the scenarios, and a ScenarioDaemon watching them."""

    producer: Worker
    consumers: Mapping[Any, Member]
    watched: ScenarioDaemon

    def start(self, join_s: float = 60.0) -> None:
        """Start the traffic and the consumers, wait for every join, then watch."""
        self.producer.start()
        for consumer in self.consumers.values():
            consumer.start()
        for consumer in self.consumers.values():
            assert consumer.joined.wait(join_s), f"{consumer.group} never joined"
        self.watched.start(*(c.group for c in self.consumers.values()))

    def stop(self) -> None:
        self.watched.stop()
        for consumer in self.consumers.values():
            consumer.stop()
        self.producer.stop()

