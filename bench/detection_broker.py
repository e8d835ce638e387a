"""Detection on a real local broker: real producers and consumers, the real daemon.

Three groups read their own topic, each written at 50 msg/s. After a minute of health,
``slow`` drops to 70% of the produce rate and ``stuck`` stops committing; ``healthy``
carries on. The daemon polls every 15 s with the default detection settings. Prints how
long after onset each trouble was reported, and any alarm on the healthy group.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from kafka import KafkaAdminClient  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka_local import LocalKafka  # noqa: E402
from workload import Consumer, Producer  # noqa: E402

from lagwatch.config import load_config  # noqa: E402
from lagwatch.daemon import Daemon  # noqa: E402

RATE = 50.0
ONSET_S = 60.0
RUN_S = 360.0
EXPECT = {"slow": "lagging", "stuck": "stalled", "healthy": None}


def broker_suite(poll_s: float = 15.0) -> None:
    print(f"\nReal broker: 3 groups at {RATE:g} msg/s, onset at {ONSET_S:g} s, "
          f"{poll_s:g} s polls, default detection settings")
    with LocalKafka() as broker, tempfile.TemporaryDirectory() as tmp:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        topics = {name: f"bench-{name}" for name in EXPECT}
        admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()])
        admin.wait_for_topics(list(topics.values()))
        admin.close()
        producer = Producer(broker.bootstrap, list(topics.values()), RATE)
        consumers = {n: Consumer(broker.bootstrap, t, f"bench-{n}") for n, t in topics.items()}
        config = Path(tmp) / "lagwatch.yaml"
        config.write_text(json.dumps({
            "clusters": [{"name": "bench", "bootstrap_servers": [broker.bootstrap],
                          "groups": {"include": ["^bench-"]}}],
            "poll_interval": poll_s, "http": {"listen": "127.0.0.1:0"}, "state_dir": tmp}))
        producer.start()
        for consumer in consumers.values():
            consumer.start()
            consumer.joined.wait(30)
        daemon = Daemon(load_config(str(config)))
        http = daemon.start()
        started = time.monotonic()
        detected: dict[str, float] = {}
        alarms: list[str] = []
        try:
            while (elapsed := time.monotonic() - started) < RUN_S:
                if elapsed >= ONSET_S and consumers["slow"].rate is None:
                    consumers["slow"].rate = RATE * 0.7
                    consumers["stuck"].committing = False
                with urllib.request.urlopen(f"{http.url}/api/v1/status",  # noqa: S310
                                            timeout=10) as response:
                    groups = json.load(response)["clusters"]["bench"]["groups"]
                for name, expect in EXPECT.items():
                    status = groups.get(f"bench-{name}", {}).get("status")
                    if expect and status == expect and name not in detected:
                        detected[name] = elapsed - ONSET_S
                    if expect is None and groups.get(f"bench-{name}", {}).get(
                            "severity", "none") != "none":
                        alarms.append(f"{elapsed:.0f}s {status}")
                time.sleep(1)
        finally:
            daemon.stop()
            for consumer in consumers.values():
                consumer.stop()
            producer.stop()
    for name, expect in EXPECT.items():
        if expect:
            when = f"+{detected[name]:.0f} s" if name in detected else "never"
            print(f"  {name:8} -> {expect:8} reported {when} after onset")
    print(f"  healthy  alarms: {len(alarms)} {alarms[:3]}")


if __name__ == "__main__":
    broker_suite()
