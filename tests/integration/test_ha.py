"""Replicas in the coordination group on the real broker: the state topic, the shards
each replica owns, and how they move when a replica leaves or is dropped."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from lagwatch.daemon import Daemon
from lagwatch.ha.replica import Replica as Seat
from lagwatch.ha.shards import shard_of
from lagwatch.ha.signing import Seal, parse_keys
from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.membership import Membership, StateTopicError, ensure_state_topic
from tests.exposition import parse
from tests.integration.helpers import (
    HA_KEY,
    commit,
    http_get,
    status_document,
    wait_for,
    wait_polls,
)

SESSION_S = 6.0


class Replica:
    """A Membership and the shards it keeps, as the daemon holds them."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str) -> None:
        replica = Seat(4, SESSION_S, name, incarnation="test",
                       seal=Seal(parse_keys(HA_KEY), topic))
        self.shards = replica.shards
        self.seat = Membership(ClusterConfig(name="default", bootstrap_servers=[bootstrap]),
                               replica, group=group, topic=topic, shards=4, replica=name,
                               session_timeout_s=SESSION_S)

    def owned(self) -> frozenset[int]:
        return self.shards.owned(time.monotonic())


@pytest.fixture
def replicas(kafka_bootstrap: str, unique: Callable[[str], str]
             ) -> Iterator[Callable[[str], Replica]]:
    group, topic = unique("ha-group"), unique("ha-state")
    started: list[Replica] = []

    def start(name: str) -> Replica:
        replica = Replica(kafka_bootstrap, group, topic, name)
        replica.seat.prepare()
        replica.seat.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.seat.stop()


def test_two_replicas_share_the_shards_and_one_takes_all_when_the_other_leaves(
        replicas: Callable[[str], Replica]) -> None:
    a = replicas("replica-a")
    wait_for(lambda: a.owned() == {0, 1, 2, 3}, lambda: f"a to own every shard ({a.owned()})")
    b = replicas("replica-b")
    # Then the four shards are split between them, none owned twice
    wait_for(lambda: len(a.owned()) == len(b.owned()) == 2 and not a.owned() & b.owned(),
             lambda: f"two shards each (a {sorted(a.owned())}, b {sorted(b.owned())})",
             timeout_s=60)
    kept = a.owned()
    generation = a.shards.lease.generation
    # When b leaves, a owns all four again, having kept its own two all along
    b.seat.stop()
    wait_for(lambda: a.owned() == {0, 1, 2, 3}, lambda: f"a to own every shard ({a.owned()})",
             timeout_s=SESSION_S + 30)
    assert kept <= a.owned()
    assert a.shards.lease.generation > generation


def test_a_state_topic_with_another_partition_count_is_refused(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str]) -> None:
    topic = unique("ha-state")
    ensure_state_topic(admin, topic, 4)
    ensure_state_topic(admin, topic, 4)  # there already, and right: nothing to do
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                       config_filter="all")
    assert described["topic"][topic]["cleanup.policy"]["value"] == "compact"
    with pytest.raises(StateTopicError) as raised:
        ensure_state_topic(admin, topic, 6)
    assert str(raised.value) == (f"ha.topic {topic!r} has 4 partitions but ha.shards is 6: "
                                 "they must match (delete the topic to change the shard count)")


def test_two_daemons_watch_the_groups_of_their_own_shards_and_one_all_once_alone(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], tmp_path: Path) -> None:
    # Given eight groups, caught up, and two replicas sharing four shards
    topic = make_topic([10])
    groups = [unique("ha-watched") for _ in range(8)]
    for g in groups:
        commit(kafka_bootstrap, g, topic, {0: 10})
    (tmp_path / "ha-key").write_text(HA_KEY)
    ha = {"cluster": "default", "group": unique("ha-group"), "topic": unique("ha-state"),
          "shards": 4, "session_timeout": "6s", "key_file": str(tmp_path / "ha-key")}
    a = daemon(*groups, ha={**ha, "replica": "a"}, state_dir=str(tmp_path / "a"))
    b = daemon(*groups, ha={**ha, "replica": "b"}, state_dir=str(tmp_path / "b"))

    def watched(replica: Daemon) -> set[str]:
        report = replica.state.report("default")  # this replica's own poll
        return set() if report is None else {g.group_id for g in report.groups}

    def split() -> bool:
        return watched(a) | watched(b) == set(groups) and not watched(a) & watched(b) and (
            a.shards is not None and b.shards is not None
            and len(a.shards.owned(time.monotonic())) == 2)

    wait_for(split, lambda: f"the groups split (a {sorted(watched(a))}, b {sorted(watched(b))})",
             timeout_s=60)
    # Then each watches exactly the groups that hash to its shards
    assert a.shards is not None
    mine = a.shards.owned(time.monotonic())
    assert watched(a) == {g for g in groups if shard_of("default", g, 4) in mine}
    # and says which shards it owns on /metrics
    assert a.http is not None
    samples = parse(http_get(a.http.url + "/metrics")[1].decode())
    assert {labels: v for (name, labels), v in samples.items()
            if name == "lagwatch_shard_owned"} == {
        frozenset({("shard", str(k))}): 1.0 if k in mine else 0.0 for k in range(4)}
    assert a.shards.lease.generation >= 1
    assert samples[("lagwatch_ha_generation", frozenset())] == a.shards.lease.generation
    # and every record either replica signed verified on the other
    assert [samples[("lagwatch_ha_records_skipped_total", frozenset({("reason", r)}))]
            for r in ("unsigned", "unreadable")] == [0.0, 0.0]

    def members() -> float | None:
        assert a.http is not None
        return parse(http_get(a.http.url + "/metrics")[1].decode()).get(
            ("lagwatch_ha_members", frozenset()))

    wait_for(lambda: members() == 2.0, "a to count two members")
    # When b stops, a watches every group, and counts itself alone
    b.stop()
    wait_for(lambda: watched(a) == set(groups), lambda: f"a to watch all ({watched(a)})",
             timeout_s=SESSION_S + 30)
    wait_for(lambda: members() == 1.0, "a to count one member")
    # and its status document, the fleet's, shows them all (b's shards now a's)
    wait_for(lambda: set(status_document(a)["clusters"]["default"]["groups"]) == set(groups),
             "the fleet's status document with every group")


def test_run_stops_with_one_line_when_the_state_topic_cannot_be_used(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        tmp_path: Path) -> None:
    topic = unique("ha-state")
    ensure_state_topic(admin, topic, 4)
    (tmp_path / "ha-key").write_text(HA_KEY)

    def run(bootstrap: str) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "lagwatch.yaml"
        config.write_text(yaml.safe_dump({
            "clusters": [{"name": "default", "bootstrap_servers": [bootstrap],
                          "request_timeout": "3s"}],
            "http": {"listen": "127.0.0.1:0"}, "state_dir": str(tmp_path / "state"),
            "ha": {"cluster": "default", "topic": topic, "shards": 6,
                   "key_file": str(tmp_path / "ha-key")}}))
        return subprocess.run([sys.executable, "-m", "lagwatch", "run", "-c", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)

    wrong = run(kafka_bootstrap)
    assert (wrong.returncode, wrong.stderr) == (3, (
        f"lagwatch: ha.topic {topic!r} has 4 partitions but ha.shards is 6: they must match "
        "(delete the topic to change the shard count)\n"))
    down = run("127.0.0.1:1")
    assert down.returncode == 3
    assert down.stderr.startswith(f"lagwatch: ha.topic {topic!r} on cluster 'default': "), (
        down.stderr)
    assert len(down.stderr.splitlines()) == 1


def test_shards_an_outsider_takes_in_the_coordination_group_are_watched_anyway(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
        ) -> None:
    # Given one replica watching eight groups over four shards
    topic = make_topic([10])
    groups = [unique("ha-watched") for _ in range(8)]
    for g in groups:
        commit(kafka_bootstrap, g, topic, {0: 10})
    (tmp_path / "ha-key").write_text(HA_KEY)
    group, state_topic = unique("ha-group"), unique("ha-state")
    a = daemon(*groups, ha={"cluster": "default", "group": group, "topic": state_topic,
                            "shards": 4, "session_timeout": "6s", "replica": "a",
                            "key_file": str(tmp_path / "ha-key")},
               state_dir=str(tmp_path / "a"))
    assert a.shards is not None
    shards = a.shards
    wait_for(lambda: len(shards.owned(time.monotonic())) == 4, "a to own every shard")

    def outsider_shards() -> float | None:
        assert a.http is not None
        return parse(http_get(a.http.url + "/metrics")[1].decode()).get(
            ("lagwatch_ha_outsider_shards", frozenset()))

    assert outsider_shards() == 0.0
    # When a plain consumer, with no key, joins the coordination group and is given shards
    caplog.set_level(logging.WARNING, logger="lagwatch.kafka.membership")
    outsider = KafkaConsumer(bootstrap_servers=[kafka_bootstrap], group_id=group,
                             client_id="mallory", enable_auto_commit=False,
                             partition_assignment_strategy=[CooperativeStickyAssignor])
    outsider.subscribe([state_topic])
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            outsider.poll(timeout_ms=200)

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        wait_for(lambda: len(shards.lease.shards) == 2, "the outsider to take two shards",
                 timeout_s=60)
        taken = frozenset(range(4)) - shards.lease.shards
        # Then after a session timeout the replica watches them anyway, and says so
        wait_for(lambda: shards.lease.adopted == taken, "a to watch the outsider's shards",
                 timeout_s=SESSION_S + 30)
        assert shards.owned(time.monotonic()) == frozenset(range(4))
        wait_polls(a.http.url, 2)  # type: ignore[union-attr]
        report = a.state.report("default")
        assert report is not None and {g.group_id for g in report.groups} == set(groups)
        named = [m for m in caplog.messages if "which has signed no claim" in m]
        assert [m.split(" of ")[0] for m in named] == [f"ha: shard {s}" for s in sorted(taken)]
        assert all("(client id 'mallory', host /127.0.0.1) of group " + group in m
                   and m.endswith("this replica watches it") for m in named), named
        assert outsider_shards() == 2.0
    finally:
        stop.set()
        thread.join()
        outsider.close()
    # When the outsider leaves, the replica holds every shard by its lease again
    wait_for(lambda: shards.lease.shards == frozenset(range(4)) and not shards.lease.adopted,
             "a to hold every shard again", timeout_s=SESSION_S + 30)
    wait_for(lambda: outsider_shards() == 0.0, "the outsider's shards no longer counted")
    assert [m for m in caplog.messages if m.endswith("is held by a replica again")] == [
        f"ha: shard {s} of {state_topic} is held by a replica again" for s in sorted(taken)]
