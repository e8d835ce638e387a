"""The daemon: one APScheduler job per cluster feeding LatestReports, and the HTTP endpoint."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from lagwatch import __version__
from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.metrics import AlertingCollector
from lagwatch.alerting.outbox import Outbox
from lagwatch.alerting.silencecopy import SilenceCopy
from lagwatch.audit.items import ClusterAudit
from lagwatch.auditor import Auditor
from lagwatch.config import Config
from lagwatch.ha.metrics import ShardCollector
from lagwatch.ha.replica import Replica
from lagwatch.ha.signing import Seal
from lagwatch.heap import Heap
from lagwatch.kafka.membership import Membership
from lagwatch.kafka.reader import ClusterReader
from lagwatch.lock import DirLock
from lagwatch.patterns import Pattern
from lagwatch.pipeline import ClusterJudge, wire
from lagwatch.report.latest import LatestReports
from lagwatch.serve.fleet import FleetStatus
from lagwatch.serve.metrics import Exporter
from lagwatch.serve.server import HttpServer
from lagwatch.store import StateFile

log = logging.getLogger(__name__)


class Poller:
    """Polls one cluster and publishes what it saw; one instance per cluster."""

    def __init__(self, collector: ClusterReader, pipeline: ClusterJudge, state: LatestReports,
                 exporter: Exporter, alerter: Alerter, *, heap: Heap,
                 fleet: FleetStatus | None = None) -> None:
        self.collector = collector
        self.pipeline = pipeline
        self.state = state
        self.exporter = exporter
        self.alerter = alerter
        self.heap = heap
        self.fleet = fleet  # with ha: where this replica's part of the status goes
        self._was_up: bool | None = None

    def poll(self) -> None:
        """Run one poll; log changes of reachability rather than every failure."""
        snapshot = self.collector.poll()
        started = time.perf_counter()
        metrics = self.exporter.metrics
        metrics.observe(snapshot)
        report = self.state.publish(snapshot, self.pipeline.ingest(snapshot))
        self.alerter.observe(report, snapshot.taken_at)
        if self.fleet is not None:
            self.fleet.share(report)
        store = self.pipeline.store
        self.alerter.observe_self(snapshot.taken_at, store.failing if store else None)
        self.exporter.refresh()  # here, so that scrapes find the poll's metrics rendered
        metrics.processing.labels(snapshot.cluster).observe(time.perf_counter() - started)
        self.heap.settle(snapshot.taken_at)
        name = snapshot.cluster
        if not snapshot.up and self._was_up is not False:
            log.warning("cluster %s is unreachable: %s", name, snapshot.errors[0].message)
        elif snapshot.up and self._was_up is False:
            log.info("cluster %s is reachable again", name)
        elif snapshot.up and self._was_up is None:
            log.info("cluster %s: first poll took %.1fs: %d groups, %d partitions read",
                     name, snapshot.duration_s, len(report.groups), len(snapshot.offsets))
        self._was_up = snapshot.up
        for error in snapshot.errors if snapshot.up else ():
            log.warning("cluster %s: %s", name, error)
        log.debug("cluster %s polled in %.3fs: %d groups", name, snapshot.duration_s,
                  len(report.groups))


def _lock(state_dir: str) -> DirLock | None:
    """Hold the state directory; None where it cannot be written (the store says so)."""
    try:
        return DirLock(state_dir)
    except OSError:
        return None


def _seat(config: Config) -> tuple[Replica | None, Membership | None]:
    """With ha: this replica and its seat in the coordination group."""
    ha = config.ha
    if ha is None:
        return None, None
    replica = Replica(ha.shards, ha.session_timeout,
                      ha.replica or f"{socket.gethostname()}-{os.getpid()}",
                      incarnation=uuid.uuid4().hex[:12], seal=Seal(ha.signing_keys(), ha.topic),
                      clusters=frozenset(c.name for c in config.clusters))
    cluster = next(c for c in config.clusters if c.name == ha.cluster)
    membership = Membership(cluster, replica, group=ha.group, topic=ha.topic,
                            shards=ha.shards, replica=replica.name,
                            session_timeout_s=ha.session_timeout)
    replica.writer = membership
    return replica, membership


def _owns(replica: Replica | None, cluster: str) -> Callable[[str | None], bool]:
    """Which groups of ``cluster`` (None: its own health) this replica watches: all, or
    with ha its shards'."""
    if replica is None:
        return lambda _group: True
    return lambda group: replica.owns(cluster, group)


class Daemon:
    """Runs the pollers on a schedule and serves HTTP until asked to stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = LatestReports([c.name for c in config.clusters], config.poll_interval)
        self.replica, self.membership = _seat(config)
        replica = self.replica
        self.exporter = Exporter(self.state, config.metrics.per_partition,
                                 health=lambda cluster: _owns(replica, cluster)(None))
        self.metrics = self.exporter.metrics
        self.lock = _lock(config.state_dir) if config.persist else None
        self.store = StateFile(config.state_dir) if config.persist else None
        self.shards = None if replica is None else replica.shards
        outbox = (Outbox(self.store.path, salvage=self.store.moved_aside) if self.store
                  else Outbox(None))
        self.alerter = Alerter(config.alerting, outbox, sharing=replica, silence_copy=(
            SilenceCopy(Path(config.state_dir) / "silences.json") if self.store else None))
        self.exporter.registry.register(AlertingCollector(self.alerter, self.store))
        if replica is not None and self.membership is not None:
            membership = self.membership
            self.exporter.registry.register(ShardCollector(
                replica, lambda: membership.members, lambda: len(membership.outsiders)))
        heap = Heap()
        self.fleet = None if replica is None else FleetStatus(
            replica, [c.name for c in config.clusters])
        self.pollers = [Poller(*wire(config, c, self.store, owns=_owns(replica, c.name)),
                               self.state, self.exporter, self.alerter, heap=heap,
                               fleet=self.fleet)
                        for c in config.clusters]
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(min(config.poll_threads,
                                                         len(self.pollers)))},
            timezone="UTC")
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.auditor = Auditor(config)
        self._audit_lock = threading.Lock()  # one audit at a time: each opens clients
        self.http: HttpServer | None = None
        self._stop = threading.Event()
        self._stopped = False

    def start(self) -> HttpServer:
        """With ha, check the state topic (raises StateTopicError); bind the HTTP port, then
        schedule every cluster's poll to run now and each interval."""
        if self.membership is not None:
            self.membership.prepare()
        self.http = HttpServer(self.config.http, self.state, self.exporter,
                               self.alerter, self.audits, fleet=self.fleet).start()
        self.alerter.start()
        if self.membership is not None:
            self.membership.start()
        for poller in self.pollers:
            poller.pipeline.restore(time.time())
            self.scheduler.add_job(
                self._poll, "interval", args=(poller,), seconds=self.config.poll_interval,
                id=poller.collector.cluster.name, name=f"poll {poller.collector.cluster.name}",
                next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(self.config.poll_interval)))
        self.scheduler.start()
        log.info("lagwatch %s started: watching %s every %gs; HTTP at %s; state in %s",
                 __version__, ", ".join(c.name for c in self.config.clusters),
                 self.config.poll_interval, self.http.url, self.config.state_dir)
        return self.http

    def audits(self, groups: Pattern | None) -> list[ClusterAudit]:
        """Audit every cluster polled successfully, from the daemon's own history."""
        silences = tuple(s for _, s in self.alerter.silences())
        with self._audit_lock:
            return [self.auditor.audit(p.collector.cluster, p.pipeline, report,
                                       silences=silences, groups=groups)
                    for p in self.pollers
                    if (report := self.state.report(p.collector.cluster.name)) is not None
                    and report.last_success is not None]

    def handle_signals(self) -> None:
        """Make SIGTERM and SIGINT stop the daemon cleanly (from the main thread, before
        anything says the daemon is up, so a signal sent on seeing that is never lost)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def serve_until_signalled(self) -> None:
        """Block until SIGTERM or SIGINT, then shut down cleanly."""
        self.handle_signals()
        while not self._stop.wait(1.0):
            pass
        self.stop()

    def stop(self) -> None:
        """Stop serving, stop polling (waiting for polls in flight), let deliveries in
        flight finish, close clients. Stopping twice does nothing more."""
        if self._stopped:
            return
        self._stopped = True
        log.info("shutting down")
        if self.http is not None:  # first: no new requests compete with the poll in flight
            self.http.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.alerter.stop()
        if self.membership is not None:  # leaving the group hands the shards on at once
            self.membership.stop()
        for poller in self.pollers:
            poller.collector.close()
        if self.store is not None:
            self.store.close()
        self.alerter.outbox.close()
        if self.lock is not None:
            self.lock.release()

    def _poll(self, poller: Poller) -> None:
        """One poll, unless the daemon is stopping: the polls still queued for a thread
        then end at once, and a stop waits only for those in flight (each bounded by its
        cluster's request timeout), so many clusters stop as fast as one."""
        if not self._stopped:
            poller.poll()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self._stop.set()

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        self.metrics.overruns.labels(event.job_id).inc()
        log.warning("%s: a poll was skipped because the previous one is still running "
                    "or the scheduler fell behind; consider a longer poll_interval",
                    event.job_id)

