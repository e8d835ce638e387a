"""Demo traffic for a fresh local broker, so lagwatch has groups and lag to show at once.

- ``demo-orders`` (3 partitions) receives about 30 messages a second;
- ``demo-shipping`` keeps up (healthy);
- ``demo-billing`` reads at most 20 messages a second (slow but alive: its lag grows);
- ``demo-archiver`` committed once and has no members (stopped).
"""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata
from workload import Consumer, Producer

TOPIC = "demo-orders"
PARTITIONS = 3


class DemoTraffic:
    """A background producer and two consumers, after a seeded backlog and a stopped group."""

    def __init__(self, bootstrap: str, produce_per_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.clients = [Producer(bootstrap, [TOPIC], produce_per_s),
                        Consumer(bootstrap, TOPIC, "demo-shipping"),
                        Consumer(bootstrap, TOPIC, "demo-billing", rate=20.0)]

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
        producer.close()
        archiver = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id="demo-archiver",
                                 enable_auto_commit=False)
        archiver.commit({TopicPartition(TOPIC, p): OffsetAndMetadata(40, "", -1)
                         for p in range(PARTITIONS)})
        archiver.close()
        for client in self.clients:
            client.start()
        return self

    def stop(self) -> None:
        """Stop every client."""
        for client in self.clients:
            client.stop()
