"""The Helm chart (deploy/helm/lagwatch), checked by real helm (built from its Go module
release by tools/helm.py): it lints, renders the objects the plain manifests describe,
carries the alert rules and dashboards as they are, and refuses bad values by name."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import HelmError, ensure_helm

from lagwatch.cli import _parser
from lagwatch.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "lagwatch"
EVERY_OPTION = CHART / "ci" / "every-option-values.yaml"
RULES = ROOT / "alerts" / "lagwatch.rules.yml"
PLAIN = ROOT / "deploy" / "kubernetes" / "lagwatch.yaml"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """helm, built once into the tool cache, with its own config, cache and data
    directories: it never reads or writes the home directory's."""
    try:
        binary = str(ensure_helm())
    except HelmError as exc:
        pytest.fail(str(exc))
    home = tmp_path_factory.mktemp("helm-home")
    with pytest.MonkeyPatch.context() as env:
        for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env.setenv(name, str(home / name.lower()))
        yield binary


def run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False,
                          timeout=120)


def render(helm: str, *args: str) -> list[dict[str, Any]]:
    done = run(helm, "template", "lw", str(CHART), *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The objects by kind; the ConfigMap is the one holding the config."""
    return {d["kind"]: d for d in docs if d["kind"] != "ConfigMap"
            or "lagwatch.yaml" in d["data"]}


def error(helm: str, *args: str) -> str:
    """The error helm stops with, its log lines left out."""
    done = run(helm, "template", "lw", str(CHART), *args)
    assert done.returncode == 1, done.stdout
    return "\n".join(line for line in done.stderr.splitlines()
                     if line and not line.startswith("level=")
                     and not line.startswith("Use --debug"))


@pytest.mark.parametrize("values", [[], ["-f", str(EVERY_OPTION)]],
                         ids=["defaults", "every-option"])
def test_helm_lint_passes(helm: str, values: list[str]) -> None:
    done = run(helm, "lint", "--strict", str(CHART), *values)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_the_defaults_run_one_replica_reading_a_valid_config(helm: str, tmp_path: Path
                                                             ) -> None:
    docs = render(helm)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Service"]
    objects = by_kind(docs)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container, = pod["containers"]
    args = _parser().parse_args(container["args"])
    assert (args.verb, args.config, args.listen, args.state_dir) == (
        "run", "/etc/lagwatch/lagwatch.yaml", "0.0.0.0:9391", "/var/lib/lagwatch")
    assert container["image"] == "lagwatch:0.1.0"
    assert [v["name"] for v in pod["volumes"]] == ["config", "state"]  # no Secret named
    (tmp_path / "lagwatch.yaml").write_text(objects["ConfigMap"]["data"]["lagwatch.yaml"])
    config = load_config(str(tmp_path / "lagwatch.yaml"))
    assert [(c.name, c.bootstrap_servers) for c in config.clusters] == [
        ("default", ["kafka:9092"])]


def test_every_option_renders_what_the_plain_manifests_describe(helm: str) -> None:
    # Given the chart's values set up as deploy/kubernetes/lagwatch.yaml is
    docs = render(helm, "-f", str(EVERY_OPTION))
    plain = {d["kind"]: d for d in yaml.safe_load_all(PLAIN.read_text())}
    objects = by_kind(docs)
    # Then it renders the same kinds, plus the rules and a ConfigMap per dashboard
    kinds = Counter(d["kind"] for d in docs)
    assert kinds == Counter({**Counter(list(plain)), "PrometheusRule": 1,
                             "ConfigMap": 1 + len(list((ROOT / "dashboards").glob("*.json")))})
    # and the pods are run as the plain Deployment runs them
    pod, plain_pod = (d["spec"]["template"]["spec"] for d in (objects["Deployment"],
                                                                 plain["Deployment"]))
    container, plain_container = pod["containers"][0], plain_pod["containers"][0]
    for key in ("args", "ports", "livenessProbe", "readinessProbe", "securityContext",
                "volumeMounts"):
        assert container[key] == plain_container[key], key
    assert {k: v for k, v in pod["securityContext"].items() if k != "seccompProfile"} == (
        plain_pod["securityContext"])
    assert pod["volumes"][1:] == [{"name": "secrets", "secret": {"secretName":
                                                                 "lagwatch-secrets"}},
                                  {"name": "state", "emptyDir": {}}]
    deployment, plain_deployment = objects["Deployment"]["spec"], plain["Deployment"]["spec"]
    assert deployment["replicas"] == plain_deployment["replicas"] == 3
    assert deployment["strategy"] == plain_deployment["strategy"]
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    # and the config is the plain one's, but for the state directory the chart sets
    config = yaml.safe_load(objects["ConfigMap"]["data"]["lagwatch.yaml"])
    plain_config = yaml.safe_load(plain["ConfigMap"]["data"]["lagwatch.yaml"])
    assert plain_config.pop("state_dir") == "/var/lib/lagwatch"
    assert config == plain_config | {"log_level": "info"}


def test_a_secret_is_referenced_by_name_never_inlined(helm: str) -> None:
    docs = render(helm, "-f", str(EVERY_OPTION))
    assert "Secret" not in {d["kind"] for d in docs}
    text = json.dumps(docs)
    assert "/run/secrets/lagwatch/kafka-password" in text
    assert '"secretName": "lagwatch-secrets"' in text


def test_the_prometheus_rule_is_the_rules_file_promtool_tests(helm: str) -> None:
    rule = by_kind(render(helm, "-f", str(EVERY_OPTION)))["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "prom"


def test_the_monitors_label_what_they_scrape_with_the_rules_job(helm: str) -> None:
    objects = by_kind(render(helm, "-f", str(EVERY_OPTION)))
    jobs = set(re.findall(r'job="([^"]+)"', RULES.read_text()))
    assert jobs == {"lagwatch"}
    for kind, key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        endpoint, = objects[kind]["spec"][key]
        assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
        assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "lagwatch"}]
        assert objects[kind]["spec"]["selector"]["matchLabels"] == (
            objects["Deployment"]["spec"]["selector"]["matchLabels"])
        assert objects[kind]["metadata"]["labels"]["release"] == "prom"


def test_each_dashboard_is_a_configmap_grafana_s_sidecar_loads(helm: str) -> None:
    maps = [d for d in render(helm, "-f", str(EVERY_OPTION))
            if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]
    files = {p.name: p for p in (ROOT / "dashboards").glob("*.json")}
    assert sorted(name for m in maps for name in m["data"]) == sorted(files)
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert m["metadata"]["annotations"] == {"grafana_folder": "Kafka"}
        (name, text), = m["data"].items()
        assert json.loads(text) == json.loads(files[name].read_text())


def test_the_schema_knows_every_key_of_lagwatch_s_config() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert sorted(schema["properties"]["config"]["properties"]) == sorted(Config.model_fields)


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "replicaCount=0"],
     "Error: values don't meet the specifications of the schema(s) in the following "
     "chart(s):\nlagwatch:\n- at '/replicaCount': minimum: got 0, want 1"),
    (["--set", "image.tg=x"],
     "Error: values don't meet the specifications of the schema(s) in the following "
     "chart(s):\nlagwatch:\n- at '/image': additional properties 'tg' not allowed"),
    (["--set", "config.pol_interval=30s"],
     "Error: values don't meet the specifications of the schema(s) in the following "
     "chart(s):\nlagwatch:\n- at '/config': additional properties 'pol_interval' not "
     "allowed"),
    (["--set", "config.clusters=null"],
     "Error: values don't meet the specifications of the schema(s) in the following "
     "chart(s):\nlagwatch:\n- at '/config': missing property 'clusters'"),
    (["--set", "serviceMonitor.interval=soon"],
     "Error: values don't meet the specifications of the schema(s) in the following "
     "chart(s):\nlagwatch:\n- at '/serviceMonitor/interval': 'soon' does not match "
     "pattern '^([0-9]+(ms|s|m|h|d|w|y))+$'"),
    (["--set", "replicaCount=3"],
     "Error: execution error at (lagwatch/templates/configmap.yaml:1:4): replicaCount is 3 "
     "but config.ha is not set: each replica would watch and page for every group on its "
     "own; set config.ha (README, \"Replicas sharing the watching\") or replicaCount: 1"),
], ids=["no-replicas", "unknown-key", "unknown-config-key", "no-clusters", "bad-interval",
        "replicas-without-ha"])
def test_bad_values_are_refused_by_name(helm: str, args: list[str], message: str) -> None:
    assert error(helm, *args) == message
