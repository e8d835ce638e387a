"""Delivery through the real client libraries to local servers that answer as Slack and
PagerDuty do: the outbox, one worker per receiver, retries and what is never retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka_local import free_port

from lagwatch.alerting.config import PagerDutyConfig, RetryConfig, SlackConfig, WebhookConfig
from lagwatch.alerting.incidents import Action
from lagwatch.alerting.message import Message
from lagwatch.alerting.outbox import Outbox
from lagwatch.alerting.receivers.pagerduty import PagerDutyReceiver
from lagwatch.alerting.receivers.slack import SlackReceiver
from lagwatch.alerting.receivers.webhook import WebhookReceiver
from lagwatch.alerting.worker import DeliveryStats, Receiver, Worker
from lagwatch.cli import main
from tests.fake_apis import (
    Failure,
    FakePagerDuty,
    FakeSlack,
    rate_limited,
    serving,
    slack_error,
)
from tests.integration.helpers import wait_for
from tests.tls import self_signed, server_context

FAST = RetryConfig(initial_delay=0.05, max_delay=0.2, max_attempts=5, max_age=60)


def message(action: Action, incident: str = "prod/billing/lag",
            title: str = "billing is stalled") -> Message:
    return Message(incident, "prod", incident.split("/")[1], "lag", str(action), "critical",
                   title, ("orders[1] stuck at offset 40,000 for 6m with 20,000 waiting",),
                   (("lag", "20,000 messages"), ("time lag", "6m")),
                   (("Runbook", "https://runbooks.example/lag"),), 1_790_000_000.0)


class Line:
    """An outbox and one worker delivering to one receiver."""

    def __init__(self, receiver: Receiver, min_interval_s: float = 0.0) -> None:
        self.outbox = Outbox(None)
        self.stats = DeliveryStats()
        self.worker = Worker(receiver, self.outbox, self.stats, FAST, min_interval_s)
        self.worker.start()

    def send(self, *messages: Message) -> float:
        """Queue messages as the poll thread does; return how long queueing took."""
        started = time.monotonic()
        self.outbox.record([], [(self.worker.receiver.name, m.incident, m.action,
                                 m.to_json(), None) for m in messages], time.time())
        self.worker.wake.set()
        return time.monotonic() - started

    def states(self) -> list[tuple[str, str, str, str, int]]:
        return self.outbox.rows()

    def settled(self) -> bool:
        return all(state != "pending" for *_, state, _ in self.states())


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serving(FakeSlack()) as api:
        yield api  # type: ignore[misc]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def pagerduty(certificate: tuple[Path, Path]) -> Iterator[FakePagerDuty]:
    with serving(FakePagerDuty(server_context(*certificate))) as api:
        yield api  # type: ignore[misc]


def slack_line(api: FakeSlack, min_interval_s: float = 0.0) -> Line:
    config = SlackConfig(token="xoxb-test", channel="#kafka-alerts", base_url=api.api_url)
    return Line(SlackReceiver("slack-sre", config), min_interval_s)


def test_slack_trigger_posts_and_resolve_updates_it_and_replies_in_its_thread(
        slack: FakeSlack) -> None:
    line = slack_line(slack)
    line.send(message(Action.TRIGGER), message(Action.RESOLVE))
    wait_for(line.settled, "both notifications delivered")
    first, reply = slack.posts()
    update, = slack.updates()
    assert first.body["channel"] == "#kafka-alerts"
    assert first.body["text"] == "[CRITICAL] billing is stalled (prod)"
    blocks = first.body["blocks"]
    assert blocks[1]["text"]["text"] == (
        "• orders[1] stuck at offset 40,000 for 6m with 20,000 waiting")
    assert blocks[2]["fields"][0]["text"] == "*lag*\n20,000 messages"
    assert "<https://runbooks.example/lag|Runbook>" in blocks[3]["elements"][0]["text"]
    assert first.headers["authorization"] == "Bearer xoxb-test"
    assert (update.body["channel"], update.body["ts"]) == (FakeSlack.CHANNEL_ID,
                                                           "1790000000.000001")
    assert update.body["text"] == "[RESOLVED] billing is stalled (prod)"
    assert (reply.body["thread_ts"], reply.body["text"]) == (
        "1790000000.000001", "[RESOLVED] billing is stalled (prod)")
    assert line.stats.snapshot()[0] == {("slack-sre", "trigger"): 1,
                                        ("slack-sre", "resolve"): 1}


def test_a_slack_incoming_webhook_gets_each_notification_as_a_new_message(
        slack: FakeSlack) -> None:
    hook = f"{slack.url}/services/T0/B0/secret"
    line = Line(SlackReceiver("hook", SlackConfig(webhook_url=hook)))
    line.send(message(Action.TRIGGER), message(Action.RESOLVE))
    wait_for(line.settled, "both delivered")
    assert [(c.path, c.body["text"]) for c in slack.accepted()] == [
        ("/services/T0/B0/secret", "[CRITICAL] billing is stalled (prod)"),
        ("/services/T0/B0/secret", "[RESOLVED] billing is stalled (prod)")]
    assert slack.accepted()[0].body["blocks"][0]["type"] == "section"


def test_slack_429_is_waited_out_without_blocking_the_poll_thread_and_order_is_kept(
        slack: FakeSlack) -> None:
    # Given Slack rate-limits the first request for 1 s
    slack.fail_next(rate_limited(retry_after_s=1))
    line = slack_line(slack, min_interval_s=0.0)
    # When three incidents trigger in one poll
    queued_in = line.send(*(message(Action.TRIGGER, f"prod/g{k}/lag", f"g{k} is stalled")
                            for k in range(3)))
    wait_for(line.settled, "three messages delivered", timeout_s=20)
    # Then queueing did not wait for Slack, the first went out after the Retry-After,
    # and they arrived in order
    assert queued_in < 0.5
    limited, *posts = [c for c in slack.calls if c.path.endswith("chat.postMessage")]
    assert limited.status == 429
    assert [c.body["text"] for c in posts] == [
        f"[CRITICAL] g{k} is stalled (prod)" for k in range(3)]
    assert posts[0].at - limited.at >= 1.0


def test_slack_sends_at_most_one_message_per_second_to_a_channel(slack: FakeSlack) -> None:
    line = slack_line(slack, min_interval_s=1.0)
    line.send(*(message(Action.TRIGGER, f"prod/g{k}/lag") for k in range(3)))
    wait_for(line.settled, "three messages delivered", timeout_s=20)
    times = [c.at for c in slack.posts()]
    assert len(times) == 3
    assert min(b - a for a, b in pairwise(times)) >= 0.95


def test_slack_channel_not_found_is_not_retried_and_is_logged_once_naming_the_channel(
        slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    slack.fail_next(slack_error("channel_not_found"), slack_error("channel_not_found"))
    line = slack_line(slack)
    with caplog.at_level(logging.ERROR, logger="lagwatch.alerting.worker"):
        line.send(message(Action.TRIGGER, "prod/a/lag"), message(Action.TRIGGER, "prod/b/lag"))
        wait_for(line.settled, "both given up")
    assert len(slack.calls) == 2  # one attempt each
    assert [s for *_, s, _ in line.states()] == ["failed", "failed"]
    assert line.stats.snapshot()[1] == {("slack-sre", "channel_not_found"): 2}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["slack-sre: trigger prod/a/lag not delivered, not retryable: Slack "
                      "chat_postMessage to channel #kafka-alerts failed: channel_not_found"]


def pagerduty_line(api: FakePagerDuty, ca_file: Path) -> Line:
    config = PagerDutyConfig(routing_key="R0UTINGKEY", base_url=api.url, ca_file=str(ca_file))
    return Line(PagerDutyReceiver("pd", config))


def test_pagerduty_500_three_times_then_202_leaves_exactly_one_incident_open(
        pagerduty: FakePagerDuty, certificate: tuple[Path, Path]) -> None:
    pagerduty.fail_next(*[Failure(500, {"status": "error"})] * 3)
    line = pagerduty_line(pagerduty, certificate[0])
    line.send(message(Action.TRIGGER))
    wait_for(line.settled, "the trigger delivered", timeout_s=20)
    assert [c.status for c in pagerduty.calls] == [500, 500, 500, 202]
    assert pagerduty.open == {"lagwatch/prod/billing/lag"}
    event, = pagerduty.events("trigger")
    assert event["routing_key"] == "R0UTINGKEY"
    assert event["payload"]["summary"] == "[CRITICAL] billing is stalled (prod)"
    assert (event["payload"]["severity"], event["payload"]["source"]) == ("critical",
                                                                          "lagwatch/prod")
    assert line.states() == [("pd", "prod/billing/lag", "trigger", "sent", 4)]


def test_pagerduty_resolve_uses_the_same_dedup_key(pagerduty: FakePagerDuty,
                                           certificate: tuple[Path, Path]) -> None:
    line = pagerduty_line(pagerduty, certificate[0])
    line.send(message(Action.TRIGGER), message(Action.RESOLVE))
    wait_for(line.settled, "both delivered")
    assert [e["dedup_key"] for e in pagerduty.events()] == ["lagwatch/prod/billing/lag"] * 2
    assert pagerduty.open == set()


def test_pagerduty_400_is_not_retried_and_is_counted(pagerduty: FakePagerDuty,
                                           certificate: tuple[Path, Path]) -> None:
    pagerduty.fail_next(Failure(400, {"status": "invalid event"}))
    line = pagerduty_line(pagerduty, certificate[0])
    line.send(message(Action.TRIGGER))
    wait_for(line.settled, "the trigger given up")
    assert len(pagerduty.calls) == 1
    assert line.stats.snapshot()[1] == {("pd", "http_400"): 1}


def test_pagerduty_that_keeps_failing_is_given_up_after_max_attempts(
        pagerduty: FakePagerDuty, certificate: tuple[Path, Path]) -> None:
    pagerduty.fail_next(*[Failure(503, {})] * 10)
    line = pagerduty_line(pagerduty, certificate[0])
    line.send(message(Action.TRIGGER))
    wait_for(line.settled, "the trigger given up", timeout_s=20)
    assert len(pagerduty.calls) == FAST.max_attempts
    assert line.stats.snapshot()[1] == {("pd", "http_503"): 1}


def test_webhook_posts_json_signed_with_hmac(slack: FakeSlack) -> None:
    # the fake Slack server answers any path with 200, which is all a webhook needs
    line = Line(WebhookReceiver("hook", WebhookConfig(url=f"{slack.url}/hook",
                                                      hmac_secret="s3cret")))
    line.send(message(Action.TRIGGER))
    wait_for(line.settled, "the webhook delivered")
    call, = slack.calls
    body: dict[str, Any] = dict(call.body)
    raw = json.dumps(body, separators=(",", ":")).encode()
    expected = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert call.headers["x-lagwatch-signature"] == expected
    assert (body["action"], body["incident"], body["version"]) == ("trigger",
                                                                    "prod/billing/lag", 1)
    assert call.headers["idempotency-key"] == body["idempotency_key"]
    assert re.fullmatch(r"prod/billing/lag#[0-9a-f]{16}", body["idempotency_key"])


def test_test_notify_reports_each_receiver_and_exits_1_when_one_fails(
        slack: FakeSlack, pagerduty: FakePagerDuty, certificate: tuple[Path, Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given three receivers, one of which listens nowhere
    dead = f"http://127.0.0.1:{free_port()}/hook"
    path = tmp_path / "lagwatch.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "prod", "bootstrap_servers": ["127.0.0.1:9092"]}],
        "alerting": {"receivers": [
            {"name": "team-slack", "slack": {"token": "xoxb-test", "channel": "#kafka",
                                             "base_url": slack.api_url}},
            {"name": "team-pd", "pagerduty": {"routing_key": "R0UTINGKEY",
                                              "base_url": pagerduty.url,
                                              "ca_file": str(certificate[0])}},
            {"name": "dead-hook", "webhook": {"url": dead}}]}}))
    # When
    code = main(["test-notify", "-c", str(path)])
    # Then
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[:2] == ["team-slack: ok (#kafka)", f"team-pd: ok ({pagerduty.url})"]
    assert out[2].startswith(f"dead-hook: failed: webhook {dead}: <urlopen error ")
    assert [c.body["text"] for c in slack.posts()] == [
        "[WARNING] lagwatch test notification (lagwatch)"]
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]
    assert pagerduty.open == set()
    # And one receiver by name, or a name that does not exist
    assert main(["test-notify", "-c", str(path), "--receiver", "team-slack"]) == 0
    assert main(["test-notify", "-c", str(path), "--receiver", "nope"]) == 3
    assert capsys.readouterr().err == ("lagwatch: alerting.receivers: no receiver is named "
                                       "'nope' (receivers: team-slack, team-pd, dead-hook)\n")
