"""Alerting's pure parts: config errors, routing, signals, messages, retry, the outbox."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from pathlib import Path

import pytest

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.config import AlertingConfig, RetryConfig
from lagwatch.alerting.incidents import IncidentKey, Signal
from lagwatch.alerting.message import Message, render_links
from lagwatch.alerting.outbox import Outbox, Row
from lagwatch.alerting.receivers.pagerduty import dedup_key, payload
from lagwatch.alerting.receivers.slack import blocks_for
from lagwatch.alerting.retry import DeliveryError, http_error, next_attempt
from lagwatch.alerting.signals import signals
from lagwatch.report.view import build_report
from lagwatch.simulate import Scenario, replay, report_alone
from lagwatch.status import Severity
from tests.unit.test_config import error_of

HEAD = """
clusters: [{name: prod, bootstrap_servers: ["k:9092"]}]
alerting:
"""
RECEIVERS = """
  receivers:
    - {name: slack-sre, slack: {token: xoxb-1, channel: "#sre"}}
    - {name: pd, pagerduty: {routing_key: R1}}
"""


@pytest.mark.parametrize(("alerting", "message"), [
    (RECEIVERS + "  default_receivers: [nobody]",
     "alerting: default_receivers: no receiver is named 'nobody'"),
    (RECEIVERS + "  routes: [{match: {group: billing}, receivers: [pd, pager]}]",
     "alerting: routes[0].receivers: no receiver is named 'pager'"),
    ("  receivers: [{name: x, slack: {token: t}}]",
     "alerting.receivers[0].slack: channel is required with a bot token"),
    ("  receivers: [{name: x, slack: {channel: c}}]",
     "alerting.receivers[0].slack: set either token (or token_file) with channel, or "
     "webhook_url (or webhook_url_file)"),
    ("  receivers: [{name: x, pagerduty: {routing_key: k}, webhook: {url: 'http://h'}}]",
     "alerting.receivers[0]: receiver 'x' needs exactly one of slack, pagerduty or webhook"),
    ("  receivers: [{name: x, pagerduty: {routing_key: k, base_url: 'http://pd'}}]",
     "alerting.receivers[0].pagerduty.base_url: String should match pattern '^https://'"),
    ("  links: {dashboard: 'https://g/d?var-topic={topic}'}",
     "alerting.links.dashboard: template 'https://g/d?var-topic={topic}' uses 'topic'; "
     "the fields are {cluster}, {group}, {subject} and {kind}"),
    ("  silences: [{match: {group: billing}, ends: '2026-12-01T00:00:00'}]",
     "alerting.silences[0].ends: needs a time zone, e.g. 2026-11-27T22:00:00Z"),
    ("  for: soon", "alerting.for: invalid duration 'soon': use 500ms, 30s, 5m, 1h or seconds"),
    ("  routes: [{match: {kind: '('}, receivers: [x]}]",
     "alerting.routes[0].match.kind: invalid regex '(': missing ): ( (patterns are RE2, as "
     "in Prometheus: no backreferences or lookaround)"),
])
def test_alerting_config_errors_name_the_key(tmp_path: Path, alerting: str,
                                             message: str) -> None:
    assert error_of(tmp_path, HEAD + alerting) == message


def signal(kind: str = "lag", group: str = "billing",
           severity: Severity = Severity.CRITICAL) -> Signal:
    return Signal(IncidentKey("prod", group, kind), severity, f"{group} is stalled")


def test_routes_take_the_first_match_unless_told_to_continue() -> None:
    config = AlertingConfig.model_validate({
        "receivers": [{"name": n, "webhook": {"url": f"https://{n}"}}
                      for n in ("pager", "payments", "sre")],
        "routes": [{"match": {"group": "payments-.*"}, "receivers": ["payments"],
                    "continue_matching": True, "repeat_interval": "30m"},
                   {"severity": "critical", "receivers": ["pager"]},
                   {"match": {"kind": "skewed|rebalancing"}, "receivers": ["sre"]}],
        "default_receivers": ["sre"]})
    route = config.route
    assert route(signal(group="payments-api")).receivers == ("payments", "pager")
    assert route(signal(group="payments-api")).repeat_interval_s == 1800.0
    assert route(signal(group="billing")).receivers == ("pager",)
    assert route(signal("skewed", severity=Severity.WARNING)).receivers == ("sre",)
    assert route(signal(severity=Severity.WARNING)).receivers == ("sre",)  # the default
    assert route(signal(severity=Severity.WARNING)).repeat_interval_s == 4 * 3600.0
    assert route(signal(group="payments")).receivers == ("pager",)  # patterns are anchored


def test_a_stalled_group_gives_one_lag_signal_with_its_numbers() -> None:
    # Given a group whose partition 1 of 3 got stuck at minute 20, judged at minute 30
    scenario = Scenario(partitions=3, events={1200.0: lambda s: s.stick(1)})
    *_, report = replay(scenario.run(1800))
    # When
    found = signals(report)
    # Then one signal per kind, each carrying every line of the group, its own first
    stuck = "orders[1] stuck at offset 40,000 for 10m with 20,000 messages waiting"
    skew = ("orders[1] holds 100% of the lag on orders (20,000 of 20,000 messages); its 2 "
            "sibling partitions hold at most 0 each")
    facts = (("status", "stalled"), ("lag", "20,000 messages"), ("time lag", "10m"),
             ("consume / produce", "100.0 / 100.0 msg/s"), ("catch-up ETA", "not catching up"),
             ("members", "1"))
    assert found == [
        Signal(IncidentKey("sim", "billing", "lag"), Severity.CRITICAL, "billing is stalled",
               (stuck, skew), facts, "billing"),
        Signal(IncidentKey("sim", "billing", "skewed"), Severity.WARNING, "billing: skewed",
               (skew, stuck), facts, "billing")]


def test_an_unreachable_cluster_gives_only_its_own_signal() -> None:
    scenario = Scenario()
    report = report_alone(next(iter(scenario.run(0))))
    down = build_report(type(report.snapshot)("sim", 1.0, 0.1, up=False), report, None)
    assert [s.key for s in signals(down)] == [IncidentKey("sim", "", "cluster_unreachable")]
    assert signals(down)[0].lines == ("no successful poll",)


def message(action: str = "trigger", title: str = "billing is stalled") -> Message:
    return Message("prod/billing/lag", "prod", "billing", "lag", action, "critical", title,
                   ("orders[1] stuck <at> offset 40",), (("lag", "20 messages"),),
                   (("Dashboard", "https://g/d?g=billing"),), 0.0)


def test_headlines_say_severity_or_resolved_and_repeats_say_so() -> None:
    assert message().headline() == "[CRITICAL] billing is stalled (prod)"
    assert message("repeat").headline() == "[CRITICAL] billing is stalled (prod) - still firing"
    assert message("escalate").headline() == "[CRITICAL] billing is stalled (prod) - escalated"
    assert message("resolve").headline() == "[RESOLVED] billing is stalled (prod)"
    assert Message.from_json(message().to_json()) == message()


def test_slack_blocks_escape_text_and_drop_the_details_on_resolve() -> None:
    assert blocks_for(message()) == [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": ":red_circle: *[CRITICAL] billing is stalled "
                                             "(prod)*"}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": "• orders[1] stuck &lt;at&gt; offset 40"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*lag*\n20 messages"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
                                          "<https://g/d?g=billing|Dashboard> · incident "
                                          "`prod/billing/lag`"}]}]
    assert [b["type"] for b in blocks_for(message("resolve"))] == ["section", "context"]


def test_links_quote_their_values() -> None:
    config = AlertingConfig.model_validate({"links": {
        "dashboard": "https://grafana/d/lagwatch?var-cluster={cluster}&var-group={group}",
        "runbook": "https://wiki/runbooks/{kind}"}})
    assert render_links(config.links, "prod eu", "a/b", "lag", "a/b") == (
        ("Dashboard", "https://grafana/d/lagwatch?var-cluster=prod%20eu&var-group=a%2Fb"),
        ("Runbook", "https://wiki/runbooks/lag"))


def test_pagerduty_payload_keeps_to_the_api_limits() -> None:
    long = message(title="x" * 2000)
    assert len(payload(long)["summary"]) == 1024
    assert payload(long)["summary"].endswith("…")
    assert payload(message())["severity"] == "critical"
    key = dedup_key("prod/" + "g" * 300 + "/lag")
    assert len(key) == 255
    assert key == dedup_key("prod/" + "g" * 300 + "/lag")
    assert dedup_key("prod/billing/lag") == "lagwatch/prod/billing/lag"


POLICY = RetryConfig(initial_delay=1.0, max_delay=60.0, max_attempts=5, max_age=600.0)


@pytest.mark.parametrize(("error", "attempts", "now", "expected"), [
    (http_error(503, "x"), 1, 100.0, 101.0),  # full delay at rand() = 1
    (http_error(503, "x"), 3, 100.0, 104.0),  # 1 s doubled twice
    (http_error(503, "x"), 9, 100.0, None),  # over max_attempts
    (http_error(429, "x", "30"), 1, 100.0, 130.0),  # Retry-After is a floor
    (http_error(502, "x"), 4, 595.0, None),  # would pass max_age
    (http_error(400, "x"), 1, 100.0, None),  # never retried
    (DeliveryError("channel_not_found", "x", retryable=False), 1, 100.0, None),
])
def test_retries_back_off_within_attempts_and_age(error: DeliveryError, attempts: int,
                                                  now: float, expected: float | None) -> None:
    decision = next_attempt(error, attempts, 0.0, now, policy=POLICY, rand=lambda: 1.0)
    assert decision.at == expected


def test_the_outbox_keeps_the_book_and_pending_rows_across_a_restart(tmp_path: Path) -> None:
    # Given an outbox with two rows, the first delivered
    path = tmp_path / "state.sqlite"
    outbox = Outbox(path)
    outbox.record([{"any": "book"}], [("pd", "prod/a/lag", "trigger", "{}", None),
                                      ("pd", "prod/b/lag", "trigger", "{}", None)], 10.0)
    first = outbox.head("pd")
    assert first is not None
    outbox.sent(first, {"ts": "1.1"})
    outbox.close()
    # When it is opened again
    again = Outbox(path)
    # Then the book, the receipt and the pending row are there, in order
    assert again.book() == [{"any": "book"}]
    assert again.receipt("pd", "prod/a/lag") == {"ts": "1.1"}
    head = again.head("pd")
    assert head is not None and head.incident == "prod/b/lag"
    assert again.pending() == {"pd": (1, 10.0)}


def test_a_notification_keeps_its_idempotency_key_when_another_replica_takes_it_over() -> None:
    # Given a replica's outbox with a notification of one incident, then two of another
    mine = Outbox(None)
    mine.record([], [("hook", "prod/x/lag", "trigger", '{"at": 1}', 3),
                     ("hook", "prod/a/lag", "trigger", '{"at": 5}', 3),
                     ("hook", "prod/a/lag", "repeat", '{"at": 9}', 3)], 10.0)
    # When the shard's new owner queues the last two from the state topic
    theirs = Outbox(None)
    theirs.take_over("prod/a/lag", 3, [("hook", "trigger", '{"at": 5}'),
                                        ("hook", "repeat", '{"at": 9}')], {}, 20.0)
    sent, resent = _rows(mine), _rows(theirs)
    # Then, under other row ids, a receiver gets the same key for the same notification
    assert [r.id for r in resent] != [r.id for r in sent[1:]]
    assert [r.idempotency_key for r in resent] == [r.idempotency_key for r in sent[1:]]
    assert re.fullmatch(r"prod/a/lag#[0-9a-f]{16}", resent[0].idempotency_key)
    # and another key for every other notification
    assert len({r.idempotency_key for r in sent}) == 3


def _rows(outbox: Outbox) -> list[Row]:
    """Every pending row of an outbox, oldest first (delivering each as it goes)."""
    taken = []
    while (row := outbox.head("hook")) is not None:
        taken.append(row)
        outbox.sent(row, {})
    return taken


def test_an_unusable_state_file_falls_back_to_memory(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    outbox = Outbox(blocker / "state.sqlite")
    assert outbox.path is None
    outbox.record([], [("pd", "i", "trigger", json.dumps({}), None)], 1.0)
    assert outbox.pending() == {"pd": (1, 1.0)}
    assert "notifications are kept in memory" in caplog.text


def test_incidents_are_logged_as_they_fire_change_and_resolve_without_any_receiver(
        caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(AlertingConfig.model_validate({"for": "1m", "resolve_after": "2m",
                                                     "min_firing": "1s"}), Outbox(None))
    caplog.set_level(logging.INFO, logger="lagwatch.alerting.alerter")
    stalled = signal()
    warning = Signal(stalled.key, Severity.WARNING, "billing is lagging", ("orders[0] …",))
    for now, found in ((0, [stalled]), (30, [stalled]), (60, [stalled]), (90, [warning]),
                       (120, []), (250, [])):
        alerter._evaluate("prod", found, float(now), reachable=True)
    assert [r.getMessage() for r in caplog.records] == [
        "incident prod/billing/lag firing (critical): billing is stalled",
        "incident prod/billing/lag firing (warning): billing is lagging; orders[0] …",
        "incident prod/billing/lag resolved"]


def test_a_state_file_damaged_mid_file_moves_the_outbox_to_memory_keeping_what_it_can(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Given an outbox on a file that another connection (the history's) also writes
    path = tmp_path / "lagwatch.sqlite"
    outbox = Outbox(path)
    outbox.save_silence("s1", '{"match": {}}')
    for n in range(50):
        outbox.record([{"incident": n}], [("hook", f"inc-{n}", "trigger", "x" * 500, None)], 1.0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # When the file's pages after the first are overwritten, and the other connection
    # writes (so the outbox reads the file again)
    with path.open("r+b") as file:
        file.seek(4096)
        file.write(bytes(range(256)) * ((path.stat().st_size - 4096) // 256))
    other.execute("CREATE TABLE history (x)")
    other.close()
    # Then the next record does not fail: it goes to memory, says so, and is delivered
    with caplog.at_level(logging.ERROR, logger="lagwatch.alerting.outbox"):
        outbox.record([{"incident": "new"}], [("hook", "new", "trigger", "m", None)], 2.0)
    assert (outbox.path, outbox.failing) == (None, "database disk image is malformed")
    assert caplog.messages == [
        f"cannot use {path} (database disk image is malformed); notifications are kept in "
        "memory from now on (with nothing it held: no table could be read), and a restart "
        "loses what is pending"]
    head = outbox.head("hook")
    assert head is not None and head.incident == "new"
    assert outbox.book() == [{"incident": "new"}]
