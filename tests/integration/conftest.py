"""Fixtures that drive the real broker: topics, messages, commits, and an in-process daemon."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from workload import java_classpath

from lagwatch.config import load_config
from lagwatch.daemon import Daemon
from tests.fake_apis import FakePagerDuty, FakeSlack, serving
from tests.integration.helpers import produce
from tests.tls import self_signed, server_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10000)
    yield client
    client.close()


@pytest.fixture(scope="session")
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    client = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    yield client
    client.close()


@pytest.fixture(scope="session")
def java(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The classpath of the Java test client (kafka-clients 4.x), compiled for the session."""
    return java_classpath(tmp_path_factory.mktemp("java"))


@pytest.fixture
def make_topic(admin: KafkaAdminClient, producer: KafkaProducer,
               unique: Callable[[str], str]) -> Callable[..., str]:
    """Create a topic and write an exact number of messages to each partition."""
    def make(counts: list[int], name: str | None = None) -> str:
        topic = name or unique("topic")
        admin.create_topics([NewTopic(topic, len(counts), 1)])
        admin.wait_for_topics([topic])
        produce(producer, topic, dict(enumerate(counts)))
        return topic
    return make


@pytest.fixture
def config_file(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., str]:
    """Write a config that watches only the named groups; return its path."""
    def write(*groups: str, bootstrap: str = kafka_bootstrap,
              cluster: dict[str, Any] | None = None, **extra: Any) -> str:
        config = {"clusters": [{"name": "default", "bootstrap_servers": [bootstrap],
                                "request_timeout": "5s",
                                "groups": {"include": [f"^{re.escape(g)}$" for g in groups]},
                                **(cluster or {})}],
                  "http": {"listen": "127.0.0.1:0"}, "poll_interval": "1s",
                  "state_dir": str(tmp_path / "state"), **extra}
        path = tmp_path / f"lagwatch-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)
    return write


@pytest.fixture
def daemon(config_file: Callable[..., str]) -> Iterator[Callable[..., Daemon]]:
    """Start in-process daemons (HTTP on a free port) watching the named groups."""
    started: list[Daemon] = []

    def start(*groups: str, **kwargs: Any) -> Daemon:
        instance = Daemon(load_config(config_file(*groups, **kwargs)))
        instance.start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serving(FakeSlack()) as api:
        yield api  # type: ignore[misc]


@pytest.fixture
def pagerduty(certificate: tuple[Path, Path]) -> Iterator[FakePagerDuty]:
    with serving(FakePagerDuty(server_context(*certificate))) as api:
        yield api  # type: ignore[misc]


@pytest.fixture
def alerting(slack: FakeSlack, pagerduty: FakePagerDuty,
             certificate: tuple[Path, Path]) -> Callable[[str], dict[str, Any]]:
    """Route one group's incidents, and unreachable clusters, to one Slack channel and one
    PagerDuty service, with short timings. Other incidents of the shared broker (findings
    about other tests' topics) match no route and have no default receiver."""
    def config(group: str) -> dict[str, Any]:
        both = ["team-slack", "team-pd"]
        return {
            "for": "2s", "resolve_after": "3s", "min_firing": "1s",
            "slack_min_interval": "0.1s", "retry": {"initial_delay": "0.1s", "max_delay": "1s"},
            "receivers": [
                {"name": "team-slack", "slack": {"token": "xoxb-test", "channel": "#kafka",
                                                 "base_url": slack.api_url}},
                {"name": "team-pd", "pagerduty": {"routing_key": "R0UTINGKEY",
                                                  "base_url": pagerduty.url,
                                                  "ca_file": str(certificate[0])}}],
            "routes": [{"match": {"group": re.escape(group)}, "receivers": both},
                       {"match": {"kind": "cluster_unreachable"}, "receivers": both}],
            "links": {"runbook": "https://runbooks.example/{kind}"},
        }
    return config
