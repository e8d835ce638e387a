"""Delivery workers: one thread per receiver, draining its rows of the outbox in order.

A worker sleeps until its oldest row is due (or it is woken by a new row), sends it, and
records the outcome: sent, retried later by the retry policy, or given up. A slow or
rate-limited receiver delays only its own rows; the poll threads never wait for delivery.
With ``ha`` a row is sent only while this replica holds its incident's shard (``may_send``
asks the lease right before sending): a replica that was paused past its session timeout
sends nothing for the shards it lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from lagwatch.alerting.config import RetryConfig
from lagwatch.alerting.message import Message
from lagwatch.alerting.outbox import Outbox, Row
from lagwatch.alerting.retry import DeliveryError, next_attempt

log = logging.getLogger(__name__)
IDLE_WAIT_S = 1.0


class Receiver(Protocol):
    """Something that takes messages: Slack, PagerDuty, a webhook."""

    name: str
    channel: str

    def deliver(self, m: Message, ref: dict[str, Any] | None, key: str
                ) -> dict[str, Any] | None:
        """Send one message; ``ref`` is what the trigger's delivery returned, ``key`` is
        the same for every attempt at this notification."""


class DeliveryStats:
    """Counts of notifications sent and failed, for /metrics (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: Counter[tuple[str, str]] = Counter()  # (receiver, action)
        self.failed: Counter[tuple[str, str]] = Counter()  # (receiver, reason)

    def count(self, table: Counter[tuple[str, str]], key: tuple[str, str]) -> None:
        """Add one to a counter."""
        with self._lock:
            table[key] += 1

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """Return copies of (sent, failed)."""
        with self._lock:
            return dict(self.sent), dict(self.failed)


class Worker(threading.Thread):
    """Sends one receiver's rows, oldest first, at most one per ``min_interval_s``."""

    def __init__(self, receiver: Receiver, outbox: Outbox, stats: DeliveryStats,
                 retry: RetryConfig, min_interval_s: float = 0.0, *,
                 may_send: Callable[[Row], bool] = lambda _row: True,
                 on_sent: Callable[[Row], None] = lambda _row: None) -> None:
        super().__init__(daemon=True, name=f"deliver-{receiver.name}")
        self.receiver, self.outbox, self.stats = receiver, outbox, stats
        self.retry, self.min_interval_s = retry, min_interval_s
        self.may_send, self.on_sent = may_send, on_sent  # with ha: the lease, the state topic
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._last_send = 0.0
        self._warned: set[str] = set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:  # a bug or a broken state file must not end deliveries
                log.exception("%s: delivery worker error; going on", self.receiver.name)
                self._stopping.wait(IDLE_WAIT_S)

    def _step(self) -> None:
        row = self.outbox.head(self.receiver.name)
        now = time.time()
        due = None if row is None else max(row.next_at, self._last_send + self.min_interval_s)
        if row is None or due is None or due > now or not self.may_send(row):
            wait = IDLE_WAIT_S if due is None or due <= now else min(IDLE_WAIT_S, due - now)
            self.wake.wait(wait)
            self.wake.clear()
            return
        self._send(row)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the send in flight, then stop; pending rows stay for the next start."""
        self._stopping.set()
        self.wake.set()
        self.join(timeout_s)

    def _send(self, row: Row) -> None:
        try:
            message = Message.from_json(row.message)
        except (ValueError, TypeError, KeyError) as exc:  # written by another version?
            self._failed(row, DeliveryError("unreadable", f"stored message unreadable: {exc}",
                                            retryable=False))
            return
        ref = self.outbox.receipt(row.receiver, row.incident)
        self._last_send = time.time()
        try:
            answer = self.receiver.deliver(message, ref, row.idempotency_key)
        except DeliveryError as exc:
            self._failed(row, exc)
            return
        except Exception as exc:  # an unexpected answer: retried like a passing failure
            log.exception("%s: unexpected error delivering %s", row.receiver, row.incident)
            self._failed(row, DeliveryError("unexpected", f"{type(exc).__name__}: {exc}",
                                            retryable=True))
            return
        self.outbox.sent(row, answer)
        self.on_sent(row)
        self.stats.count(self.stats.sent, (row.receiver, row.action))
        log.info("notified %s: %s %s", row.receiver, row.action, row.incident)

    def _failed(self, row: Row, exc: DeliveryError) -> None:
        now = time.time()
        decision = next_attempt(exc, row.attempts + 1, row.created_at, now,
                                policy=self.retry, rand=random.random)
        if decision.at is not None:
            self.outbox.retry(row, decision.at, exc.detail)
            log.info("%s: %s %s failed (%s); retrying in %.1fs", row.receiver, row.action,
                     row.incident, exc.detail, decision.at - now)
            return
        self.outbox.failed(row, exc.detail)
        self.stats.count(self.stats.failed, (row.receiver, exc.reason))
        if exc.reason not in self._warned or exc.retryable:
            log.error("%s: %s %s not delivered, %s: %s", row.receiver, row.action,
                      row.incident, decision.why, exc.detail)
            self._warned.add(exc.reason)
