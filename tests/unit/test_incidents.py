"""The incident lifecycle, evaluation by evaluation, with an injected clock (15 s apart)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from lagwatch.alerting.incidents import (
    UNREACHABLE,
    Action,
    IncidentBook,
    IncidentKey,
    Phase,
    Route,
    Signal,
    Timings,
)
from lagwatch.status import Severity

BILLING = IncidentKey("prod", "billing", "lag")
DOWN = IncidentKey("prod", "", UNREACHABLE)
STEP_S = 15.0


def stalled(severity: Severity = Severity.CRITICAL) -> Signal:
    return Signal(BILLING, severity, "billing is stalled", ("orders[1] stuck at offset 40",))


def to_slack(_signal: Signal) -> Route:
    return Route(("slack",), repeat_interval_s=3600.0)


class Clock:
    """Drives a book one evaluation at a time and records what it sent."""

    def __init__(self, book: IncidentBook | None = None,
                 route: Callable[[Signal], Route] = to_slack) -> None:
        self.book = book or IncidentBook(Timings(for_s=60, resolve_after_s=120,
                                                  min_firing_s=300))
        self.route = route
        self.now = 0.0
        self.sent: list[tuple[float, str, Action, str]] = []
        self.silenced: set[IncidentKey] = set()
        self.owned = True  # with ha: whether this replica owns the incidents' shard

    def run(self, seconds: float, signals: Iterable[Signal] = (),
            reachable: bool = True) -> None:
        signals = list(signals)
        end = self.now + seconds
        while self.now < end:
            for n in self.book.evaluate("prod", signals, self.now, reachable=reachable,
                                        route=self.route, silenced=self.silenced.__contains__,
                                        owned=lambda _s: self.owned):
                self.sent.append((self.now, n.receiver, n.action, n.incident.key.id))
            self.now += STEP_S


def test_a_signal_fires_once_after_its_for_duration_and_repeats_on_its_interval() -> None:
    clock = Clock()
    clock.run(3 * 3600, [stalled()])
    assert clock.sent == [(60.0, "slack", Action.TRIGGER, "prod/billing/lag"),
                          (3660.0, "slack", Action.REPEAT, "prod/billing/lag"),
                          (7260.0, "slack", Action.REPEAT, "prod/billing/lag")]


def test_a_signal_gone_before_its_for_duration_tells_nobody() -> None:
    clock = Clock()
    clock.run(45, [stalled()])
    clock.run(600)
    assert clock.sent == []
    assert clock.book.open == {}


def test_resolve_waits_for_the_clear_time_and_the_minimum_firing_time() -> None:
    # Given an incident that fired at 60 s and cleared at 120 s
    clock = Clock()
    clock.run(120, [stalled()])
    clock.run(600)
    # Then it resolves once at 360 s: fired at 60 s plus the 300 s minimum firing time
    assert clock.sent == [(60.0, "slack", Action.TRIGGER, "prod/billing/lag"),
                          (360.0, "slack", Action.RESOLVE, "prod/billing/lag")]
    assert clock.book.open == {}


def test_lag_flapping_around_the_boundary_fires_once_and_resolves_once() -> None:
    clock = Clock()
    for _ in range(10):  # 2 min over, 1 min under, for 30 minutes
        clock.run(120, [stalled()])
        clock.run(60)
    clock.run(600)
    assert clock.sent == [(60.0, "slack", Action.TRIGGER, "prod/billing/lag"),
                          (1860.0, "slack", Action.RESOLVE, "prod/billing/lag")]
    # 1860 s: the clear time (120 s) after the last flap ended at 1740 s


def test_rising_severity_escalates_and_reaches_receivers_of_the_higher_severity() -> None:
    def by_severity(signal: Signal) -> Route:
        pager = ("pagerduty",) if signal.severity is Severity.CRITICAL else ()
        return Route(("slack", *pager), repeat_interval_s=3600.0)
    clock = Clock(route=by_severity)
    clock.run(120, [stalled(Severity.WARNING)])
    clock.run(60, [stalled(Severity.CRITICAL)])
    assert clock.sent == [(60.0, "slack", Action.TRIGGER, "prod/billing/lag"),
                          (120.0, "slack", Action.ESCALATE, "prod/billing/lag"),
                          (120.0, "pagerduty", Action.TRIGGER, "prod/billing/lag")]


def test_an_unreachable_cluster_fires_once_and_group_incidents_neither_fire_nor_resolve(
        ) -> None:
    # Given a firing group incident, When the cluster is unreachable for 2 minutes
    clock = Clock()
    clock.run(600, [stalled()])
    down = Signal(DOWN, Severity.CRITICAL, "cluster prod is unreachable")
    clock.run(120, [down], reachable=False)
    # Then one cluster_unreachable trigger, and the group incident is still open
    assert [(t, a, i) for t, _, a, i in clock.sent] == [
        (60.0, Action.TRIGGER, "prod/billing/lag"),
        (660.0, Action.TRIGGER, "prod//cluster_unreachable")]
    assert clock.book.open[BILLING].phase is Phase.FIRING
    # When data returns and the group is fine, Then it resolves only after the clear time
    clock.run(300)
    assert [(t, i) for t, _, a, i in clock.sent if a is Action.RESOLVE] == [
        (840.0, "prod/billing/lag"), (960.0, "prod//cluster_unreachable")]


def test_a_clearing_interrupted_by_an_outage_starts_again_after_it() -> None:
    clock = Clock()
    clock.run(600, [stalled()])
    clock.run(105)  # cleared, not yet for 120 s
    clock.run(300, reachable=False)
    clock.run(120)  # 1005 s to 1110 s: clear for 105 s since the outage
    assert not [a for _, _, a, _ in clock.sent if a is Action.RESOLVE]
    clock.run(15)
    assert clock.sent[-1] == (1125.0, "slack", Action.RESOLVE, "prod/billing/lag")


def test_a_silenced_incident_notifies_nobody_until_the_silence_ends() -> None:
    clock = Clock()
    clock.silenced.add(BILLING)
    clock.run(300, [stalled()])
    assert clock.sent == []
    assert clock.book.open[BILLING].silenced
    clock.silenced.clear()
    clock.run(15, [stalled()])
    assert clock.sent == [(300.0, "slack", Action.TRIGGER, "prod/billing/lag")]


def test_an_incident_resolved_under_silence_still_resolves_where_it_was_told() -> None:
    clock = Clock()
    clock.run(300, [stalled()])
    clock.silenced.add(BILLING)
    clock.run(600)
    assert [a for _, _, a, _ in clock.sent] == [Action.TRIGGER, Action.RESOLVE]


def test_a_restored_book_does_not_trigger_again_and_resolves_when_cleared() -> None:
    clock = Clock()
    clock.run(300, [stalled()])
    restored = IncidentBook(clock.book.settings)
    restored.load(json.loads(json.dumps(clock.book.dump())))
    again = Clock(restored)
    again.now = clock.now
    again.run(300, [stalled()])
    again.run(300)
    assert [(a, i) for _, _, a, i in again.sent] == [(Action.RESOLVE, "prod/billing/lag")]


def test_signals_with_one_key_merge_into_the_worst_severity_and_every_line() -> None:
    clock = Clock()
    lagging = Signal(BILLING, Severity.WARNING, "billing is lagging", ("orders[0] slow",))
    clock.run(60, [lagging, stalled()])
    incident = clock.book.open[BILLING]
    assert (incident.signal.severity, incident.signal.lines) == (
        Severity.CRITICAL, ("orders[0] slow", "orders[1] stuck at offset 40"))


def test_an_incident_whose_shard_moved_away_is_handed_over_without_a_word() -> None:
    # Given a firing incident on this replica
    clock = Clock()
    clock.run(120, [stalled()])
    assert clock.sent == [(60.0, "slack", Action.TRIGGER, "prod/billing/lag")]
    # When its shard moves to another replica (the group is no longer polled here)
    clock.owned = False
    clock.run(3600)
    # Then this replica neither resolves nor repeats it, and forgets it
    assert clock.sent == [(60.0, "slack", Action.TRIGGER, "prod/billing/lag")]
    assert clock.book.open == {}
