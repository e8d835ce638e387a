"""Alerting end to end: real broker, real daemon, real Slack and PagerDuty clients pointed at
local servers that answer as those APIs do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka_local import LocalKafka, free_port
from workload import Consumer, Producer

from lagwatch.daemon import Daemon
from tests.exposition import parse, value
from tests.fake_apis import FakePagerDuty, FakeSlack
from tests.integration.helpers import (
    commit,
    http_get,
    post_json,
    stopped_group,
    wait_for,
    wait_polls,
)

DEDUP = "lagwatch/default/{group}/lag"


DETECTION = {"window": "2m", "min_duration": "20s", "stall_after": "4s"}


@contextmanager
def consuming(topic: str, group: str, bootstrap: str) -> Iterator[tuple[str, str, Consumer]]:
    """A group keeping up with 20 msg/s on its topic, until the block ends."""
    consumer = Consumer(bootstrap, topic, group)
    consumer.start()
    assert consumer.joined.wait(30)
    producer = Producer(bootstrap, [topic], 20.0)
    producer.start()
    try:
        yield topic, group, consumer
    finally:
        producer.stop()
        consumer.stop()


def test_a_stall_pages_once_and_its_recovery_resolves_once(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str],
        kafka_bootstrap: str, unique: Callable[[str], str], slack: FakeSlack,
        pagerduty: FakePagerDuty, alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given a consumer that keeps up, watched by a daemon that alerts
    with consuming(make_topic([50]), unique("alert-stall"), kafka_bootstrap) as (
            topic, group, consumer):
        watching = daemon(group, detection=DETECTION, alerting=alerting(group))
        assert watching.http is not None
        # When, once lagwatch has seen it commit, it gets stuck on a message
        wait_polls(watching.http.url, 5)
        consumer.committing = False
        # Then one Slack message and one PagerDuty trigger
        wait_for(lambda: slack.posts() and pagerduty.events("trigger"),
                 "the stall to be notified", timeout_s=45)
        # When it gets past the message
        consumer.committing = True
        # Then one resolve: chat.update plus a thread reply, and a PagerDuty resolve
        wait_for(lambda: slack.updates() and pagerduty.events("resolve"),
                 "the recovery to be notified", timeout_s=45)
        wait_polls(watching.http.url, 3)  # room for anything extra to show up
    trigger, reply = slack.posts()
    update, = slack.updates()
    assert trigger.body["text"] == f"[CRITICAL] {group} is stalled (default)"
    assert trigger.body["blocks"][1]["text"]["text"].startswith(f"• {topic}[0] stuck at offset ")
    assert (update.body["ts"], reply.body["thread_ts"]) == ("1790000000.000001",) * 2
    assert update.body["text"] == reply.body["text"] == f"[RESOLVED] {group} is stalled (default)"
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events()] == [
        ("trigger", DEDUP.format(group=group)), ("resolve", DEDUP.format(group=group))]
    assert pagerduty.open == set()


def test_a_consumer_flapping_between_stuck_and_fine_pages_once_and_resolves_once(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str],
        kafka_bootstrap: str, unique: Callable[[str], str], slack: FakeSlack,
        pagerduty: FakePagerDuty, alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given a consumer that is stuck for 8 s, then fine for 3 s, six times over
    with consuming(make_topic([50]), unique("alert-flap"), kafka_bootstrap) as (
            _, group, consumer):
        watching = daemon(group, detection=DETECTION,
                          alerting={**alerting(group), "resolve_after": "10s"})
        assert watching.http is not None
        wait_polls(watching.http.url, 5)
        for _ in range(6):  # the consumer's own rhythm: wall time is the scenario here
            consumer.committing = False
            time.sleep(8)
            consumer.committing = True
            time.sleep(3)
        # When it stays fine
        wait_for(lambda: pagerduty.events("resolve"), "the resolve", timeout_s=45)
        wait_polls(watching.http.url, 3)
    # Then one trigger and one resolve, at each receiver
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    assert [c.body["text"].split("]")[0] for c in slack.posts()] == ["[CRITICAL", "[RESOLVED"]


TOKEN = "silence-maker-0123456789"  # noqa: S105 - lagwatch's own token: writes need one
AUTH = {"auth": {"bearer_token": TOKEN}}


def test_a_silenced_group_notifies_nobody_and_shows_as_silenced(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], slack: FakeSlack, pagerduty: FakePagerDuty,
        alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given a daemon, and a silence for one group made through the API
    _, group = stopped_group(make_topic, kafka_bootstrap, unique, "alert-silenced")
    instance = daemon(unique("nothing-yet"), detection=DETECTION,
                      alerting=alerting(group), http={"listen": "127.0.0.1:0", **AUTH})
    assert instance.http is not None
    base = instance.http.url
    code, answer = post_json(base + "/api/v1/silences", {
        "match": {"group": group}, "ends": "2099-01-01T00:00:00Z", "comment": "migration"},
        TOKEN)
    assert code == 201, answer
    bad = post_json(base + "/api/v1/silences", {"match": {"group": "("}}, TOKEN)
    assert bad == (400, {"error": "match.group: invalid regex '(': missing ): ( (patterns "
                                  "are RE2, as in Prometheus: no backreferences or "
                                  "lookaround)"})
    # When the silenced group stops, watched by a daemon with the same state
    instance.stop()
    watching = daemon(group, detection=DETECTION, alerting=alerting(group))
    assert watching.http is not None
    # Then the incident fires, silenced, and nobody hears of it
    incidents = watching.http.url + "/api/v1/incidents"
    incident = wait_for(lambda: next((i for i in json.loads(http_get(incidents)[1])["incidents"]
                                      if i["subject"] == group and i["phase"] == "firing"),
                                     None), "a firing incident", timeout_s=30)
    assert (incident["id"], incident["silenced"], incident["severity"]) == (
        f"default/{group}/lag", True, "critical")
    wait_polls(watching.http.url, 3)
    assert (slack.calls, pagerduty.calls) == ([], [])


@pytest.fixture
def run_daemon() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    """Start ``lagwatch run`` processes; return (process, base URL)."""
    procs: list[subprocess.Popen[str]] = []

    def start(path: str) -> tuple[subprocess.Popen[str], str]:
        listen = f"127.0.0.1:{free_port()}"
        proc = subprocess.Popen([sys.executable, "-m", "lagwatch", "run", "-c", path,
                                 "--listen", listen], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc, f"http://{listen}"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sent(base: str, receiver: str, action: str) -> float | None:
    try:
        code, body = http_get(base + "/metrics")
    except urllib.error.URLError:  # not listening yet
        return None
    if code != 200:
        return None
    return value(parse(body.decode()), "lagwatch_notifications_sent_total",
                 receiver=receiver, action=action)


def test_after_kill_9_between_trigger_and_resolve_the_resolve_arrives_and_nothing_retriggers(
        run_daemon: Callable[..., tuple[subprocess.Popen[str], str]],
        config_file: Callable[..., str], make_topic: Callable[..., str],
        kafka_bootstrap: str, unique: Callable[[str], str], slack: FakeSlack,
        pagerduty: FakePagerDuty, alerting: Callable[[str], dict[str, Any]]) -> None:
    # Given a stopped group that has paged
    topic, group = stopped_group(make_topic, kafka_bootstrap, unique, "alert-crash")
    path = config_file(group, detection=DETECTION, alerting=alerting(group))
    proc, base = run_daemon(path)
    wait_for(lambda: sent(base, "team-pd", "trigger") == 1
             and sent(base, "team-slack", "trigger") == 1, "both triggers sent", timeout_s=45)
    # When lagwatch is killed, the group catches up meanwhile, and lagwatch starts again
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    commit(kafka_bootstrap, group, topic, {0: 30})
    proc, base = run_daemon(path)
    # Then the resolve arrives, and the trigger is not sent again
    wait_for(lambda: pagerduty.events("resolve") and slack.updates(),
             "the resolve after the restart", timeout_s=45)
    wait_polls(base, 3)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    assert [c.body["text"] for c in slack.posts()] == [
        f"[CRITICAL] {group} is stopped (default)", f"[RESOLVED] {group} is stopped (default)"]
    assert len(slack.updates()) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


def test_an_unreachable_cluster_raises_one_incident_and_resolves_no_group(
        config_file: Callable[..., str],
        run_daemon: Callable[..., tuple[subprocess.Popen[str], str]],
        slack: FakeSlack, pagerduty: FakePagerDuty, alerting: Callable[[str], dict[str, Any]],
        unique: Callable[[str], str]) -> None:
    with LocalKafka() as broker:
        # Given a stopped group on a broker of its own, paged
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        from kafka import KafkaProducer
        from kafka.admin import NewTopic
        topic, group = unique("down-topic"), unique("alert-down")
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for k in range(30):
            producer.send(topic, b"m%d" % k, partition=0)
        producer.flush()
        producer.close()
        commit(broker.bootstrap, group, topic, {0: 20})
        path = config_file(group, bootstrap=broker.bootstrap, detection=DETECTION,
                           alerting=alerting(group))
        _, base = run_daemon(path)
        wait_for(lambda: pagerduty.events("trigger"), "the group's trigger", timeout_s=45)
        # When the broker is down: unreachable, paged, then 6 more polls (each 1 s apart or
        # more, and each failing slowly: past resolve_after, 3 s, so a wrong resolve of the
        # group would show)
        broker.stop(keep_data=True)
        wait_for(lambda: pagerduty.events("trigger")[1:], "the outage's trigger", timeout_s=60)
        wait_polls(base, 6, timeout_s=180)
        down_events = [(e["event_action"], e["dedup_key"]) for e in pagerduty.events()]
        # And comes back
        broker.start()
        wait_for(lambda: pagerduty.events("resolve"), "the outage's resolve", timeout_s=60)
        wait_polls(base, 3)
    # Then one cluster_unreachable incident, and the group was never resolved
    assert down_events == [("trigger", DEDUP.format(group=group)),
                           ("trigger", "lagwatch/default//cluster_unreachable")]
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events()] == [
        *down_events, ("resolve", "lagwatch/default//cluster_unreachable")]
    assert pagerduty.open == {DEDUP.format(group=group)}
