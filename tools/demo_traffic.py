"""Demo traffic for a fresh local broker, so lagwatch has groups and lag to show at once.

- ``demo-orders`` (3 partitions) receives about 30 messages a second;
- ``demo-shipping`` keeps up (healthy);
- ``demo-billing`` reads at most 20 messages a second (slow but alive: its lag grows);
- ``demo-archiver`` committed once and has no members (stopped).
"""

from __future__ import annotations

import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

TOPIC = "demo-orders"
PARTITIONS = 3


class DemoTraffic:
    """Background producer and consumers; each client lives on its own thread."""

    def __init__(self, bootstrap: str, produce_per_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.produce_per_s = produce_per_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> DemoTraffic:
        """Create the topic, seed it, and start the producer and consumers."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
            admin.wait_for_topics([TOPIC])
        finally:
            admin.close()
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20)
        for i in range(300):
            producer.send(TOPIC, b"order-%d" % i, partition=i % PARTITIONS)
        producer.flush()
        archiver = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id="demo-archiver",
                                 enable_auto_commit=False)
        archiver.commit({TopicPartition(TOPIC, p): OffsetAndMetadata(40, "", -1)
                         for p in range(PARTITIONS)})
        archiver.close()
        self._spawn(self._produce, producer)
        self._spawn(self._consume, "demo-shipping", None)
        self._spawn(self._consume, "demo-billing", 20.0)
        return self

    def stop(self) -> None:
        """Stop every thread and close its client."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _produce(self, producer: KafkaProducer) -> None:
        i = 0
        while not self._stop.wait(1.0 / self.produce_per_s):
            producer.send(TOPIC, b"order-%d" % i, partition=i % PARTITIONS)
            i += 1
        producer.close()

    def _consume(self, group: str, max_per_s: float | None) -> None:
        consumer = KafkaConsumer(TOPIC, bootstrap_servers=self.bootstrap, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 max_poll_records=int(max_per_s or 500))
        while not self._stop.is_set():
            started = time.monotonic()
            records = consumer.poll(timeout_ms=500)
            if records:
                consumer.commit()
            if max_per_s is not None:
                count = sum(len(batch) for batch in records.values())
                self._stop.wait(max(0.0, count / max_per_s - (time.monotonic() - started)))
        consumer.close()
