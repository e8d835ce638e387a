"""Cluster health on a 3-broker KRaft cluster: a broker stops, then comes back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka_local import KafkaCluster

from lagwatch.config import load_config
from lagwatch.daemon import Daemon
from tests.integration.helpers import commit, status_document, wait_for

pytestmark = pytest.mark.multibroker


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaCluster]:
    with KafkaCluster(3) as running:
        admin = KafkaAdminClient(bootstrap_servers=running.bootstrap.split(","))
        admin.create_topics([NewTopic("replicated", 3, 3)])
        admin.wait_for_topics(["replicated"])
        admin.close()
        yield running


@pytest.fixture
def watching(cluster: KafkaCluster, tmp_path: Path) -> Iterator[Daemon]:
    config = tmp_path / "lagwatch.yaml"
    config.write_text(json.dumps({
        "clusters": [{"name": "trio", "bootstrap_servers": cluster.bootstrap.split(","),
                      "request_timeout": "5s"}],
        "poll_interval": "1s", "http": {"listen": "127.0.0.1:0"},
        "state_dir": str(tmp_path)}))
    daemon = Daemon(load_config(str(config)))
    daemon.start()
    yield daemon
    daemon.stop()


def findings(daemon: Daemon) -> dict[str, str]:
    cluster: dict[str, Any] = status_document(daemon)["clusters"]["trio"]
    return {f["kind"]: f["reason"] for f in cluster["findings"]}


def test_a_stopped_broker_is_missing_and_leaves_partitions_under_replicated(
        cluster: KafkaCluster, watching: Daemon) -> None:
    # Given a healthy cluster
    wait_for(lambda: status_document(watching)["clusters"]["trio"]["up"], "a first poll")
    assert findings(watching) == {}

    # When broker 2 stops
    cluster.stop_node(1)
    def degraded() -> dict[str, str] | None:
        found = findings(watching)
        return found if {"brokers_missing", "under_replicated"} <= found.keys() else None

    found = wait_for(degraded, "brokers_missing and under_replicated", timeout_s=60)

    # Then
    assert found["brokers_missing"] == "2 of 3 brokers are registered (missing: 2)"
    assert found["under_replicated"].startswith(
        tuple(f"{n} partitions are under-replicated: " for n in range(1, 60)))
    assert "replicated[" in found["under_replicated"]

    # When it comes back, Then both clear
    cluster.start_node(1)
    wait_for(lambda: not {"brokers_missing", "under_replicated"} & findings(watching).keys(),
             "the findings to clear", timeout_s=90)


def test_when_the_group_coordinator_stops_the_coordinator_moves_and_polls_recover(
        cluster: KafkaCluster, watching: Daemon) -> None:
    # Given a group with committed offsets, read through its coordinator
    commit(cluster.bootstrap.split(",")[0], "trio-billing", "replicated", {0: 0, 1: 0, 2: 0})
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
    offsets_topic, = admin.describe_topics(["__consumer_offsets"])
    admin.close()
    coordinator = offsets_topic["partitions"][0]["leader_id"]
    wait_for(lambda: "trio-billing" in status_document(watching)["clusters"]["trio"]["groups"],
             "the group in a poll")
    # When the coordinator's broker stops
    cluster.stop_node(coordinator - 1)
    try:
        # Then a later poll reads the group's offsets again, from the new coordinator
        stopped_at = time.time()

        def recovered() -> bool:
            doc = status_document(watching)["clusters"]["trio"]
            fresh = doc["up"] and doc["last_poll"] > time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(stopped_at + 1))
            group = doc["groups"].get("trio-billing", {})
            return bool(fresh and not [e for e in doc["errors"] if "trio-billing" in e]
                        and group.get("topics", {}).get("replicated"))
        wait_for(recovered, "polls to read the group from the new coordinator", timeout_s=90)
    finally:
        cluster.start_node(coordinator - 1)
