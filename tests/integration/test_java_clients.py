"""Apache Kafka's own Java consumer (kafka-clients 4.1), on the classic protocol and on the
KIP-848 consumer protocol side by side, reading the same topics: both must get the same
verdicts, in the same time.

One daemon (1 s polls, 20 s minimum duration, 15 s stall window) watches a pair of groups,
one per protocol, on each scenario's topic, written at 40 msg/s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from workload import JavaConsumer, Producer, java_describe

from lagwatch.daemon import Daemon
from tests.integration.helpers import (
    ScenarioDaemon,
    ScenarioStage,
    scrape,
    status_document,
    wait_for,
)

RATE = 40.0
PROTOCOLS = ("classic", "consumer")
SCENARIOS = ("healthy", "slow", "stuck", "stopped")


class Stage(ScenarioStage):
    """Two Java consumers (one per protocol) per scenario, and the daemon watching them."""

    def __init__(self, java: str, bootstrap: str, admin: KafkaAdminClient, tmp: Path,
                 run: str) -> None:
        self.topic = {s: f"java-{s}-{run}" for s in SCENARIOS}
        admin.create_topics([NewTopic(t, 1, 1) for t in self.topic.values()])
        admin.wait_for_topics(list(self.topic.values()))
        self.producer = Producer(bootstrap, list(self.topic.values()), RATE)
        self.consumers = {
            (s, p): JavaConsumer(java, bootstrap, self.topic[s], f"java-{s}-{p}-{run}", p,
                                 rate=RATE / 2 if s == "slow" else 0.0)
            for s in SCENARIOS for p in PROTOCOLS}
        self.watched = ScenarioDaemon(bootstrap, tmp, f"^java-.*-{run}$")
        self.statuses = self.watched.statuses

    def groups(self) -> dict[str, dict[str, Any]]:
        return self.watched.groups()

    def reach(self, scenario: str, status: str, within_s: float) -> dict[str, float]:
        """Wait until both protocols' groups of a scenario have the status; return how long
        each took."""
        started, took = time.monotonic(), {}
        groups = {p: self.consumers[scenario, p].group for p in PROTOCOLS}

        def both() -> bool:
            docs = self.groups()
            for protocol, group in groups.items():
                if protocol not in took and docs.get(group, {}).get("status") == status:
                    took[protocol] = time.monotonic() - started
            return len(took) == len(PROTOCOLS)

        wait_for(both, f"{scenario} to become {status} on both protocols (so far: {took})",
                 timeout_s=within_s)
        print(f"{scenario} -> {status}: " + ", ".join(f"{p} {s:.1f} s" for p, s in took.items()))
        return took

    def doc(self, scenario: str, protocol: str) -> dict[str, Any]:
        return self.groups()[self.consumers[scenario, protocol].group]


@pytest.fixture(scope="module")
def stage(java: str, kafka_bootstrap: str, admin: KafkaAdminClient,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    running = Stage(java, kafka_bootstrap, admin, tmp_path_factory.mktemp("java"),
                    str(int(time.time())))
    running.start()
    yield running
    running.stop()


def test_both_protocols_are_typed_and_described(stage: Stage) -> None:
    classic, consumer = (stage.doc("healthy", p) for p in PROTOCOLS)
    assert (classic["type"], classic["epoch"], classic["members"]) == ("classic", None, 1)
    assert (consumer["type"], consumer["members"]) == ("consumer", 1)
    assert consumer["epoch"] >= 1
    assert consumer["assignor"] == "uniform"


def test_a_member_reading_half_the_produce_rate_is_lagging_on_both_protocols(
        stage: Stage) -> None:
    stage.reach("slow", "lagging", within_s=60)
    for protocol in PROTOCOLS:
        doc = stage.doc("slow", protocol)
        assert doc["severity"] == "warning"
        assert doc["reasons"][0].startswith(f"{stage.topic['slow']}[0] consuming ")


def test_a_poison_pill_recommitted_every_2s_is_stalled_on_both_protocols_alike(
        stage: Stage) -> None:
    # Given a member on each protocol that goes back to the same message and commits its
    # offset again every 2 s
    for protocol in PROTOCOLS:
        stage.consumers["stuck", protocol].send("stuck")
    # Then both are stalled, named alive, and within the same time
    took = stage.reach("stuck", "stalled", within_s=45)
    assert abs(took["consumer"] - took["classic"]) <= 10, took
    for protocol in PROTOCOLS:
        doc = stage.doc("stuck", protocol)
        assert (doc["severity"], doc["members"]) == ("critical", 1)
        committed = doc["topics"][stage.topic["stuck"]]["partitions"]["0"]["committed"]
        assert re.fullmatch(
            rf"{re.escape(stage.topic['stuck'])}\[0\] stuck at offset {committed:,} for \d+s "
            r"with [\d,]+ messages waiting; it still commits this offset every 2s: alive but "
            r"not getting past it \(a poison pill or a retry loop\)", doc["reasons"][0]), doc


def test_a_closed_consumer_is_stopped_on_both_protocols(stage: Stage) -> None:
    for protocol in PROTOCOLS:
        stage.consumers["stopped", protocol].stop()
    stage.reach("stopped", "stopped", within_s=15)
    for protocol in PROTOCOLS:
        doc = stage.doc("stopped", protocol)
        assert (doc["members"], doc["state"], doc["member_list"]) == (0, "Empty", [])


def test_consumers_that_keep_up_are_ok_throughout_on_both_protocols(stage: Stage) -> None:
    groups = [stage.consumers["healthy", p].group for p in PROTOCOLS]
    wait_for(lambda: all(len(stage.statuses[g]) >= 40 for g in groups),
             "40 s of healthy statuses", timeout_s=90)
    for group in groups:
        seen = stage.statuses[group]
        assert set(seen) <= {"ok", "unknown"}, (group, seen)
        assert set(seen[25:]) == {"ok"}, (group, seen)


# --- members and rebalances, one protocol at a time -----------------------------------------

def _group(lagwatch: Daemon, group: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = status_document(lagwatch)["clusters"]["default"][
        "groups"].get(group)
    return doc


def _settled(java: str, bootstrap: str, group: str, members: int) -> dict[str, Any] | None:
    """Java's view of the group once it is Stable with every member at its target."""
    described = java_describe(java, bootstrap, group)
    every = described["members"]
    if (described["state"] != "Stable" or len(every) != members
            or any(m["target"] and m["assignment"] != m["target"] for m in every)):
        return None
    return described


def _next_poll(lagwatch: Daemon) -> None:
    """Wait for two more polls, so the later one started after now."""
    for _ in range(2):
        last = status_document(lagwatch)["clusters"]["default"]["last_poll"]
        wait_for(lambda last=last: status_document(lagwatch)["clusters"]["default"][
            "last_poll"] != last, "another poll")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_members_hosts_and_assignments_equal_what_the_java_admin_describes(
        java: str, kafka_bootstrap: str, make_topic: Callable[..., str],
        unique: Callable[[str], str], daemon: Callable[..., Daemon], protocol: str) -> None:
    # Given two Java members of one group on a 4-partition topic
    topic, group = make_topic([5, 5, 5, 5]), unique(f"java-members-{protocol}")
    members = [JavaConsumer(java, kafka_bootstrap, topic, group, protocol,
                            client_id=f"billing-{n}").start() for n in (1, 2)]
    try:
        assert all(m.joined.wait(60) for m in members)
        lagwatch = daemon(group)
        described = wait_for(lambda: _settled(java, kafka_bootstrap, group, 2),
                             "the group to settle", timeout_s=60)
        _next_poll(lagwatch)
        # Then lagwatch names the same members, hosts and partitions as Kafka's Admin
        doc = _group(lagwatch, group)
        assert doc is not None
        assert (doc["type"], doc["state"], doc["members"]) == (protocol, "Stable", 2)
        seen = sorted((m["member_id"], m["client_id"], m["client_host"], m["instance_id"],
                       m["assigned"]) for m in doc["member_list"])
        expected = sorted((m["member_id"], m["client_id"], m["host"].lstrip("/"),
                           m["instance_id"], sorted(m["assignment"]))
                          for m in described["members"])
        assert seen == expected
        assert sorted(tp for m in doc["member_list"] for tp in m["assigned"]) == [
            [topic, p] for p in range(4)]
        # the assignor: the server-side one, or the one a classic group's members agreed on
        assert doc["assignor"] == described["assignor"]
        if protocol == "consumer":
            assert doc["epoch"] == described["epoch"]
            assert sorted((m["member_id"], m["member_epoch"], m["target"])
                          for m in doc["member_list"]) == sorted(
                (m["member_id"], m["member_epoch"], sorted(m["target"]))
                for m in described["members"])
    finally:
        for member in members:
            member.stop()


def _generation(java: str, bootstrap: str, steady: JavaConsumer) -> int:
    """The truth to count against: a consumer-protocol group's epoch (Admin), a classic
    group's generation (as its steady member last saw it)."""
    if steady.protocol == "consumer":
        return int(java_describe(java, bootstrap, steady.group)["epoch"])
    return steady.epoch


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_join_and_leave_loop_is_counted_exactly_and_found_rebalancing(
        java: str, kafka_bootstrap: str, make_topic: Callable[..., str],
        unique: Callable[[str], str], daemon: Callable[..., Daemon], protocol: str) -> None:
    # Given a steady Java member and what lagwatch counted once it settled
    topic, group = make_topic([0, 0]), unique(f"java-churn-{protocol}")
    lagwatch = daemon(group, health={"rebalance_episode": "100ms"})  # each change: one
    wait_for(lambda: status_document(lagwatch)["clusters"]["default"]["up"],
             "a first poll (the records reader starts at the end of the topic)")
    steady = JavaConsumer(java, kafka_bootstrap, topic, group, protocol,
                          client_id="steady").start()
    extra: JavaConsumer | None = None
    try:
        assert steady.joined.wait(60)
        wait_for(lambda: _settled(java, kafka_bootstrap, group, 1), "the steady member")
        _next_poll(lagwatch)
        before = _group(lagwatch, group)
        assert before is not None
        counted, generation = before["rebalances"]["total"], _generation(
            java, kafka_bootstrap, steady)
        # When another member joins and leaves, twice
        for _ in range(2):
            extra = JavaConsumer(java, kafka_bootstrap, topic, group, protocol,
                                 client_id="extra").start()
            assert extra.joined.wait(60)
            wait_for(lambda: _settled(java, kafka_bootstrap, group, 2), "the extra member")
            extra.stop()
            wait_for(lambda: _settled(java, kafka_bootstrap, group, 1), "it to leave")
        truth = _generation(java, kafka_bootstrap, steady) - generation
        _next_poll(lagwatch)
        # Then lagwatch counted exactly the group's rebalances, from its records
        doc = _group(lagwatch, group)
        assert doc is not None
        assert truth >= 4
        assert doc["rebalances"]["exact"] is True
        assert doc["rebalances"]["total"] - counted == truth, (doc["rebalances"], truth)
        assert (doc["rebalances"]["joined"], doc["rebalances"]["left"]) >= (2, 2)
        finding = next(f for f in doc["findings"] if f["kind"] == "rebalancing")
        assert re.match(r"\d+ rebalances in \d+ episodes in the window \(",
                        finding["reason"]), finding
        if protocol == "consumer":
            assert doc["epoch"] == generation + truth
    finally:
        steady.stop()
        if extra is not None:
            extra.stop()


def test_a_share_group_is_listed_with_its_type_and_never_judged_ok(
        java: str, kafka_bootstrap: str, make_topic: Callable[..., str],
        unique: Callable[[str], str], daemon: Callable[..., Daemon]) -> None:
    # Given a Java member of a share group (KIP-932) reading a topic
    topic, group = make_topic([10]), unique("java-share")
    member = JavaConsumer(java, kafka_bootstrap, topic, group, "share").start()
    try:
        assert member.joined.wait(60)
        lagwatch = daemon(group)
        # Then lagwatch lists it by type and says plainly that it does not judge it
        doc = wait_for(lambda: _group(lagwatch, group), "the share group to be listed")
        assert (doc["type"], doc["status"], doc["severity"], doc["topics"],
                doc["lag_messages"], doc["findings"]) == (
            "share", "unknown", "none", {}, None, [])
        assert doc["reasons"] == [
            "lagwatch does not judge share groups: share groups (KIP-932) acknowledge records "
            "one by one instead of committing offsets; this group is listed, not watched"]
        info = frozenset({"cluster": "default", "group": group, "type": "share"}.items())
        assert scrape(lagwatch)[("lagwatch_group_info", info)] == 1
    finally:
        member.stop()
