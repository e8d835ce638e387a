"""The deployment examples in deploy/: they parse, their lagwatch command lines are ones
lagwatch accepts, and the Kubernetes example's config is valid."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from lagwatch.cli import _parser
from lagwatch.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def manifests() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((DEPLOY / "kubernetes" / "lagwatch.yaml").read_text())
    return {doc["kind"]: doc for doc in docs}


def test_the_kubernetes_example_has_every_piece() -> None:
    assert sorted(manifests()) == ["ConfigMap", "Deployment", "PodDisruptionBudget",
                                   "PodMonitor", "Service", "ServiceMonitor"]


def test_three_replicas_share_the_watching_and_a_drain_takes_one_at_a_time() -> None:
    deployment, budget = manifests()["Deployment"], manifests()["PodDisruptionBudget"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1,
                                                                "maxSurge": 0}
    assert budget["spec"]["minAvailable"] == 2
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_deployment_runs_lagwatch_with_probes_on_its_endpoints() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    container, = pod["containers"]
    args = _parser().parse_args(container["args"])
    assert (args.verb, args.config, args.listen) == ("run", "/etc/lagwatch/lagwatch.yaml",
                                                      "0.0.0.0:9391")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsUser"] == 10001


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    text = manifests()["ConfigMap"]["data"]["lagwatch.yaml"]
    for name in ("kafka-password", "slack-token", "pagerduty-key"):
        (tmp_path / name).write_text("secret\n")
    for name in ("api-token", "ha-key"):
        (tmp_path / name).write_text("0123456789abcdef0123456789abcdef\n")
    path = tmp_path / "lagwatch.yaml"
    path.write_text(text.replace("/run/secrets/lagwatch/", f"{tmp_path}/"))
    config = load_config(str(path))
    assert [r.name for r in config.alerting.receivers] == ["sre-slack", "pager"]
    assert config.ha is not None
    assert (config.ha.cluster, config.ha.shards) == ("prod", 12)
    # silences can be made through the API only with credentials: the example has a token
    assert config.http.auth is not None
    assert config.http.auth.secret("bearer_token") == "0123456789abcdef0123456789abcdef"


def test_the_monitors_scrape_metrics_as_job_lagwatch() -> None:
    for kind, key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        endpoint, = manifests()[kind]["spec"][key]
        assert endpoint["path"] == "/metrics"
        assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "lagwatch"}]


def test_the_sidecar_and_systemd_command_lines_are_valid() -> None:
    sidecar, = yaml.safe_load((DEPLOY / "kubernetes" / "sidecar.yaml").read_text())
    assert _parser().parse_args(sidecar["args"]).bootstrap_server == ["kafka:9092"]
    unit = (DEPLOY / "systemd" / "lagwatch.service").read_text()
    for line in unit.splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=")):
            binary, *args = shlex.split(line.split("=", 1)[1])
            assert binary == "/opt/lagwatch/bin/lagwatch"
            assert _parser().parse_args(args).config == "/etc/lagwatch/lagwatch.yaml"


def test_the_prometheus_example_scrapes_job_lagwatch() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "scrape.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["lagwatch"]
