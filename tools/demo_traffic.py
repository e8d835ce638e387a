"""Demo traffic for a fresh local broker, so lagwatch has every kind of trouble to show.

- ``demo-orders`` (3 partitions) receives about 30 messages a second;
- ``demo-shipping`` keeps up (healthy);
- ``demo-billing`` reads at most 20 messages a second (slow but alive: ``lagging``);
- ``demo-fraud`` gets stuck on a poison pill after 20 s and keeps retrying it (``stalled``);
- ``demo-archiver`` committed once and has no members (``stopped``);
- ``demo-orders.DLT`` receives a message every 2 s and nobody reads it (DLQ findings);
- ``demo-loyalty`` has a second member that joins and leaves every 30 s (``rebalancing``);
- ``demo-payments`` is Apache Kafka's Java consumer on the KIP-848 consumer protocol, stuck on
  a poison pill after 20 s and re-committing it (``stalled``, as ``demo-fraud``); it needs a
  JDK (javac), and is left out with a note without one.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata
from workload import Consumer, JavaConsumer, Producer, java_classpath

TOPIC = "demo-orders"
DLQ = "demo-orders.DLT"
PARTITIONS = 3
GROUPS = ("demo-shipping", "demo-billing", "demo-fraud", "demo-archiver", "demo-loyalty",
          "demo-payments")
STUCK_AFTER_S = 20.0
CHURN_EVERY_S = 30.0


class DemoTraffic:
    """Producers and consumers playing each scenario, after a seeded backlog."""

    def __init__(self, bootstrap: str, workdir: Path, produce_per_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.fraud = Consumer(bootstrap, TOPIC, "demo-fraud")
        self.payments = _java_consumer(bootstrap, workdir)
        self.clients = [Producer(bootstrap, [TOPIC], produce_per_s),
                        Producer(bootstrap, [DLQ], 0.5),
                        Consumer(bootstrap, TOPIC, "demo-shipping"),
                        Consumer(bootstrap, TOPIC, "demo-billing", rate=20.0),
                        Consumer(bootstrap, TOPIC, "demo-loyalty"),
                        self.fraud, *([self.payments] if self.payments else [])]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poison_pill, daemon=True),
                         threading.Thread(target=self._churn, daemon=True)]

    def start(self) -> DemoTraffic:
        """Create the topics, seed them, and start every client."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1), NewTopic(DLQ, 1, 1)])
            admin.wait_for_topics([TOPIC, DLQ])
        finally:
            admin.close()
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20)
        for i in range(300):
            producer.send(TOPIC, b"order-%d" % i, partition=i % PARTITIONS)
        producer.close()
        archiver = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id="demo-archiver",
                                 enable_auto_commit=False)
        archiver.commit({TopicPartition(TOPIC, p): OffsetAndMetadata(40, "", -1)
                         for p in range(PARTITIONS)})
        archiver.close()
        for client in self.clients:
            client.start()
        for thread in self._threads:
            thread.start()
        return self

    def _poison_pill(self) -> None:
        if not self._stop.wait(STUCK_AFTER_S):
            self.fraud.recommitting, self.fraud.committing = True, False
            if self.payments is not None:
                self.payments.send("stuck")

    def _churn(self) -> None:
        while not self._stop.wait(CHURN_EVERY_S):
            extra = Consumer(self.bootstrap, TOPIC, "demo-loyalty")
            extra.start()
            extra.joined.wait(30)
            self._stop.wait(CHURN_EVERY_S / 2)
            extra.stop()

    def stop(self) -> None:
        """Stop every client."""
        self._stop.set()
        for client in self.clients:
            client.stop()


def _java_consumer(bootstrap: str, workdir: Path) -> JavaConsumer | None:
    try:
        classpath = java_classpath(workdir)
    except RuntimeError as exc:
        print(f"lagwatch: demo-payments left out: {exc}", file=sys.stderr, flush=True)
        return None
    return JavaConsumer(classpath, bootstrap, TOPIC, "demo-payments", "consumer",
                        client_id="demo-payments")
