"""Real producers and consumers at controlled rates, each client on its own thread.

Used by the integration tests, the demo traffic and the benchmarks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata


class Producer(threading.Thread):
    """Writes ``rate`` messages per second to each topic.

    ``key`` gives the key of the n-th message (None: no key, spread by the partitioner).
    """

    def __init__(self, bootstrap: str, topics: list[str], rate: float,
                 key: Callable[[int], bytes | None] | None = None) -> None:
        super().__init__(daemon=True, name="test-producer")
        self.bootstrap, self.topics, self.rate = bootstrap, topics, rate
        self.key = key or (lambda _n: None)
        self._stop_event = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        sent = 0
        started = time.monotonic()
        while not self._stop_event.is_set():
            due = int((time.monotonic() - started) * self.rate)
            for n in range(sent, due):
                for topic in self.topics:
                    producer.send(topic, b"x", key=self.key(n))
            sent = max(sent, due)
            self._stop_event.wait(0.05)
        producer.close()

    def stop(self) -> None:
        """Stop producing and close the client."""
        self._stop_event.set()
        self.join(timeout=15)


def subscribed(bootstrap: str, topic: str, group: str, **config: object) -> KafkaConsumer:
    """A group consumer subscribed to ``topic`` once its metadata is known.

    Subscribing first lets the group's leader compute the assignment before the topic's
    metadata arrives; it then assigns nothing and, until a later metadata refresh, every
    member sits idle (kafka-python issue 2377). Loading the topic first closes that race.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **config)
    deadline = time.monotonic() + 30
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            consumer.close()
            raise TimeoutError(f"no metadata for topic {topic} after 30 s")
        time.sleep(0.2)
    consumer.subscribe([topic])
    return consumer


class Consumer(threading.Thread):
    """A group member that reads at most ``rate`` msg/s (None: as fast as it can).

    ``committing`` can be switched off to play a consumer stuck on a poison pill: it stays
    in the group (polls keep its membership) but its committed offset freezes. With
    ``recommitting`` on as well, it commits that same offset again every second, as a
    consumer that catches the failure and retries does.
    """

    def __init__(self, bootstrap: str, topic: str, group: str,
                 rate: float | None = None) -> None:
        super().__init__(daemon=True, name=f"test-consumer-{group}")
        self.bootstrap, self.topic, self.group, self.rate = bootstrap, topic, group, rate
        self.committing = True
        self.recommitting = False
        self._recommit_at = 0.0
        self.paused: set[int] = set()  # partitions this member holds but stops reading
        self.joined = threading.Event()
        self.generation = -1  # the group generation of this member's latest assignment
        self._stop_event = threading.Event()

    def run(self) -> None:
        consumer = subscribed(
            self.bootstrap, self.topic, self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=max(1, int((self.rate or 500) / 5)), session_timeout_ms=10000)
        try:
            while not self._stop_event.is_set():
                try:
                    self._step(consumer)
                except KafkaError:  # the broker is restarting or going away: try again
                    self._stop_event.wait(0.5)
        finally:
            consumer.close()

    def _step(self, consumer: KafkaConsumer) -> None:
        started = time.monotonic()
        held = [tp for tp in consumer.assignment() if tp.partition in self.paused]
        consumer.pause(*held)
        records = consumer.poll(timeout_ms=200)
        if consumer.assignment():
            self.joined.set()
            self.generation = consumer.group_metadata().generation_id
        if not self.committing:
            # a poison pill: go back to it every time, never commit past it
            stuck_at = {tp: consumer.committed(tp) or 0 for tp in consumer.assignment()}
            for tp, offset in stuck_at.items():
                consumer.seek(tp, offset)
            if self.recommitting and time.monotonic() >= self._recommit_at:
                self._recommit_at = time.monotonic() + 1.0
                consumer.commit({tp: OffsetAndMetadata(offset, "", -1)
                                 for tp, offset in stuck_at.items()})
            return
        if records:
            consumer.commit()
        if self.rate:
            count = sum(len(batch) for batch in records.values())
            self._stop_event.wait(max(0.0, count / self.rate - (time.monotonic() - started)))

    def stop(self) -> None:
        """Leave the group and close the client."""
        self._stop_event.set()
        self.join(timeout=15)
