"""The alerter with replicas sharing the watching: a shard's incidents taken over, held
through the new owner's warm-up, resolved once; a shard lost, its rows handed over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.config import AlertingConfig, SilenceConfig
from lagwatch.alerting.incidents import Incident, Phase, Signal
from lagwatch.alerting.outbox import Outbox
from lagwatch.alerting.sharing import Handed, NotSharedError
from lagwatch.status import Severity
from tests.unit.test_alerting import signal

ID = "prod/billing/lag"
CONFIG = AlertingConfig.model_validate({
    "for": "1m", "resolve_after": "2m", "min_firing": "1s",
    "receivers": [{"name": "pd", "pagerduty": {"routing_key": "R1"}},
                  {"name": "slack", "slack": {"token": "xoxb-1", "channel": "#sre"}}],
    "default_receivers": ["pd", "slack"]})


class TwoShards:
    """Every incident in shard 1; what the test says is held and was handed."""

    def __init__(self) -> None:
        self.held_now: frozenset[int] = frozenset()
        self.left: dict[int, dict[str, Handed]] = {}
        self.published: list[tuple[int, str, Handed]] = []

    def shard(self, _signal: Signal) -> int | None:
        return 1

    def held(self) -> frozenset[int]:
        return self.held_now

    def handed(self, shard: int) -> Mapping[str, Handed]:
        return self.left.get(shard, {})

    def publish(self, shard: int, incident_id: str, handed: Handed) -> None:
        self.published.append((shard, incident_id, handed))

    def flush(self) -> None:
        pass

    def incidents(self) -> list[Incident]:
        return []

    def silences(self) -> Mapping[str, SilenceConfig]:
        return {}

    def save_silence(self, silence_id: str, silence: SilenceConfig | None) -> None:
        raise NotSharedError("not in these tests")


def stalled() -> Signal:
    return replace(signal(), group="billing")


def firing() -> Incident:
    return Incident(stalled(), Phase.FIRING, first_seen=0.0, fired_at=60.0,
                    notified={"pd": (60.0, Severity.CRITICAL),
                              "slack": (60.0, Severity.CRITICAL)})


def actions(outbox: Outbox) -> list[tuple[str, str, str, str]]:
    return [(r, i, a, s) for r, i, a, s, _ in outbox.rows()]


def test_a_taken_over_incident_keeps_firing_through_warm_up_and_resolves_once() -> None:
    # Given a shard whose former owner paged pd and had a Slack trigger still to deliver
    sharing, outbox = TwoShards(), Outbox(None)
    sharing.left[1] = {ID: Handed(firing(), (("slack", "trigger", '{"m": 1}'),),
                                  {"pd": {"dedup": "x"}})}
    alerter = Alerter(CONFIG, outbox, sharing)
    # When this replica holds the shard, first with no history of the group
    sharing.held_now = frozenset({1})
    for now in range(1000, 1400, 15):
        alerter._evaluate("prod", [], float(now), reachable=True,
                          unjudged=frozenset({"billing"}))
    # Then the incident is adopted and held: the Slack trigger left over is queued, nothing
    # else is sent, and the receipts are kept
    assert actions(outbox) == [("slack", ID, "trigger", "pending")]
    assert outbox.receipt("pd", ID) == {"dedup": "x"}
    assert alerter.book.open[stalled().key].phase is Phase.FIRING
    # When the group is judged stalled, then fine
    for now in range(1400, 1500, 15):
        alerter._evaluate("prod", [stalled()], float(now), reachable=True)
    for now in range(1500, 1700, 15):
        alerter._evaluate("prod", [], float(now), reachable=True)
    # Then no trigger is sent again, and each receiver told hears one resolve
    assert actions(outbox) == [("slack", ID, "trigger", "pending"),
                               ("pd", ID, "resolve", "pending"),
                               ("slack", ID, "resolve", "pending")]
    # and every change went to the shard, the last one the resolve still to deliver
    shard, incident_id, last = sharing.published[-1]
    assert (shard, incident_id, last.incident) == (1, ID, None)
    assert [(r, a) for r, a, _ in last.pending] == [
        ("slack", "trigger"), ("pd", "resolve"), ("slack", "resolve")]


def test_a_lost_shard_s_incidents_are_dropped_and_its_rows_handed_over() -> None:
    sharing, outbox = TwoShards(), Outbox(None)
    alerter = Alerter(CONFIG, outbox, sharing)
    sharing.held_now = frozenset({1})
    for now in range(0, 90, 15):
        alerter._evaluate("prod", [stalled()], float(now), reachable=True)
    assert [a for _, _, a, _ in actions(outbox)] == ["trigger", "trigger"]
    row = outbox.head("pd")
    assert row is not None and row.shard == 1 and alerter._may_send(row)
    # When the lease no longer holds the shard (paused past the session timeout)
    sharing.held_now = frozenset()
    # Then its rows may not be sent, and at the next evaluation they are handed over
    assert not alerter._may_send(row)
    published = len(sharing.published)
    alerter._evaluate("prod", [stalled()], 90.0, reachable=True)
    assert [s for _, _, _, s in actions(outbox)] == ["handed", "handed"]
    assert alerter.book.open == {}
    assert len(sharing.published) == published  # nothing written for a shard not held
