"""Skew findings from real producers and consumers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from workload import Consumer, Producer

from lagwatch.daemon import Daemon
from tests.integration.helpers import settled, status_document, wait_for


@pytest.fixture
def running() -> Iterator[list[Any]]:
    """Clients started by a test, stopped after it in reverse order."""
    clients: list[Any] = []
    yield clients
    for client in reversed(clients):
        client.stop()


def start(clients: list[Any], client: Any) -> Any:
    clients.append(client)
    client.start()
    return client


def topic_with(admin: KafkaAdminClient, name: str, partitions: int) -> str:
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.wait_for_topics([name])
    return name


def test_a_key_taking_90_percent_of_the_traffic_makes_its_partition_hot(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], running: list[Any]) -> None:
    # Given a producer writing 9 of every 10 messages with the same key
    topic = topic_with(admin, unique("hot"), 3)
    group = unique("group")
    probe = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    hot = probe.send(topic, b"probe", key=b"the-hot-key").get(timeout=10).partition
    probe.close()
    start(running, Producer(kafka_bootstrap, [topic], 100,
                            key=lambda n: b"the-hot-key" if n % 10 else b"k%d" % n))
    start(running, Consumer(kafka_bootstrap, topic, group))
    lagwatch = daemon(group)

    # Then
    def hot_finding() -> dict[str, str] | None:
        findings = status_document(lagwatch)["clusters"]["default"]["findings"]
        return next((f for f in findings if f["reason"].startswith(f"topic {topic}:")), None)

    finding = wait_for(hot_finding, "a hot-partition finding", timeout_s=30)
    assert (finding["kind"], finding["severity"]) == ("skewed", "warning")
    match = re.fullmatch(rf"topic {re.escape(topic)}: partition (\d) takes (\d+)% of the "
                         r"traffic \(.+ msg/s\), (.+)x the mean over 3 partitions",
                         finding["reason"])
    assert match, finding["reason"]
    assert int(match.group(1)) == hot
    assert int(match.group(2)) >= 85


def test_one_paused_partition_holding_the_lag_is_named_as_lag_skew(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], running: list[Any]) -> None:
    # Given a member that stops reading partition 2 while it keeps up with 0 and 1
    topic = topic_with(admin, unique("skew"), 3)
    group = unique("group")
    start(running, Producer(kafka_bootstrap, [topic], 60, key=lambda n: b"k%d" % n))
    consumer = start(running, Consumer(kafka_bootstrap, topic, group))
    assert consumer.joined.wait(30)
    consumer.paused = {2}
    lagwatch = daemon(group)

    # Then
    def skew() -> dict[str, str] | None:
        g = status_document(lagwatch)["clusters"]["default"]["groups"].get(group, {})
        return next((f for f in g.get("findings", ()) if f["kind"] == "skewed"), None)

    finding = wait_for(skew, "a lag-skew finding", timeout_s=45)
    assert finding["severity"] == "warning"
    assert finding["reason"].startswith(f"{topic}[2] holds ")
    assert f"of the lag on {topic} (" in finding["reason"]


def test_four_members_on_two_partitions_leave_two_idle(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], running: list[Any]) -> None:
    # Given
    topic = topic_with(admin, unique("idle"), 2)
    group = unique("group")
    for _ in range(4):
        start(running, Consumer(kafka_bootstrap, topic, group))
    wait_for(lambda: settled(admin, group) == (4, 2), "four members settled, two with partitions")
    lagwatch = daemon(group)

    # Then
    def idle() -> dict[str, Any] | None:
        g = status_document(lagwatch)["clusters"]["default"]["groups"].get(group)
        return g if g and g["members"] == 4 and g["findings"] else None

    reported = wait_for(idle, "four members and an assignment finding", timeout_s=30)
    finding, = reported["findings"]
    assert (finding["kind"], finding["severity"]) == ("skewed", "none")
    assert re.fullmatch(r"2 of 4 members have no partitions \(.+\); the group has 4 members "
                        r"for 2 partitions", finding["reason"]), finding["reason"]


def test_an_unread_dlq_receiving_messages_gives_inflow_and_unconsumed(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], running: list[Any]) -> None:
    # Given a dead-letter topic (by its name) that receives messages nobody reads
    source = unique("payments")
    dlq = topic_with(admin, f"{source}.DLT", 1)
    start(running, Producer(kafka_bootstrap, [dlq], 5))
    lagwatch = daemon(unique("no-such-group"))

    # Then
    def dlq_findings() -> dict[str, str] | None:
        cluster = status_document(lagwatch)["clusters"]["default"]
        found = {f["kind"]: f["reason"] for f in cluster["findings"] if dlq in f["reason"]}
        return found if {"dlq_inflow", "dlq_unconsumed"} <= found.keys() else None

    found = wait_for(dlq_findings, "dlq_inflow and dlq_unconsumed", timeout_s=30)
    assert re.fullmatch(rf"\d+ messages arrived in {re.escape(dlq)} over the last \d+s "
                        rf"\([\d.]+ msg/s\): the consumers of {re.escape(source)} fail on "
                        r"some messages", found["dlq_inflow"]), found["dlq_inflow"]
    assert re.fullmatch(rf"{re.escape(dlq)} holds \d+ messages and no consumer group reads it",
                        found["dlq_unconsumed"]), found["dlq_unconsumed"]
    summary = status_document(lagwatch)["clusters"]["default"]["dlqs"][dlq]
    assert (summary["source"], summary["consumers"]) == (source, {})


def test_a_dlq_consumer_that_stops_gives_dlq_consumer_lagging(
        kafka_bootstrap: str, admin: KafkaAdminClient, unique: Callable[[str], str],
        daemon: Callable[..., Daemon], running: list[Any]) -> None:
    # Given a group reading a DLQ, which then stops while messages keep arriving
    dlq = topic_with(admin, f"dlq-{unique('orders')}", 1)
    group = unique("dlq-reader")
    start(running, Producer(kafka_bootstrap, [dlq], 5))
    reader = start(running, Consumer(kafka_bootstrap, dlq, group))
    assert reader.joined.wait(30)
    lagwatch = daemon(group)
    # (ok, or unknown while its history is shorter than min_duration: not in trouble)
    wait_for(lambda: status_document(lagwatch)["clusters"]["default"]["dlqs"].get(dlq, {})
             .get("consumers", {}).get(group) in ("ok", "unknown"), "the reader to be seen")
    running.remove(reader)
    reader.stop()

    # Then
    def lagging() -> str | None:
        findings = status_document(lagwatch)["clusters"]["default"]["findings"]
        return next((f["reason"] for f in findings
                     if f["kind"] == "dlq_consumer_lagging" and dlq in f["reason"]), None)

    reason = wait_for(lagging, "dlq_consumer_lagging", timeout_s=30)
    assert re.fullmatch(rf"group {re.escape(group)} reading {re.escape(dlq)} is stopped with "
                        r"\d+ messages unread", reason), reason
