"""Live check: a real Prometheus scrapes a real lagwatch watching scenario consumers on the
real broker; every dashboard query and alert rule expression is run against it.

Scenarios: a healthy group, a slow one (lagging), one with a stuck partition (stalled and
skewed), a stopped one, one that lost unread messages (data_loss), a dead-letter queue
nobody reads, a topic with a hot partition, and a healthy Java consumer on the KIP-848
consumer protocol. lagwatch notifies one webhook that
accepts and one that refuses, so the delivery metrics have data too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka_local import free_port
from workload import Consumer, JavaConsumer, Producer

from lagwatch.config import load_config
from lagwatch.daemon import Daemon
from tests.fake_apis import Failure, FakeSlack, serving
from tests.integration.helpers import commit, http_get, produce, status_document, wait_for
from tests.test_alert_rules import RULES
from tests.test_dashboards import ROOT, documented_metrics, panels

RATE = 20.0
SCENARIOS = ("healthy", "slow", "stuck", "stopped", "lossy", "hot", "kip848")


@dataclass
class Stage:
    """The scenario groups, lagwatch, and Prometheus scraping it."""

    groups: dict[str, str]
    daemon: Daemon
    prometheus: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; fail on a parse or evaluation error."""
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        code, body = http_get(url)
        answer = json.loads(body)
        assert code == 200 and answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]  # type: ignore[no-any-return]


def _prometheus(tmp: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: install it (Debian: apt-get install prometheus); "
                    ".ci/run does")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "lagwatch", "static_configs": [{"targets": [target]}]}],
    }))
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "prometheus.log").open("wb"))
    return proc, f"http://127.0.0.1:{port}"


def _group_docs(daemon: Daemon) -> dict[str, Any]:
    return status_document(daemon)["clusters"]["default"]["groups"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def stage(kafka_bootstrap: str, admin: KafkaAdminClient, producer: KafkaProducer, java: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    tmp = tmp_path_factory.mktemp("e2e")
    run = str(int(time.time()))
    name = {s: f"e2e-{s}-{run}" for s in SCENARIOS}
    dlq = f"e2e-orders-{run}.DLT"
    partitions = {"stuck": 2, "hot": 3}
    admin.create_topics([NewTopic(name[s], partitions.get(s, 1), 1) for s in SCENARIOS]
                        + [NewTopic(dlq, 1, 1)])
    admin.wait_for_topics([*name.values(), dlq])
    produce(producer, dlq, {0: 7})
    produce(producer, name["stopped"], {0: 30})
    commit(kafka_bootstrap, name["stopped"], name["stopped"], {0: 20})
    produce(producer, name["lossy"], {0: 30})
    commit(kafka_bootstrap, name["lossy"], name["lossy"], {0: 10})
    admin.delete_records({TopicPartition(name["lossy"], 0): 25})
    traffic = [Producer(kafka_bootstrap, [name[s] for s in ("healthy", "slow", "stuck",
                                                            "kip848")], RATE),
               Producer(kafka_bootstrap, [name["hot"]], RATE,
                        key=lambda n: b"the-hot-key" if n % 10 else b"k%d" % n),
               Producer(kafka_bootstrap, [dlq], 1.0)]  # poison pills keep arriving
    consumers = {s: Consumer(kafka_bootstrap, name[s], name[s],
                             rate=RATE / 2 if s == "slow" else None)
                 for s in ("healthy", "slow", "stuck", "hot")}
    kip848 = JavaConsumer(java, kafka_bootstrap, name["kip848"], name["kip848"], "consumer")
    with serving(FakeSlack()) as accepting, serving(FakeSlack()) as refusing:
        refusing.fail_next(*[Failure(400, {"error": "bad request"})] * 1000)
        config = tmp / "lagwatch.yaml"
        config.write_text(yaml.safe_dump({
            "clusters": [{"name": "default", "bootstrap_servers": [kafka_bootstrap],
                          "groups": {"include": [f"^e2e-.*-{run}$"]}}],
            "poll_interval": "1s", "http": {"listen": "127.0.0.1:0"},
            "state_dir": str(tmp / "state"),
            "detection": {"window": "2m", "min_duration": "20s", "stall_after": "4s"},
            "health": {"lag_skew_min_messages": 20},
            "alerting": {"for": "1s", "receivers": [
                {"name": "ok-hook", "webhook": {"url": f"{accepting.url}/hook"}},
                {"name": "bad-hook", "webhook": {"url": f"{refusing.url}/hook"}}],
                "default_receivers": ["ok-hook", "bad-hook"]},
        }))
        # the JVM first: starting it while kafka-python members join slows their joins on a
        # busy host, and a member that joins late can be left with no partitions
        assert kip848.start().joined.wait(60), kip848.group
        for worker in (*traffic, *consumers.values()):
            worker.start()
        for consumer in consumers.values():
            assert consumer.joined.wait(30), consumer.group
        consumers["stuck"].paused = {0}
        daemon = Daemon(load_config(str(config)))
        http = daemon.start()
        prometheus, base = _prometheus(tmp, http.url.removeprefix("http://"))
        try:
            expected = {"healthy": "ok", "slow": "lagging", "stuck": "stalled",
                        "stopped": "stopped", "lossy": "data_loss", "hot": "ok",
                        "kip848": "ok"}
            seen: dict[str, Any] = {}

            def every_status() -> bool:
                cluster = status_document(daemon)["clusters"]["default"]
                docs = cluster["groups"]
                seen.update({s: (docs.get(name[s]) or {}).get("status") for s in SCENARIOS})
                seen["findings"] = sorted(f["kind"] for f in cluster["findings"])
                seen["hot_topic"] = (docs.get(name["hot"]) or {}).get("topics")
                return ({s: seen[s] for s in SCENARIOS} == expected
                        and "skewed" in seen["findings"])

            wait_for(every_status, lambda: "every scenario's status and the hot partition's "
                     f"finding (seen: {seen})",
                     timeout_s=120)
            staged = Stage(name, daemon, base)
            wait_for(lambda: staged.query('up{job="lagwatch"} == 1'), "Prometheus to scrape",
                     timeout_s=60)
            # rate() and increase() need two samples in their window; ten scrapes of the
            # lagwatch job give every panel's range query enough
            wait_for(lambda: staged.query('count_over_time(up{job="lagwatch"}[5m]) >= 10'),
                     "ten scrapes of lagwatch", timeout_s=120)
            yield staged
        finally:
            prometheus.terminate()
            prometheus.wait(30)
            daemon.stop()
            for worker in (*traffic, *consumers.values(), kip848):
                worker.stop()


def _substitute(expr: str, stage: Stage) -> str:
    return (expr.replace("$cluster", "default")
            .replace("$group", "|".join(stage.groups.values()))
            .replace("$topic", ".*"))


PANELS = panels()


@pytest.mark.parametrize(("board", "panel"), PANELS,
                         ids=[f"{b.removesuffix('.json')}:{p['title']}" for b, p in PANELS])
def test_every_dashboard_query_returns_data(stage: Stage, board: str,
                                            panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        result = stage.query(_substitute(target["expr"], stage))
        assert result, f"{board} / {panel['title']}: no data for {target['expr']}"


# The scenario each rule is meant for (its group), or None for rules that must stay
# silent here; rules about things the local broker cannot show are covered by promtool.
FIRES_FOR = {
    "KafkaConsumerGroupDataLoss": "lossy", "KafkaConsumerGroupStopped": "stopped",
    "KafkaConsumerGroupStalled": "stuck", "KafkaConsumerGroupLagging": "slow",
    "KafkaConsumerGroupSkewed": "stuck", "KafkaHotPartition": "*",
    "KafkaDeadLetterInflow": "*", "KafkaDeadLetterUnconsumed": "*",
    "LagwatchNotificationsFailing": "*",
    "LagwatchDown": None, "LagwatchClusterUnreachable": None, "LagwatchDataStale": None,
    "KafkaOfflinePartitions": None, "KafkaLogDirOffline": None, "KafkaBrokersMissing": None,
    "KafkaHangingTransaction": None, "KafkaCompactionOvertakesConsumer": None,
}


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_every_rule_expression_evaluates(stage: Stage) -> None:
    for rule in rules():
        stage.query(rule["expr"])  # fails on a parse or evaluation error


@pytest.mark.parametrize("alert", sorted(FIRES_FOR))
def test_a_rule_fires_for_its_scenario_and_never_for_the_healthy_group(
        stage: Stage, alert: str) -> None:
    rule = next(r for r in rules() if r["alert"] == alert)
    meant = FIRES_FOR[alert]
    seen: list[dict[str, Any]] = []

    def fires() -> bool:
        # live traffic on a busy host can take a scenario out of its state for a moment:
        # the rule must fire for it, not at one chosen instant
        seen[:] = stage.query(rule["expr"])
        groups = {series["metric"].get("group") for series in seen}
        assert stage.groups["healthy"] not in groups, (alert, seen)
        return bool(seen) if meant == "*" else stage.groups[str(meant)] in groups

    if meant is None:
        assert stage.query(rule["expr"]) == []
    else:
        wait_for(fires, lambda: f"{alert} to fire for {meant} (last answer: {seen})",
                 timeout_s=120)


def _exposed(stage: Stage) -> set[str]:
    assert stage.daemon.http is not None
    text = http_get(stage.daemon.http.url + "/metrics")[1].decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):  # a family is exposed even while it has no series
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.sub(r"_(bucket|sum|count)$", "", re.split(r"[{ ]", line, maxsplit=1)[0]))
    return names


# exported only by replicas with an ha section (tests/integration/test_ha.py reads them)
HA_ONLY = ["lagwatch_ha_generation", "lagwatch_ha_members", "lagwatch_ha_outsider_shards",
           "lagwatch_ha_records_skipped_total", "lagwatch_shard_owned"]


def test_every_documented_metric_is_exposed_and_every_exposed_one_documented(
        stage: Stage) -> None:
    exposed = {n for n in _exposed(stage) if not n.startswith(("process_", "python_"))}
    documented = documented_metrics()
    assert sorted(documented - exposed) == HA_ONLY  # the stage runs without ha
    assert sorted(exposed - documented) == []


def test_readme_prose_names_only_real_metrics(stage: Stage) -> None:
    readme = (ROOT / "README.md").read_text()
    named = {n for n in re.findall(r"`(lagwatch_[a-z_]+)", readme)
             if not n.endswith("_")}  # lagwatch_partition_* names a family of families
    exposed = _exposed(stage)
    assert sorted(n for n in named if n not in exposed) == HA_ONLY
