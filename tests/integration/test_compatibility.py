"""Every Apache Kafka release of the matrix, read correctly: one broker per release, each
running the same compact scenario at once, real clients making the traffic.

On each release (the newest is the session's broker): exact lag per partition from
``check --json`` and from /metrics (lags 20, 0 and 33, and a partition never committed
left out), ``stopped``, ``stalled`` (a kafka-python consumer re-committing its poison pill,
judged with the commit records read), a KIP-848 group of Apache Kafka's Java consumer
described with its member (4.0+), the last stable offset behind an open transaction, the
exact time lag of a record, the rebalance count from ``__consumer_offsets``, the release
its API versions tell, and no group or cluster ever blind. A failure names the release in
the test id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka_local import KAFKA_VERSION, RELEASES, LocalKafka
from workload import Consumer, JavaConsumer, Producer

from tests.exposition import Samples
from tests.integration.helpers import (
    ScenarioDaemon,
    commit,
    produce,
    scrape,
    status_document,
    wait_for,
)

HOUR_MS = 3_600_000
WAIT_S = 180.0  # every wait is for a condition; this only bounds a broken release


def minor(release: str) -> str:
    return ".".join(release.split(".")[:2])


class Scenario:
    """One release's broker, its traffic and a daemon watching it; what was seen."""

    def __init__(self, release: str, bootstrap: str, java: str, tmp: Path) -> None:
        self.release, self.bootstrap, self.java, self.tmp = release, bootstrap, java, tmp
        self.seen: dict[str, Any] = {}
        self.took_s = 0.0
        run = uuid.uuid4().hex[:6]
        self.include = f"^compat-.*-{run}$"
        self.topic = {n: f"compat-{n}-{run}" for n in ("lag", "stuck", "java", "txn", "age")}
        self.group = {n: f"compat-{n}-{run}" for n in ("lag", "stuck", "java", "txn", "age")}
        self.kip848 = tuple(map(int, release.split(".")[:2])) >= (4, 0)

    def run(self) -> None:
        started = time.monotonic()
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        workers: list[Any] = []
        watched = ScenarioDaemon(self.bootstrap, self.tmp, self.include)
        txn = KafkaProducer(bootstrap_servers=self.bootstrap,
                            transactional_id=f"compat-txn-{self.release}")
        try:
            admin.create_topics([NewTopic(self.topic["lag"], 4, 1)] + [
                NewTopic(self.topic[t], 1, 1) for t in ("stuck", "java", "txn", "age")])
            admin.wait_for_topics(list(self.topic.values()))
            # lags 20, 0 and 33 on partitions 0-2; partition 3 never committed
            produce(producer, self.topic["lag"], {0: 50, 1: 40, 2: 60, 3: 10})
            commit(self.bootstrap, self.group["lag"], self.topic["lag"], {0: 30, 1: 40, 2: 27})
            # three records an hour old, unread: their age is the exact time lag
            written_ms = int(time.time() * 1000) - HOUR_MS
            for k in range(3):
                producer.send(self.topic["age"], b"old", partition=0, timestamp_ms=written_ms + k)
            producer.flush()
            commit(self.bootstrap, self.group["age"], self.topic["age"], {0: 0})
            # 4 committed records, then a transaction of 2 left open
            produce(producer, self.topic["txn"], {0: 4})
            txn.init_transactions()
            txn.begin_transaction()
            for _ in range(2):
                txn.send(self.topic["txn"], b"open", partition=0)
            txn.flush()
            commit(self.bootstrap, self.group["txn"], self.topic["txn"], {0: 4})
            self.seen["check"] = self._check(self.tmp / "lagwatch.yaml")
            watched.daemon.start()  # before the consumers join: their rebalances are read
            wait_for(lambda: watched.groups().get(self.group["lag"]), "a first poll",
                     WAIT_S)
            stuck = Consumer(self.bootstrap, self.topic["stuck"], self.group["stuck"])
            stuck.committing, stuck.recommitting = False, True
            workers += [Producer(self.bootstrap, [self.topic["stuck"], self.topic["java"]], 10),
                        stuck]
            if self.kip848:
                workers.append(JavaConsumer(self.java, self.bootstrap, self.topic["java"],
                                            self.group["java"], "consumer"))
            for worker in workers:
                worker.start()
            self._watch(watched, stuck)
        finally:
            for worker in workers:
                worker.stop()
            watched.daemon.stop()
            txn.close(timeout=1)
            producer.close()
            admin.close()
            self.took_s = time.monotonic() - started

    def _check(self, config: Path) -> dict[str, Any]:
        """``lagwatch check --json`` with the daemon's config, and the release it told."""
        result = subprocess.run(
            [sys.executable, "-m", "lagwatch", "check", "--json", "--log-level", "info",
             "-c", str(config)],
            capture_output=True, text=True, timeout=120, check=False)
        groups = json.loads(result.stdout)["clusters"]["default"]["groups"]
        told = [line.split("cluster default: ", 1)[1] for line in result.stderr.splitlines()
                if "as its API versions tell" in line]
        return {"exit": result.returncode, "lag": groups[self.group["lag"]], "told": told}

    def _watch(self, watched: ScenarioDaemon, stuck: Consumer) -> None:
        def doc(name: str) -> dict[str, Any]:
            return watched.groups().get(self.group[name], {})

        wait_for(lambda: doc("stuck").get("status") == "stalled",
                 lambda: f"the stuck group to be stalled (its consumer: alive "
                         f"{stuck.is_alive()}, last error {stuck.last_error!r}, restarts "
                         f"{stuck.restarts}): {doc('stuck')}", WAIT_S)
        wait_for(lambda: (doc("stuck").get("rebalances") or {}).get("total")
                 == stuck.generation,
                 lambda: f"rebalances counted to generation {stuck.generation}: "
                         f"{doc('stuck').get('rebalances')}", WAIT_S)
        if self.kip848:
            wait_for(lambda: doc("java").get("members") == 1
                     and doc("java")["member_list"][0]["assigned"],
                     lambda: f"the Java consumer described: {doc('java')}", WAIT_S)
        txn_id = f"transactional id 'compat-txn-{self.release}'"
        wait_for(lambda: any(txn_id in f["reason"] for f in findings(watched)),
                 lambda: f"the hanging transaction named: {findings(watched)}", WAIT_S)
        self.seen["groups"] = watched.groups()
        self.seen["metrics"] = scrape(watched.daemon)
        self.seen["findings"] = findings(watched)
        self.seen["release"] = [p.collector.kafka_release for p in watched.daemon.pollers]


def findings(watched: ScenarioDaemon) -> list[dict[str, str]]:
    """The cluster's findings."""
    return status_document(watched.daemon)["clusters"]["default"][  # type: ignore[no-any-return]
        "findings"]


@pytest.fixture(scope="module")
def matrix(kafka_bootstrap: str, java: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, Scenario | BaseException]]:
    """Every release's scenario, run at once: one broker each (the newest is the session's
    own unless $LAGWATCH_TEST_BOOTSTRAP names another); each outcome, or what failed."""
    own = os.environ.get("LAGWATCH_TEST_BOOTSTRAP") is None
    brokers = {r: LocalKafka(version=r) for r in RELEASES if not (own and r == KAFKA_VERSION)}

    def play(release: str) -> Scenario | BaseException:
        try:
            # five brokers start at once on two cores: give them time
            bootstrap = (brokers[release].start(timeout_s=WAIT_S).bootstrap
                         if release in brokers else kafka_bootstrap)
            scenario = Scenario(release, bootstrap, java,
                                tmp_path_factory.mktemp(f"kafka-{release}"))
            scenario.run()
        except BaseException as exc:  # handed to that release's tests
            return exc
        print(f"Kafka {release}: scenario {scenario.took_s:.0f} s")
        return scenario

    try:
        with ThreadPoolExecutor(len(RELEASES)) as pool:
            yield dict(zip(RELEASES, pool.map(play, RELEASES), strict=True))
    finally:
        for broker in brokers.values():
            broker.stop()


@pytest.fixture(params=RELEASES)
def seen(request: pytest.FixtureRequest, matrix: dict[str, Scenario | BaseException]
         ) -> Scenario:
    """One release's scenario (the test id names the release)."""
    outcome = matrix[request.param]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def partition_lags(group: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {t: {p: v["lag_messages"] for p, v in doc["partitions"].items()}
            for t, doc in group["topics"].items()}


def metric_lags(samples: Samples, group: str) -> dict[str, float]:
    return {dict(labels)["partition"]: v for (name, labels), v in samples.items()
            if name == "lagwatch_partition_lag_messages" and dict(labels)["group"] == group}


def test_exact_lag_per_partition_from_check_and_metrics(seen: Scenario) -> None:
    lag, topic = seen.group["lag"], seen.topic["lag"]
    checked = seen.seen["check"]
    assert checked["exit"] == 2  # the stopped groups are critical
    assert partition_lags(checked["lag"]) == {topic: {"0": 20, "1": 0, "2": 33}}
    assert (checked["lag"]["status"], checked["lag"]["lag_messages"]) == ("stopped", 53)
    assert checked["told"] == [f"Apache Kafka {minor(seen.release)}, as its API versions tell"]
    assert seen.seen["release"] == [minor(seen.release)]
    assert metric_lags(seen.seen["metrics"], lag) == {"0": 20, "1": 0, "2": 33}
    doc = seen.seen["groups"][lag]
    assert (doc["status"], doc["reasons"]) == (
        "stopped", ["no active members while 53 messages are unread on 2 partitions"])


def test_a_poison_pill_recommitted_is_stalled_with_the_commit_records_read(
        seen: Scenario) -> None:
    doc = seen.seen["groups"][seen.group["stuck"]]
    assert doc["status"] == "stalled"
    assert doc["rebalances"]["exact"] is True
    assert "it still commits this offset" in " ".join(doc["reasons"]), doc["reasons"]


def test_a_kip848_group_is_described_with_its_member(seen: Scenario) -> None:
    doc = seen.seen["groups"].get(seen.group["java"])
    if not seen.kip848:  # Kafka 3.9: the consumer protocol is a preview, not enabled
        assert doc is None
        return
    assert doc is not None
    assert (doc["type"], doc["members"]) == ("consumer", 1)
    member = doc["member_list"][0]
    assert (member["client_id"], member["assigned"]) == (
        "java-consumer", [[seen.topic["java"], 0]])
    assert member["member_epoch"] == doc["epoch"] >= 1


def test_the_last_stable_offset_waits_behind_an_open_transaction(seen: Scenario) -> None:
    # a group that read the 4 committed records has read all a read_committed consumer can
    doc = seen.seen["groups"][seen.group["txn"]]
    partition = doc["topics"][seen.topic["txn"]]["partitions"]["0"]
    assert (partition["last_stable"], partition["log_end"], partition["committed"]) == (
        4, 6, 4)
    reason = doc["reasons"][0]
    assert (doc["status"], len(doc["reasons"])) == ("ok", 1)
    assert reason.startswith(f"{seen.topic['txn']}[0]: an open transaction holds back "
                             "read_committed consumers at offset 4 since "), reason
    assert reason.endswith("; the producer, not this consumer, is stuck"), reason
    where = frozenset({("cluster", "default"), ("topic", seen.topic["txn"]),
                       ("partition", "0")})
    assert seen.seen["metrics"][("lagwatch_partition_last_stable_offset", where)] == 4
    # DescribeProducers and ListTransactions name the transaction that holds it
    held = [f["reason"] for f in seen.seen["findings"] if f["kind"] == "hanging_transaction"
            and f["reason"].startswith(f"{seen.topic['txn']}[0]: ")]
    assert len(held) == 1
    assert (f"read_committed consumers ({seen.group['txn']}) wait behind it; transactional "
            f"id 'compat-txn-{seen.release}' (producer id ") in held[0], held


def test_the_time_lag_of_an_unread_record_is_its_exact_age(seen: Scenario) -> None:
    partition = seen.seen["groups"][seen.group["age"]]["topics"][seen.topic["age"]][
        "partitions"]["0"]
    assert partition["lag_seconds_exact"] is True
    assert HOUR_MS / 1000 <= partition["lag_seconds"] <= HOUR_MS / 1000 + seen.took_s
    # DescribeConfigs read the topic's retention (the broker's default, 7 days)
    assert 6 * 86400 < partition["retention_eta_seconds"] < 7 * 86400 - HOUR_MS / 1000


def test_the_broker_s_log_dir_is_described(seen: Scenario) -> None:
    dirs = {dict(labels)["broker"]: v for (name, labels), v in seen.seen["metrics"].items()
            if name == "lagwatch_broker_log_dir_bytes"}
    assert list(dirs) == ["1"]
    assert dirs["1"] > 0


def test_no_group_and_no_cluster_is_blind_and_every_record_decodes(seen: Scenario) -> None:
    assert "blind" not in [f["kind"] for f in seen.seen["findings"]]
    skipped = {dict(labels)["kind"]: v for (name, labels), v in seen.seen["metrics"].items()
               if name == "lagwatch_offsets_topic_records_skipped_total"}
    assert skipped["undecodable"] == 0
    blind = {g: r for g, doc in seen.seen["groups"].items() for r in doc["reasons"]
             if r.startswith("lagwatch cannot judge")}
    assert blind == {}
