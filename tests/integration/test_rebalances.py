"""Rebalances counted on the real broker: exactly from __consumer_offsets, or as a lower
bound from describe_groups when that topic is not read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from workload import Consumer

from lagwatch.daemon import Daemon
from tests.integration.helpers import status_document, wait_for

CHANGES = 4  # a member joins, leaves, another joins, leaves: at least four rebalances
QUICK_EPISODES = {"rebalance_episode": "100ms"}  # each of those changes is an episode


def group_doc(lagwatch: Daemon, group: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = status_document(lagwatch)["clusters"]["default"][
        "groups"].get(group)
    return doc


def next_poll(lagwatch: Daemon) -> None:
    """Wait for a poll that started after now, so every earlier record has been read."""
    last = status_document(lagwatch)["clusters"]["default"]["last_poll"]
    wait_for(lambda: status_document(lagwatch)["clusters"]["default"]["last_poll"] != last,
             "another poll")
    last = status_document(lagwatch)["clusters"]["default"]["last_poll"]
    wait_for(lambda: status_document(lagwatch)["clusters"]["default"]["last_poll"] != last,
             "another poll")


def wait_members(lagwatch: Daemon, group: str, members: int, what: str) -> None:
    wait_for(lambda: (g := group_doc(lagwatch, group)) and g["members"] == members
             and g["state"] == "Stable", what)


@pytest.fixture
def topic(admin: KafkaAdminClient, unique: Callable[[str], str]) -> str:
    name = unique("churn")
    admin.create_topics([NewTopic(name, 2, 1)])
    admin.wait_for_topics([name])
    return name


@pytest.fixture
def base(kafka_bootstrap: str, topic: str, unique: Callable[[str], str]
         ) -> Iterator[Consumer]:
    """A member that stays in the group throughout."""
    consumer = Consumer(kafka_bootstrap, topic, unique("group"))
    yield consumer
    consumer.stop()


def baseline(lagwatch: Daemon, base: Consumer) -> tuple[int, int]:
    """Start the steady member once lagwatch polls; return the count it settles at, and the
    group's generation then."""
    wait_for(lambda: status_document(lagwatch)["clusters"]["default"]["up"],
             "a first poll (the records reader starts at the end of the topic)")
    base.start()
    assert base.joined.wait(30)
    wait_members(lagwatch, base.group, 1, "the base member")
    next_poll(lagwatch)
    doc = group_doc(lagwatch, base.group)
    assert doc is not None
    return int(doc["rebalances"]["total"]), base.generation


def play(kafka_bootstrap: str, lagwatch: Daemon, base: Consumer) -> None:
    """Members join and leave one at a time. Each change is one rebalance, and on a loaded
    host sometimes two (a member late to rejoin), so the truth is the generations the steady
    member went through."""
    for _ in range(CHANGES // 2):
        extra = Consumer(kafka_bootstrap, base.topic, base.group)
        extra.start()
        wait_members(lagwatch, base.group, 2, "the extra member to join")
        extra.stop()
        wait_members(lagwatch, base.group, 1, "the extra member to leave")
    next_poll(lagwatch)


def test_exact_mode_counts_exactly_the_rebalances(
        kafka_bootstrap: str, base: Consumer, daemon: Callable[..., Daemon]) -> None:
    # Given a group with one steady member, and what lagwatch has counted so far
    lagwatch = daemon(base.group, health=QUICK_EPISODES)
    before, generation = baseline(lagwatch, base)

    # When members join and leave
    play(kafka_bootstrap, lagwatch, base)

    # Then exactly as many rebalances were counted, from the coordinator's records, as the
    # group went through
    doc = group_doc(lagwatch, base.group)
    assert doc is not None
    assert doc["rebalances"]["exact"] is True
    rebalances = base.generation - generation
    assert rebalances >= CHANGES
    assert doc["rebalances"]["total"] - before == rebalances
    assert doc["rebalances"]["joined"] >= 2
    assert doc["rebalances"]["left"] >= 2
    finding = next(f for f in doc["findings"] if f["kind"] == "rebalancing")
    assert re.match(r"\d+ rebalances in \d+ episodes in the window \(", finding["reason"]), (
        finding["reason"])
    assert "lower bounds" not in finding["reason"]


def test_fallback_mode_reports_at_most_the_true_count_and_says_so(
        kafka_bootstrap: str, base: Consumer, daemon: Callable[..., Daemon]) -> None:
    # Given lagwatch told not to read __consumer_offsets
    lagwatch = daemon(base.group, cluster={"read_offsets_topic": False},
                      health=QUICK_EPISODES)
    before, generation = baseline(lagwatch, base)

    # When
    play(kafka_bootstrap, lagwatch, base)

    # Then
    doc = group_doc(lagwatch, base.group)
    assert doc is not None
    assert doc["rebalances"]["exact"] is False
    assert 1 <= doc["rebalances"]["total"] - before <= base.generation - generation
    finding = next(f for f in doc["findings"] if f["kind"] == "rebalancing")
    assert finding["reason"].startswith("at least ")
    assert finding["reason"].endswith("(counted from polls: lower bounds)")
