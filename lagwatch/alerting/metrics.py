"""Alerting and state-file self-metrics, read at scrape time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.incidents import Action
from lagwatch.store import StateFile


class AlertingCollector(Collector):
    """Notifications sent and failed, outbox depth and age, open incidents."""

    def __init__(self, alerter: Alerter, store: StateFile | None = None) -> None:
        self.alerter = alerter
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Yield the alerting families."""
        receivers = [w.receiver.name for w in self.alerter.workers]
        sent_counts, failed_counts = self.alerter.stats.snapshot()
        sent = CounterMetricFamily("lagwatch_notifications_sent",
                                   "Notifications a receiver accepted, by action.",
                                   labels=["receiver", "action"])
        for receiver in receivers:
            for action in Action:
                sent.add_metric([receiver, str(action)],
                                sent_counts.get((receiver, str(action)), 0))
        yield sent
        failed = CounterMetricFamily("lagwatch_notifications_failed",
                                     "Notifications given up on, by reason (an HTTP status, "
                                     "a Slack error such as channel_not_found, network).",
                                     labels=["receiver", "reason"])
        for (receiver, reason), count in sorted(failed_counts.items()):
            failed.add_metric([receiver, reason], count)
        yield failed
        now = time.time()
        pending = self.alerter.outbox.pending()
        depth = GaugeMetricFamily("lagwatch_outbox_pending",
                                  "Notifications waiting for delivery.", labels=["receiver"])
        age = GaugeMetricFamily("lagwatch_outbox_oldest_pending_seconds",
                                "Age of the oldest notification waiting for delivery (0 when "
                                "none waits).", labels=["receiver"])
        for receiver in sorted({*receivers, *pending}):
            count, oldest = pending.get(receiver, (0, now))
            depth.add_metric([receiver], count)
            age.add_metric([receiver], max(0.0, now - oldest))
        yield depth
        yield age
        incidents = GaugeMetricFamily("lagwatch_incidents",
                                      "Open incidents by cluster, phase and severity.",
                                      labels=["cluster", "phase", "severity"])
        tally = Counter((i.key.cluster, str(i.phase), str(i.signal.severity))
                        for i, _silenced in self.alerter.incidents(now))
        for labels, count in sorted(tally.items()):
            incidents.add_metric(list(labels), count)
        yield incidents
        errors = CounterMetricFamily("lagwatch_state_write_errors",
                                     "Writes of poll history to the state file that failed.")
        errors.add_metric([], self.store.write_errors if self.store else 0)
        yield errors
        writable = GaugeMetricFamily("lagwatch_state_writable",
                                     "1 while the state file takes writes (history and "
                                     "outbox), 0 while lagwatch runs from memory.")
        failing = (self.store is not None and self.store.failing) or self.alerter.outbox.failing
        writable.add_metric([], 0 if failing else 1)
        yield writable
