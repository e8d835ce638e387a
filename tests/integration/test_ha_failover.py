"""Three replicas of ``lagwatch run`` on the real 3-broker cluster, paging the local Slack
and PagerDuty: a shard owner killed or paused, and nobody paged twice or left unresolved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka_local import KafkaCluster, free_port
from workload import Consumer, Producer

from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.incidents import Incident, IncidentKey, Phase, Signal
from lagwatch.alerting.sharing import Handed
from lagwatch.ha.ownership import Claim
from lagwatch.ha.shards import shard_of
from lagwatch.ha.statelog import claim_value, incident_record, silence_record, status_record
from lagwatch.kafka.membership import StateTopicError, ensure_state_topic
from lagwatch.status import Severity
from tests.exposition import parse
from tests.fake_apis import FakePagerDuty, FakeSlack
from tests.integration.helpers import (
    HA_KEY,
    commit,
    http_get,
    post_json,
    produce,
    wait_for,
    wait_polls,
)

pytestmark = pytest.mark.multibroker
SHARDS, SESSION_S = 6, 6.0
CLUSTER = "trio"
TOKEN = "replicas-token-0123456789"  # noqa: S105 - lagwatch's own token: writes need one


@pytest.fixture(scope="module")
def trio() -> Iterator[KafkaCluster]:
    with KafkaCluster(3) as running:
        yield running


class Replica:
    """One ``lagwatch run`` process with ha."""

    def __init__(self, name: str, config: Path) -> None:
        self.name, self.listen = name, f"127.0.0.1:{free_port()}"
        self.base = f"http://{self.listen}"
        self.log = config.with_suffix(".log")  # a file: a full pipe would block its logging
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lagwatch", "run", "-c", str(config), "--listen",
                 self.listen], stdout=subprocess.DEVNULL, stderr=log)

    def owned(self) -> frozenset[int]:
        """The shards its /metrics says it owns (none while it does not answer)."""
        try:
            code, body = http_get(self.base + "/metrics")
        except (urllib.error.URLError, OSError):
            return frozenset()
        if code != 200:
            return frozenset()
        return frozenset(int(dict(labels)["shard"]) for (name, labels), v
                         in parse(body.decode()).items()
                         if name == "lagwatch_shard_owned" and v == 1.0)

    def api(self, path: str, method: str = "GET") -> Any:
        """A document of the JSON API (with the token: the replicas' API needs one)."""
        request = urllib.request.Request(self.base + path, method=method,  # noqa: S310
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def incidents(self) -> list[dict[str, Any]]:
        return self.api("/api/v1/incidents")["incidents"]  # type: ignore[no-any-return]

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        return next((i for i in self.incidents() if i["id"] == incident_id), None)


@pytest.fixture
def replicas(trio: KafkaCluster, tmp_path: Path, unique: Callable[[str], str]
             ) -> Iterator[Callable[..., list[Replica]]]:
    """Start replicas watching the named groups, sharing one coordination group."""
    started: list[Replica] = []
    (tmp_path / "ha-key").write_text(HA_KEY)
    ha = {"cluster": CLUSTER, "group": unique("ha"), "topic": unique("ha-state"),
          "shards": SHARDS, "session_timeout": f"{SESSION_S:g}s",
          "key_file": str(tmp_path / "ha-key")}

    def start(names: list[str], groups: list[str], alerting: dict[str, Any],
              **extra: Any) -> list[Replica]:
        for name in names:
            config = tmp_path / f"{name}.yaml"
            config.write_text(yaml.safe_dump({
                "clusters": [{"name": CLUSTER, "bootstrap_servers": trio.bootstrap.split(","),
                              "request_timeout": "5s",
                              "groups": {"include": [f"^{g}$" for g in groups]}}],
                "poll_interval": "1s", "state_dir": str(tmp_path / name),
                "http": {"auth": {"bearer_token": TOKEN}},
                "ha": {**ha, "replica": name}, "alerting": alerting, **extra}))
            started.append(Replica(name, config))
        return started[-len(names):]

    yield start
    for replica in started:
        ended = replica.proc.poll()
        if ended is None:
            replica.proc.kill()
        replica.proc.wait()
        if ended not in (None, -signal.SIGKILL, 0):  # say why a replica ended on its own
            print(f"replica {replica.name} ended with {ended}:\n"
                  f"{replica.log.read_text()[-4000:]}")


def sharing_one_group(replicas: Callable[..., list[Replica]], unique: Callable[[str], str],
                      alerting: Callable[[str], dict[str, Any]]) -> tuple[str, list[Replica]]:
    """Two replicas, the shards shared out between them (each owning some: the first to
    start owns them all until the second joins), watching a group routed to the pagers."""
    group = unique("ha-group")
    two = replicas(["a", "b"], [group], alerting(group))
    wait_for(lambda: shared_out(two) and all(r.owned() for r in two),
             lambda: f"the shards shared out ({[sorted(r.owned()) for r in two]})",
             timeout_s=90)
    return group, two


def shared_out(replicas: list[Replica]) -> bool:
    """Every shard owned by exactly one of the live replicas."""
    owned = [r.owned() for r in replicas]
    return sum(len(o) for o in owned) == SHARDS and frozenset().union(*owned) == set(
        range(SHARDS))


def stop(trio: KafkaCluster, unique: Callable[[str], str], groups: list[str]) -> str:
    """Give the groups 10 unread messages and no members (stopped from the next poll);
    return their topic."""
    admin = KafkaAdminClient(bootstrap_servers=trio.bootstrap.split(","))
    topic = unique("ha-watched")
    admin.create_topics([NewTopic(topic, 1, 3)])
    admin.wait_for_topics([topic])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=trio.bootstrap.split(","))
    produce(producer, topic, {0: 30})
    producer.close()
    for group in groups:
        commit(trio.bootstrap, group, topic, {0: 20})
    return topic


def stopped_groups(trio: KafkaCluster, unique: Callable[[str], str], count: int
                   ) -> tuple[str, list[str]]:
    """``count`` stopped groups, and their topic."""
    groups = [unique("ha-group") for _ in range(count)]
    return stop(trio, unique, groups), groups


def paged(trio: KafkaCluster, replicas: Callable[..., list[Replica]],
          unique: Callable[[str], str], names: list[str], groups: int,
          alerting: Callable[[str], dict[str, Any]], slack: FakeSlack,
          pagerduty: FakePagerDuty) -> tuple[str, list[str], list[Replica], Replica]:
    """Replicas watching stopped groups, the first of them paged and every notification
    delivered: the topic, the groups, the replicas and the paged group's owner."""
    topic, stopped = stopped_groups(trio, unique, groups)
    started = replicas(names, stopped, alerting(stopped[0]))
    wait_for(lambda: shared_out(started), lambda: f"the shards shared out "
             f"({[sorted(r.owned()) for r in started]})", timeout_s=90)
    wait_for(lambda: pagerduty.events("trigger") and slack.posts(), "the page", timeout_s=60)
    first = owner(started, stopped[0])
    assert first is not None
    delivered(first)
    return topic, stopped, started, first


def delivered(replica: Replica) -> None:
    """Wait until a replica has nothing left to deliver, and two more polls: the record of
    its last delivery is on the state topic. (A replica killed in between leaves that
    notification to be sent again: delivery across a failover is at least once.)"""
    def pending() -> float | None:
        code, body = http_get(replica.base + "/metrics")
        if code != 200:
            return None
        return sum(v for (name, _), v in parse(body.decode()).items()
                   if name == "lagwatch_outbox_pending")

    wait_for(lambda: pending() == 0, f"{replica.name} to deliver everything")
    wait_polls(replica.base, 2)


def owner(replicas: list[Replica], group: str) -> Replica | None:
    shard = shard_of(CLUSTER, group, SHARDS)
    return next((r for r in replicas if shard in r.owned()), None)


def test_killing_the_owner_keeps_the_incident_firing_and_it_resolves_once(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given three replicas watching several stopped groups, and the owner of the one routed
    # to pagers has paged
    topic, groups, three, first = paged(trio, replicas, unique, ["a", "b", "c"], 4,
                                        alerting, slack, pagerduty)
    stuck = groups[0]
    incident_id = f"{CLUSTER}/{stuck}/lag"
    # When it is killed
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    killed_at = time.monotonic()
    rest = [r for r in three if r is not first]
    second = wait_for(lambda: owner(rest, stuck), "another replica to own the shard",
                      timeout_s=SESSION_S + 60)
    took_s = time.monotonic() - killed_at
    # Then the new owner shows the incident firing, and has not paged again
    wait_for(lambda: (second.incident(incident_id) or {}).get("phase") == "firing",
             "the incident firing on the new owner", timeout_s=30)
    wait_polls(second.base, 3)
    # and every replica left answers for it alike
    assert rest[0].incidents() == rest[1].incidents()
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]
    assert len(slack.posts()) == 1
    # When the group catches up
    commit(trio.bootstrap, stuck, topic, {0: 30})
    # Then each receiver hears one resolve, the Slack one in the trigger's thread
    wait_for(lambda: pagerduty.events("resolve") and slack.updates(), "the resolve",
             timeout_s=60)
    wait_polls(second.base, 3)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    _, reply = slack.posts()
    update, = slack.updates()
    assert (update.body["ts"], reply.body["thread_ts"]) == ("1790000000.000001",) * 2
    assert pagerduty.open == set()
    print(f"\nfailover: shard owned by {second.name} {took_s:.1f}s after kill -9 of "
          f"{first.name} (session timeout {SESSION_S:g}s)")


def test_a_replica_paused_past_its_session_sends_nothing_for_the_shards_it_lost(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given two replicas, and a stopped group that has paged
    topic, groups, two, paused = paged(trio, replicas, unique, ["a", "b"], 3, alerting,
                                       slack, pagerduty)
    other = next(r for r in two if r is not paused)
    # When its owner is paused until the other owns every shard
    paused.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: len(other.owned()) == SHARDS, "the other to own every shard",
                 timeout_s=SESSION_S + 60)
        # and the group recovers meanwhile: the new owner resolves it
        commit(trio.bootstrap, groups[0], topic, {0: 30})
        wait_for(lambda: pagerduty.events("resolve") and slack.updates(), "the resolve",
                 timeout_s=60)
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    # Then, once the paused one is back and polling, it finds it lost the shard and sends
    # nothing more
    wait_for(lambda: shared_out(two), "the shards shared out again", timeout_s=90)
    wait_polls(paused.base, 3)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    assert len(slack.posts()) == 2 and len(slack.updates()) == 1


# series about lagwatch itself, which every process has its own of
OWN = ("lagwatch_poll", "lagwatch_notifications", "lagwatch_outbox", "lagwatch_incidents",
       "lagwatch_state_", "lagwatch_shard_owned", "lagwatch_ha_", "lagwatch_build_info",
       "lagwatch_process", "lagwatch_heap", "lagwatch_record_fetches")
# values that move with the clock, with the brokers' own writes (the replicas write the
# state topic), or with which broker answers (KRaft names any broker as the controller),
# compared by series only
CLOCKED = ("lagwatch_last_poll_timestamp_seconds", "lagwatch_partition_lag_seconds",
           "lagwatch_group_lag_seconds", "lagwatch_group_retention_eta_seconds",
           "lagwatch_partition_retention_eta_seconds", "lagwatch_cluster_controller_id",
           "lagwatch_cluster_controller_changes_total", "lagwatch_broker_log_dir_bytes",
           "lagwatch_broker_log_dir_usable_bytes",
           "lagwatch_broker_log_dir_growth_bytes_per_second")


def watched_series(base: str, cluster: str) -> dict[tuple[str, frozenset[tuple[str, str]]],
                                                    float]:
    code, body = http_get(base + "/metrics")
    assert code == 200
    return {(name, labels): (0.0 if name in CLOCKED else v)
            for (name, labels), v in parse(body.decode()).items()
            if name.startswith("lagwatch_") and not name.startswith(OWN)
            and ("cluster", cluster) in labels}


def test_the_replicas_metrics_together_are_one_process_s(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], tmp_path: Path) -> None:
    # Given groups on a topic nobody writes to, watched by three replicas and by one
    # lagwatch alone
    _, groups = stopped_groups(trio, unique, 6)
    three = replicas(["a", "b", "c"], groups, {})
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump({
        "clusters": [{"name": CLUSTER, "bootstrap_servers": trio.bootstrap.split(","),
                      "request_timeout": "5s",
                      "groups": {"include": [f"^{g}$" for g in groups]}}],
        "poll_interval": "1s", "state_dir": str(tmp_path / "alone"),
        "http": {"auth": {"bearer_token": TOKEN}}}))
    single = Replica("alone", alone)
    try:
        wait_for(lambda: shared_out(three), "the shards shared out", timeout_s=90)
        for r in (*three, single):
            wait_polls(r.base, 3)
        # Then every series about the cluster and its groups comes from exactly one
        # replica, and together they are what the single process exports
        each = [watched_series(r.base, CLUSTER) for r in three]
        union: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for series in each:
            union.update(series)
        one = watched_series(single.base, CLUSTER)
        assert {k for k in one if k not in union} == set()
        assert {k for k in union if k not in one} == set()
        assert {k: (union[k], one[k]) for k in one if union[k] != one[k]} == {}
        group_series = [{k for k in s if any(n == "group" for n, _ in k[1])} for s in each]
        assert sum(len(s) for s in group_series) == len(frozenset().union(*group_series))
        health = [s for s in each if ("lagwatch_cluster_up", frozenset({("cluster", CLUSTER)}))
                  in s]
        assert len(health) == 1  # the cluster's own series: from its shard's owner alone
        # and /api/v1/status is one document, the same from each, with every group
        def clusters(replica: Replica) -> dict[str, Any]:
            return replica.api("/api/v1/status")["clusters"]  # type: ignore[no-any-return]

        fleet = wait_for(lambda: (c := clusters(three[0])) == clusters(three[1])
                         == clusters(three[2]) and set(c[CLUSTER]["groups"]) == set(groups)
                         and c, "one status document on every replica", timeout_s=30)
        document = single.api("/api/v1/status")["clusters"][CLUSTER]
        assert fleet[CLUSTER]["up"] is True
        assert {g: d["status"] for g, d in fleet[CLUSTER]["groups"].items()} == {
            g: d["status"] for g, d in document["groups"].items()}
        assert three[1].api(f"/api/v1/status/{CLUSTER}/{groups[0]}") == fleet[CLUSTER][
            "groups"][groups[0]]
    finally:
        single.proc.kill()
        single.proc.wait()


def test_a_silence_made_through_any_replica_applies_on_every_one(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given two replicas, and a group that will page once stopped
    group, two = sharing_one_group(replicas, unique, alerting)
    owning = owner(two, group)
    assert owning is not None
    other = next(r for r in two if r is not owning)
    # When a silence for it is made through the replica that does not watch it
    code, made = post_json(other.base + "/api/v1/silences", {
        "match": {"group": group}, "ends": "2099-01-01T00:00:00Z", "comment": "drill"}, TOKEN)
    assert code == 201, made
    wait_for(lambda: [s["id"] for s in owning.api("/api/v1/silences")["silences"]]
             == [made["id"]], "the silence on the owner")
    # and the group stops
    stop(trio, unique, [group])
    # Then its owner fires the incident silenced, every replica shows it so, nobody is told
    incident_id = f"{CLUSTER}/{group}/lag"
    wait_for(lambda: (other.incident(incident_id) or {}).get("phase") == "firing",
             "the incident firing, seen from the other replica", timeout_s=60)
    assert other.incident(incident_id)["silenced"] is True  # type: ignore[index]
    wait_polls(owning.base, 3)
    assert (slack.calls, pagerduty.calls) == ([], [])
    # When the silence is deleted through the owner, Then the page goes out
    assert owning.api(f"/api/v1/silences/{made['id']}", "DELETE") == {"deleted": made["id"]}
    wait_for(lambda: other.api("/api/v1/silences")["silences"] == [],
             "the deletion on the other replica")
    wait_for(lambda: pagerduty.events("trigger") and slack.posts(), "the page", timeout_s=60)


def test_a_replica_added_then_removed_moves_shards_and_loses_or_repeats_nothing(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given two replicas and four stopped groups, one of them paged
    topic, groups, two, _ = paged(trio, replicas, unique, ["a", "b"], 4, alerting, slack,
                                  pagerduty)
    ids = {f"{CLUSTER}/{g}/lag" for g in groups}

    def firing(replica: Replica) -> set[str]:
        return {i["id"] for i in replica.incidents() if i["phase"] == "firing"} & ids

    wait_for(lambda: firing(two[0]) == ids, "every group's incident firing", timeout_s=60)
    # When a third replica joins, and then leaves
    third, = replicas(["c"], groups, alerting(groups[0]))
    three = [*two, third]
    wait_for(lambda: shared_out(three) and third.owned(), "the shards shared by three",
             timeout_s=90)
    wait_polls(third.base, 3)
    assert firing(third) == ids
    third.proc.send_signal(signal.SIGTERM)
    assert third.proc.wait(timeout=60) == 0
    wait_for(lambda: shared_out(two), "the shards shared by two again", timeout_s=90)
    for replica in two:
        wait_polls(replica.base, 3)
    # Then every incident is still firing, and nobody was paged again
    assert firing(two[0]) == firing(two[1]) == ids
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]
    assert len(slack.posts()) == 1
    # When the paged group catches up, Then one resolve at each receiver
    commit(trio.bootstrap, groups[0], topic, {0: 30})
    wait_for(lambda: pagerduty.events("resolve") and slack.updates(), "the resolve",
             timeout_s=60)
    for replica in two:
        wait_polls(replica.base, 3)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    assert len(slack.posts()) == 2 and len(slack.updates()) == 1


def test_a_stall_keeps_firing_through_the_new_owner_s_warm_up_and_resolves_once(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given a consumer keeping up with 20 msg/s, watched by three replicas
    group, topic = unique("ha-stalls"), unique("ha-live")
    admin = KafkaAdminClient(bootstrap_servers=trio.bootstrap.split(","))
    admin.create_topics([NewTopic(topic, 1, 3)])
    admin.wait_for_topics([topic])
    admin.close()
    consumer = Consumer(trio.bootstrap, topic, group)
    consumer.start()
    producer = Producer(trio.bootstrap, [topic], 20.0)
    producer.start()
    try:
        assert consumer.joined.wait(60)
        three = replicas(["a", "b", "c"], [group], alerting(group),
                         detection={"window": "2m", "min_duration": "20s",
                                    "stall_after": "4s"})
        wait_for(lambda: shared_out(three), "the shards shared out", timeout_s=90)
        first = owner(three, group)
        assert first is not None
        wait_polls(first.base, 5)
        # When it gets stuck, is paged, and its owner is killed
        consumer.committing = False
        wait_for(lambda: pagerduty.events("trigger") and slack.posts(), "the page",
                 timeout_s=60)
        delivered(first)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        rest = [r for r in three if r is not first]
        second = wait_for(lambda: owner(rest, group), "another replica to own the shard",
                          timeout_s=SESSION_S + 60)

        def status() -> str | None:
            document = second.api(f"/api/v1/status/{CLUSTER}").get("groups", {})
            return document.get(group, {}).get("status")  # type: ignore[no-any-return]

        # Then the new owner, once it has history enough, judges it stalled again, and
        # meanwhile the incident stayed firing with nobody paged again
        wait_for(lambda: status() == "stalled", "the new owner to judge the group stalled",
                 timeout_s=90)
        incident = second.incident(f"{CLUSTER}/{group}/lag")
        assert incident is not None and incident["phase"] == "firing"
        assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]
        assert len(slack.posts()) == 1
        # When it gets past the message, Then one resolve at each receiver
        consumer.committing = True
        wait_for(lambda: pagerduty.events("resolve") and slack.updates(), "the resolve",
                 timeout_s=90)
        wait_polls(second.base, 3)
    finally:
        producer.stop()
        consumer.stop()
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    assert len(slack.posts()) == 2 and len(slack.updates()) == 1


def test_replicas_starting_together_all_accept_the_state_topic_they_race_to_create(
        trio: KafkaCluster, unique: Callable[[str], str]) -> None:
    # Given six replicas starting at once, each asking a broker of its own: one creates
    # the topic, the others hear it exists, perhaps before their broker knows its partitions
    topic, brokers = unique("ha-state"), trio.bootstrap.split(",")
    admins = [KafkaAdminClient(bootstrap_servers=[brokers[i % len(brokers)]])
              for i in range(6)]
    together = threading.Barrier(len(admins))
    outcomes: list[str] = []

    def ensure(admin: KafkaAdminClient) -> None:
        together.wait()
        try:
            ensure_state_topic(admin, topic, SHARDS)
            outcomes.append("accepted")
        except StateTopicError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=ensure, args=(admin,)) for admin in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for admin in admins:
        admin.close()
    # Then every one of them goes on
    assert outcomes == ["accepted"] * len(admins)


def skipped(replica: Replica, reason: str) -> float:
    """The state topic's records a replica skipped, for a reason."""
    code, body = http_get(replica.base + "/metrics")
    if code != 200:
        return -1.0
    return parse(body.decode()).get(("lagwatch_ha_records_skipped_total",
                                     frozenset({("reason", reason)})), -1.0)


def test_records_forged_on_the_state_topic_mute_send_and_lose_nothing(
        trio: KafkaCluster, replicas: Callable[..., list[Replica]],
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given two replicas watching a group routed to the pagers
    group, two = sharing_one_group(replicas, unique, alerting)
    state_topic = yaml.safe_load(two[0].log.with_suffix(".yaml").read_text())["ha"]["topic"]
    shard = shard_of(CLUSTER, group, SHARDS)
    incident_id = f"{CLUSTER}/{group}/lag"
    # When someone who can write to the state topic but has no key writes, in the shard of
    # the group: a claim, an incident of their own with a page to send, a value nested
    # 50,000 deep; in the silences' shard, a silence of everything and another nested
    # value; in another shard, 900 kB of status for a cluster nobody watches
    mallory = Claim("mallory", "x", 99)
    firing = Incident(Signal(IncidentKey(CLUSTER, "forged", "lag"), Severity.CRITICAL,
                             "forged page", (), (), "forged"), Phase.FIRING, 1.0, 1.0)
    forged = KafkaProducer(bootstrap_servers=trio.bootstrap.split(","), acks="all",
                           max_request_size=2 << 20)
    records = [
        (shard, b"claim", claim_value(mallory)),
        (shard, *incident_record(mallory, f"{CLUSTER}/forged/lag", Handed(
            firing, (("team-pd", "trigger", '{"summary": "forged page"}'),)))),
        (shard, b"incident:" + incident_id.encode(), b"[" * 50_000),
        (0, *silence_record("forged", SilenceConfig.model_validate(
            {"match": {}, "ends": "2099-01-01T00:00:00Z"}))),
        (0, b"silence:nested", b"{\"match\":" * 50_000),
        ((shard + 1) % SHARDS, *status_record(mallory, "elsewhere", os.urandom(900_000))),
    ]
    for partition, key, value in records:
        forged.send(state_topic, key=key, value=value, partition=partition).get(timeout=30)
    # and a silence of another group is made through the API, right after them
    code, made = post_json(two[1].base + "/api/v1/silences", {
        "match": {"group": "^another$"}, "ends": "2099-01-01T00:00:00Z"}, TOKEN)
    assert code == 201, made
    # Then each replica refuses them all, unread (its fleet reader reads every shard), and
    # keeps the real silence
    for replica in two:
        wait_for(lambda: skipped(replica, "unsigned") == len(records),  # noqa: B023
                 f"{replica.name} to refuse the forged records")
        wait_for(lambda: [s["id"] for s in replica.api("/api/v1/silences")["silences"]]  # noqa: B023
                 == [made["id"]], f"{replica.name} to keep the real silence")
    # When the group stops, Then its page goes out, not muted
    stop(trio, unique, [group])
    wait_for(lambda: pagerduty.events("trigger") and slack.posts(), "the page", timeout_s=60)
    first = owner(two, group)
    assert first is not None
    delivered(first)
    assert [s["id"] for s in first.api("/api/v1/silences")["silences"]] == [made["id"]]
    # When the firing incident's record is tombstoned by the same hand
    second = next(r for r in two if r is not first)
    unreadable = skipped(second, "unreadable")
    forged.send(state_topic, key=b"incident:" + incident_id.encode(), value=None,
                partition=shard).get(timeout=30)
    forged.close()
    wait_for(lambda: skipped(second, "unreadable") == unreadable + 1, "the tombstone refused")
    # and the owner is killed
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    wait_for(lambda: owner([second], group) is second, "the other to own the shard",
             timeout_s=SESSION_S + 60)
    # Then the new owner carries the incident on, firing, with no second page and no page
    # of the forged incident
    wait_for(lambda: (second.incident(incident_id) or {}).get("phase") == "firing",
             "the incident firing on the new owner", timeout_s=30)
    wait_polls(second.base, 3)
    listed = {i["id"] for i in second.incidents()}
    assert incident_id in listed and f"{CLUSTER}/forged/lag" not in listed
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]
    assert len(slack.posts()) == 1
    assert "elsewhere" not in second.api("/api/v1/status")["clusters"]
