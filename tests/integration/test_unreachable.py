"""A cluster that cannot be reached: check fails fast and clearly, run waits and recovers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from kafka_local import LocalKafka, free_port

from tests.exposition import parse, value
from tests.integration.helpers import http_get, wait_for


@pytest.fixture
def dead_port() -> int:
    return free_port()


def test_check_exits_3_with_one_line_when_the_cluster_is_unreachable(
        config_file: Callable[..., str], dead_port: int) -> None:
    # Given
    path = config_file("any", bootstrap=f"127.0.0.1:{dead_port}")

    # When
    result = subprocess.run([sys.executable, "-m", "lagwatch", "check", "-c", path],
                            capture_output=True, text=True, timeout=60, check=False)

    # Then
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == (f"lagwatch: cluster 'default' is unreachable at "
                             f"127.0.0.1:{dead_port}: KafkaConnectionError: 111 ECONNREFUSED\n")


def test_check_json_still_prints_a_document_with_the_cluster_down(
        config_file: Callable[..., str], dead_port: int) -> None:
    path = config_file("any", bootstrap=f"127.0.0.1:{dead_port}")
    result = subprocess.run([sys.executable, "-m", "lagwatch", "check", "--json", "-c", path],
                            capture_output=True, text=True, timeout=60, check=False)
    # Then a script gets a document, and the one line on stderr, exit 3
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert doc["clusters"] == {"default": {
        "up": False, "last_poll": None, "dlqs": {}, "findings": [], "groups": {},
        "errors": ["connect default: KafkaConnectionError: 111 ECONNREFUSED"]}}
    assert result.stderr == (f"lagwatch: cluster 'default' is unreachable at "
                             f"127.0.0.1:{dead_port}: KafkaConnectionError: 111 ECONNREFUSED\n")


@pytest.fixture
def run_process(config_file: Callable[..., str],
                dead_port: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    listen = f"127.0.0.1:{free_port()}"
    path = config_file("any", bootstrap=f"127.0.0.1:{dead_port}")
    proc = subprocess.Popen([sys.executable, "-m", "lagwatch", "run", "-c", path,
                             "--listen", listen], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield proc, f"http://{listen}"
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def cluster_up(base: str) -> float | None:
    code, body = http_get(base + "/metrics")
    if code != 200:
        return None
    return value(parse(body.decode()), "lagwatch_cluster_up", cluster="default")


def test_run_serves_cluster_down_then_recovers_when_the_broker_appears(
        run_process: tuple[subprocess.Popen[str], str], dead_port: int) -> None:
    proc, base = run_process
    # Given a daemon started while nothing listens at its bootstrap server
    assert proc.stdout is not None
    first_line = proc.stdout.readline()
    assert first_line.startswith("lagwatch ")
    assert f"metrics at {base}/metrics" in first_line

    # Then it stays up and says the cluster is down
    wait_for(lambda: cluster_up(base) == 0, "lagwatch_cluster_up 0")
    assert http_get(base + "/healthz")[0] == 200
    assert http_get(base + "/readyz")[0] == 503
    assert proc.poll() is None

    # When the broker appears on that address, Then lagwatch recovers by itself
    with LocalKafka(port=dead_port):
        wait_for(lambda: cluster_up(base) == 1, "lagwatch_cluster_up 1", timeout_s=60)
        # ready once a poll has finished within 3 intervals (3 s here): on a loaded machine
        # the poll after the one that found the broker may take longer, so wait for it
        wait_for(lambda: http_get(base + "/readyz")[0] == 200, "/readyz 200", timeout_s=60)

        # And SIGTERM stops it cleanly
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert "cluster default is unreachable: KafkaConnectionError: 111 ECONNREFUSED" in log
    assert "cluster default is reachable again" in log
    assert "Traceback" not in log
