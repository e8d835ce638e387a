"""The alerting stage: reports → signals → incidents → outbox → delivery workers.

The poll threads call ``observe`` after each poll; it evaluates the incident book, writes
the book and the notifications it produced to the outbox in one transaction, and wakes the
workers. Delivery happens on the workers' threads.

With ``ha`` (a ``Sharing``), the book keeps only the incidents of the shards this replica
holds. Before each evaluation it follows the shards: those it lost are dropped and their
undelivered rows handed over; for those it gained it adopts what the former owner left
(open incidents, undelivered notifications, receipts). Every change of a shard's incident
is published to the state topic before any worker is woken to deliver it, and again after
each delivery.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from lagwatch.alerting.config import AlertingConfig, ReceiverConfig, SilenceConfig
from lagwatch.alerting.incidents import Incident, IncidentBook, IncidentKey, Phase, Signal
from lagwatch.alerting.message import compose
from lagwatch.alerting.outbox import Outbox, Row
from lagwatch.alerting.sharing import Handed, Sharing
from lagwatch.alerting.signals import signals
from lagwatch.alerting.silencecopy import ApiSilences, SilenceCopy
from lagwatch.alerting.worker import DeliveryStats, Receiver, Worker
from lagwatch.report.view import ClusterReport
from lagwatch.status import Severity, Status

log = logging.getLogger(__name__)
SELF = "lagwatch"  # the "cluster" of lagwatch's own incidents


def build_receiver(config: ReceiverConfig) -> Receiver:
    """Make the client for one configured receiver. Each receiver's client library is
    imported only when a receiver of its kind is configured: slack_sdk and pagerduty
    (with httpx) took 4 MB of a daemon that never uses them."""
    if config.slack is not None:
        from lagwatch.alerting.receivers.slack import SlackReceiver
        return SlackReceiver(config.name, config.slack)
    if config.pagerduty is not None:
        from lagwatch.alerting.receivers.pagerduty import PagerDutyReceiver
        return PagerDutyReceiver(config.name, config.pagerduty)
    from lagwatch.alerting.receivers.webhook import WebhookReceiver
    assert config.webhook is not None
    return WebhookReceiver(config.name, config.webhook)


class Alerter:
    """Turns each cluster report into notifications, and delivers them."""

    def __init__(self, config: AlertingConfig, outbox: Outbox,
                 sharing: Sharing | None = None, silence_copy: SilenceCopy | None = None
                 ) -> None:
        self.config = config
        self.outbox = outbox
        self.sharing = sharing
        self.stats = DeliveryStats()
        self.book = IncidentBook(config.settings())
        self.book.load(outbox.book())
        self._adopted: set[int] = set()  # with ha: the shards whose incidents the book keeps
        if sharing is not None:  # the state topic, not this file, knows the shards' state
            self.book.open = {k: i for k, i in self.book.open.items()
                              if sharing.shard(i.signal) is None}
            outbox.hand_over()
        self._saved_book = self.book.dump()
        self.state_problems: tuple[str, ...] = ()  # why the state file is not written
        self._lock = threading.RLock()  # silenced() is also called under it
        self._publishing = threading.Lock()  # one incident's records go out in order
        self._silences = ApiSilences(outbox, None if sharing is not None else silence_copy)
        self.workers = [
            Worker(build_receiver(r), outbox, self.stats, config.retry,
                   config.slack_min_interval if r.slack is not None else 0.0,
                   may_send=self._may_send, on_sent=self._delivered)
            for r in config.receivers]
        if self.book.open:
            log.info("restored %d open incidents from %s", len(self.book.open),
                     outbox.path or "memory")

    def start(self) -> None:
        """Start the delivery workers (pending rows from before a restart go first)."""
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        """Let each worker finish the send in flight; the rest waits for the next start."""
        for worker in self.workers:
            worker.stop()

    def observe(self, report: ClusterReport, now: float) -> None:
        """Evaluate one cluster's latest report and queue what it calls for."""
        self._evaluate(report.cluster, signals(report), now, reachable=report.up,
                       unjudged=frozenset(g.group_id for g in report.groups
                                          if g.status is Status.UNKNOWN))

    def observe_self(self, now: float, store_failing: str | None) -> None:
        """Raise (or clear) lagwatch's own incidents: today, a state file it cannot write."""
        problems = [why for why in (store_failing and f"history: {store_failing}",
                                    self.outbox.failing and f"outbox: {self.outbox.failing}")
                    if why]
        self.state_problems = tuple(problems)  # /readyz says them
        found = [Signal(IncidentKey(SELF, "state", "state_unwritable"), Severity.WARNING,
                        "lagwatch cannot write its state file",
                        (*problems, "history, incidents and pending notifications will not "
                         "survive a restart; lagwatch keeps running from memory"))
                 ] if problems else []
        self._evaluate(SELF, found, now, reachable=True)

    def _evaluate(self, cluster: str, found: list[Signal], now: float, *,
                  reachable: bool, unjudged: frozenset[str] = frozenset()) -> None:
        with self._lock:
            self._follow_shards(now)
            before = {k: i for k, i in self.book.open.items() if k.cluster == cluster}
            due = self.book.evaluate(cluster, found, now, reachable=reachable,
                                     route=self.config.route,
                                     silenced=lambda key: self.silenced(key, now),
                                     unjudged=unjudged, owned=self._owned)
            after = {k: i for k, i in self.book.open.items() if k.cluster == cluster}
            _log_changes(before, after)
            rows = [(n.receiver, n.incident.key.id, str(n.action),
                     compose(n, self.config.links, now).to_json(),
                     self._shard(n.incident.signal)) for n in due]
            book = self.book.dump()
            if rows or book != self._saved_book:  # an unchanged book is not written again
                self.outbox.record(book, rows, now)
                self._saved_book = book
            changed = {(shard, key.id) for key in before.keys() | after.keys()
                       if before.get(key) != after.get(key)
                       and (shard := self._shard((before.get(key) or after[key]).signal))
                       in self._adopted}
        for shard, incident_id in sorted(changed):
            self._publish(shard, incident_id)
        if changed and self.sharing is not None:
            self.sharing.flush()
        for n in due:
            log.info("incident %s: %s to %s", n.incident.key.id, n.action, n.receiver)
        if due:
            for worker in self.workers:
                worker.wake.set()

    # shards (ha) --------------------------------------------------------------------------
    def _shard(self, signal: Signal) -> int | None:
        return None if self.sharing is None else self.sharing.shard(signal)

    def _owned(self, signal: Signal) -> bool:
        shard = self._shard(signal)
        return shard is None or shard in self._adopted

    def _follow_shards(self, now: float) -> None:
        """Drop the incidents of shards lost, adopt those of shards gained (under the lock)."""
        if self.sharing is None:
            return
        held = self.sharing.held()
        lost = self._adopted - held
        if lost:
            self._adopted -= lost
            kept = {k: i for k, i in self.book.open.items() if self._shard(i.signal) not in lost}
            dropped = len(self.book.open) - len(kept)
            self.book.open = kept
            left = self.outbox.hand_over(lost)
            log.info("ha: shards %s moved away; %d open incidents and %d undelivered "
                     "notifications are their new owner's now", sorted(lost), dropped, left)
        for shard in sorted(held - self._adopted):
            handed = self.sharing.handed(shard)
            for incident_id, h in handed.items():
                if h.incident is not None:
                    self.book.open[h.incident.key] = h.incident
                if h.pending or h.receipts:
                    self.outbox.take_over(incident_id, shard, h.pending, h.receipts, now)
            self._adopted.add(shard)
            log.info("ha: took shard %d over with %d open incidents and %d undelivered "
                     "notifications", shard, sum(h.incident is not None for h in handed.values()),
                     sum(len(h.pending) for h in handed.values()))

    def _publish(self, shard: int, incident_id: str) -> None:
        """Write an incident's state as it is now (open, or resolved: None) to its shard."""
        assert self.sharing is not None
        with self._publishing:
            with self._lock:
                incident = next((i for i in self.book.open.values()
                                 if i.key.id == incident_id), None)
            self.sharing.publish(shard, incident_id, Handed(
                incident, tuple(self.outbox.pending_of(incident_id)),
                self.outbox.receipts_of(incident_id)))

    def _may_send(self, row: Row) -> bool:
        """A row of a shard is sent only while this replica holds the shard (the fence)."""
        return row.shard is None or self.sharing is None or row.shard in self.sharing.held()

    def _delivered(self, row: Row) -> None:
        if row.shard is not None and self.sharing is not None:
            self._publish(row.shard, row.incident)
            self.sharing.flush()

    # silences ---------------------------------------------------------------------------
    def _api_silences(self) -> dict[str, SilenceConfig]:
        """The silences made through the API (with ha, through any replica's)."""
        if self.sharing is not None:
            return dict(self.sharing.silences())
        return self._silences.all()

    def silenced(self, key: IncidentKey, now: float) -> bool:
        """Say whether a config or API silence mutes an incident now."""
        api = self._api_silences().values()
        return any(s.mutes(key, now) for s in (*self.config.silences, *api))

    def add_silence(self, body: dict[str, Any], now: float) -> str:
        """Validate and keep a silence made through the API; return its id.

        Raises ValidationError for a bad body, ValueError for one that ended by ``now``.
        """
        silence = SilenceConfig.model_validate(body, context={"request": True})
        if silence.ends.timestamp() <= now:
            raise ValueError(f"ends ({silence.ends.isoformat()}) is not in the future")
        silence_id = uuid.uuid4().hex[:12]
        if self.sharing is not None:  # raises NotSharedError when the state topic refuses it
            self.sharing.save_silence(silence_id, silence)
            return silence_id
        self._silences.add(silence_id, silence)
        return silence_id

    def drop_silence(self, silence_id: str) -> bool:
        """Delete an API silence; say whether it existed (with ha, raises NotSharedError when
        the state topic refuses the deletion)."""
        if self.sharing is not None:
            if silence_id not in self.sharing.silences():
                return False
            self.sharing.save_silence(silence_id, None)
            return True
        return self._silences.drop(silence_id)

    def silences(self) -> list[tuple[str, SilenceConfig]]:
        """Return every silence with its id, from config first, then from the API."""
        api = list(self._api_silences().items())
        return [*((f"config-{i}", s) for i, s in enumerate(self.config.silences)), *api]

    def incidents(self, now: float) -> list[tuple[Incident, bool]]:
        """Return the open incidents in key order, each with whether it is silenced (with
        ha, every replica's, from the state topic, and this replica's own)."""
        with self._lock:
            incidents = list(self.book.open.values())
        if self.sharing is not None:
            incidents = [i for i in incidents if self._shard(i.signal) is None]
            incidents += self.sharing.incidents()
        return [(i, self.silenced(i.key, now)) for i in sorted(incidents, key=lambda i: i.key)]


def _log_changes(before: dict[IncidentKey, Incident],
                 after: dict[IncidentKey, Incident]) -> None:
    """Log each incident that started firing, changed severity or resolved, whether or not
    a receiver is told: the log alone says what lagwatch found."""
    for key in sorted(before.keys() | after.keys()):
        old, incident = before.get(key), after.get(key)
        was = None if old is None else (old.phase, old.signal.severity)
        if incident is not None and incident.phase is Phase.FIRING and (
                was is None or was != (Phase.FIRING, incident.signal.severity)):
            log.info("incident %s firing (%s): %s", key.id, incident.signal.severity,
                     "; ".join((incident.signal.title, *incident.signal.lines)))
        elif incident is None and was is not None and was[0] is Phase.FIRING:
            log.info("incident %s resolved", key.id)
