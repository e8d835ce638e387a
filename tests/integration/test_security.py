"""lagwatch against secured brokers (SASL_SSL with SCRAM-SHA-512, and mTLS), its errors for
bad credentials, secrets kept out of every output, and its own HTTPS and auth.

Each broker has a plaintext listener too, which the tests use to set up topics and groups;
lagwatch only ever talks to the secured one.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka_local import LocalKafka, Secure, free_port

from tests.integration.helpers import commit, produce, wait_for
from tests.tls import Authority, authority

PASSWORD = "Sc-7hQ2xPzR9"  # noqa: S105 - the SCRAM password; no output may contain it
# secrets written the ways that slipped past redaction: a backslash, quotes of both kinds,
# non-ASCII, all digits (a number in YAML), short. No output may carry any of them, raw,
# escaped as repr escapes it, or JSON-escaped.
TOKEN = 'Bt-4kW8m\\Nv3L"x9Q\'p2Rs7'  # noqa: S105 - lagwatch's own API bearer token
ODD_PASSWORD = 'Sc\\7h\'Q2"xPzü'  # noqa: S105 - a refused SASL password, logged at debug
RECEIVER_SECRETS = {  # the receivers' credentials
    "HOOK_SECRET": 'Hk\\5t"R1vä', "SLACK_TOKEN": "xoxb-Sl4ck'T0k3n",
    "SLACK_HOOK_PATH": "Wh00kS3cr3t%C3%A4", "PD_KEY": "918273645500112233"}


def leaks(secret: str, outputs: list[str]) -> list[str]:
    """The outputs that carry a secret in a form a reader could take it from."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1]}
    return [o for o in outputs for form in forms if form in o]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority]:
    base = tmp_path_factory.mktemp("certs")
    return authority(base / "ours", "ours"), authority(base / "other", "other")


def broker(protocol: str, certs: tuple[Authority, Authority]) -> Iterator[LocalKafka]:
    ours = certs[0]
    # the broker closes a refused connection at once, right behind its answer: the reason
    # must still be read (lagwatch/kafka/clientfix.py)
    with LocalKafka({"connection.failed.authentication.delay.ms": "0"},
                    secure=Secure(protocol, ours.ca, ours.server_pem,
                                  {"lagwatch": PASSWORD})) as running:
        yield running


@pytest.fixture(scope="module")
def sasl_broker(certs: tuple[Authority, Authority]) -> Iterator[LocalKafka]:
    yield from broker("SASL_SSL", certs)


@pytest.fixture(scope="module")
def mtls_broker(certs: tuple[Authority, Authority]) -> Iterator[LocalKafka]:
    yield from broker("SSL", certs)


def seeded_group(running: LocalKafka) -> tuple[str, str]:
    """A topic with 30 messages on the plaintext listener, and a group 10 behind."""
    topic, group = "secured-orders", "secured-billing"
    admin = KafkaAdminClient(bootstrap_servers=running.bootstrap)
    try:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, 1, 1)])
            admin.wait_for_topics([topic])
            producer = KafkaProducer(bootstrap_servers=running.bootstrap)
            produce(producer, topic, {0: 30})
            producer.close()
            commit(running.bootstrap, group, topic, {0: 20})
    finally:
        admin.close()
    return topic, group


def write_config(tmp_path: Path, running: LocalKafka, security: dict[str, Any],
                 **extra: Any) -> Path:
    path = tmp_path / f"lagwatch-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "secure", "bootstrap_servers": [running.secure_bootstrap],
                      "request_timeout": "5s", "security": security}],
        "state_dir": str(tmp_path / "state"), **extra}))
    return path


def check(path: Path, env: dict[str, str] | None = None, log_level: str = "error"
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lagwatch", "check", "--json", "-c",
                           str(path), "--log-level", log_level], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, **(env or {})})


def down(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The errors of the cluster `check --json` found down (its document says so)."""
    cluster = json.loads(result.stdout)["clusters"]["secure"]
    assert (cluster["up"], cluster["groups"]) == (False, {})
    return cluster["errors"]  # type: ignore[no-any-return]


def sasl(ca: Path, password: str = "${KAFKA_PASSWORD}") -> dict[str, Any]:  # noqa: S107
    return {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "username": "lagwatch", "password": password, "ca_file": str(ca)}


def lag_of(result: subprocess.CompletedProcess[str], group: str) -> Any:
    doc = json.loads(result.stdout)["clusters"]["secure"]["groups"][group]
    return doc["lag_messages"], doc["status"]


def test_sasl_ssl_with_scram_reads_exact_lag(sasl_broker: LocalKafka, tmp_path: Path,
                                             certs: tuple[Authority, Authority]) -> None:
    _, group = seeded_group(sasl_broker)
    result = check(write_config(tmp_path, sasl_broker, sasl(certs[0].ca)),
                   {"KAFKA_PASSWORD": PASSWORD})
    assert result.returncode == 2, result.stderr  # stopped: critical
    assert lag_of(result, group) == (10, "stopped")


def test_a_wrong_password_is_one_line_naming_the_cluster(
        sasl_broker: LocalKafka, tmp_path: Path, certs: tuple[Authority, Authority]) -> None:
    result = check(write_config(tmp_path, sasl_broker, sasl(certs[0].ca)),
                   {"KAFKA_PASSWORD": "not-the-password"})
    why = ("SaslAuthenticationFailedError: Authentication failed during authentication due to "
           "invalid credentials with SASL mechanism SCRAM-SHA-512")
    assert (result.returncode, down(result)) == (3, [f"connect secure: {why}"])
    assert result.stderr == (
        f"lagwatch: cluster 'secure' is unreachable at {sasl_broker.secure_bootstrap}: {why}\n")


def test_mtls_with_a_client_certificate_reads_exact_lag(
        mtls_broker: LocalKafka, tmp_path: Path, certs: tuple[Authority, Authority]) -> None:
    _, group = seeded_group(mtls_broker)
    ours = certs[0]
    result = check(write_config(tmp_path, mtls_broker, {
        "protocol": "SSL", "ca_file": str(ours.ca), "cert_file": str(ours.client_cert),
        "key_file": str(ours.client_key)}))
    assert result.returncode == 2, result.stderr
    assert lag_of(result, group) == (10, "stopped")


def test_an_untrusted_broker_certificate_is_one_line_naming_the_cluster(
        mtls_broker: LocalKafka, tmp_path: Path, certs: tuple[Authority, Authority]) -> None:
    ours, other = certs
    result = check(write_config(tmp_path, mtls_broker, {
        "protocol": "SSL", "ca_file": str(other.ca), "cert_file": str(ours.client_cert),
        "key_file": str(ours.client_key)}))
    why = ("KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
           "certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)")
    assert (result.returncode, down(result)) == (3, [f"connect secure: {why}"])
    assert result.stderr == (
        f"lagwatch: cluster 'secure' is unreachable at {mtls_broker.secure_bootstrap}: {why}\n")


def get(url: str, context: ssl.SSLContext, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:  # noqa: S310
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError:  # not listening yet
        return 0, ""


@pytest.fixture
def run_secured(tmp_path: Path, sasl_broker: LocalKafka, certs: tuple[Authority, Authority]
                ) -> Iterator[Callable[[], tuple[str, Path, Path]]]:
    """Start `lagwatch run --log-level debug` on the SASL broker, serving HTTPS with a bearer
    token, with a receiver of each kind (listening nowhere); every secret comes from a file
    or the environment. Returns the base URL, the log and the config file."""
    procs: list[subprocess.Popen[str]] = []
    ours = certs[0]
    (tmp_path / "kafka-password").write_text(PASSWORD + "\n")
    (tmp_path / "api-token").write_text(TOKEN + "\n")
    (tmp_path / "pd-key").write_text(RECEIVER_SECRETS["PD_KEY"] + "\n")
    nowhere = f"127.0.0.1:{free_port()}"

    def start() -> tuple[str, Path, Path]:
        port = free_port()
        path = write_config(
            tmp_path, sasl_broker, {**sasl(ours.ca, password=None),  # type: ignore[arg-type]
                                    "password_file": str(tmp_path / "kafka-password")},
            poll_interval="1s", log_level="debug",
            http={"listen": f"127.0.0.1:{port}",
                  "tls": {"cert_file": str(ours.server_cert), "key_file": str(ours.server_key)},
                  "auth": {"bearer_token_file": str(tmp_path / "api-token")}},
            alerting={"receivers": [
                {"name": "hook", "webhook": {"url": f"https://{nowhere}/hook",
                                             "hmac_secret": "${HOOK_SECRET}"}},
                {"name": "slack-bot", "slack": {"token": "${SLACK_TOKEN}", "channel": "#kafka",
                                                "base_url": f"http://{nowhere}/api/"}},
                {"name": "slack-hook", "slack": {
                    "webhook_url": f"http://{nowhere}/services/T0/B0/${{SLACK_HOOK_PATH}}"}},
                {"name": "pd", "pagerduty": {"routing_key_file": str(tmp_path / "pd-key"),
                                             "base_url": f"https://{nowhere}"}}]})
        raw = yaml.safe_load(path.read_text())
        del raw["clusters"][0]["security"]["password"]
        path.write_text(yaml.safe_dump(raw))
        log = tmp_path / "lagwatch.log"
        proc = subprocess.Popen([sys.executable, "-m", "lagwatch", "run", "-c", str(path)],
                                stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True,
                                env={**os.environ, **RECEIVER_SECRETS})
        procs.append(proc)
        return f"https://127.0.0.1:{port}", log, path

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_secrets_never_appear_in_logs_api_or_metrics_and_the_api_needs_its_token(
        run_secured: Callable[[], tuple[str, Path, Path]], sasl_broker: LocalKafka,
        certs: tuple[Authority, Authority]) -> None:
    seeded_group(sasl_broker)
    base, log, config = run_secured()
    context = ssl.create_default_context(cafile=str(certs[0].ca))
    # The API answers over HTTPS, and only with the token
    wait_for(lambda: get(base + "/api/v1/status", context, TOKEN)[0] == 200 and json.loads(
        get(base + "/api/v1/status", context, TOKEN)[1])["clusters"]["secure"]["groups"],
        "a successful poll over SASL_SSL", timeout_s=45)
    assert get(base + "/api/v1/status", context) == (
        401, '{\n  "error": "authentication required"\n}\n')
    assert get(base + "/api/v1/incidents", context, "wrong-token")[0] == 401
    assert get(base + "/healthz", context) == (200, "ok\n")
    outputs = [get(base + "/metrics", context)[1],
               get(base + "/api/v1/status", context, TOKEN)[1],
               get(base + "/api/v1/incidents", context, TOKEN)[1],
               get(base + "/api/v1/silences", context, TOKEN)[1]]
    # and every receiver fails, with its error printed
    notified = subprocess.run([sys.executable, "-m", "lagwatch", "test-notify", "-c",
                               str(config)], capture_output=True, text=True, timeout=120,
                              check=False, env={**os.environ, **RECEIVER_SECRETS})
    assert (notified.returncode, [line.split(":")[0] for line in notified.stdout.splitlines()]
            ) == (1, ["hook", "slack-bot", "slack-hook", "pd"]), notified
    assert "failed" in notified.stdout.splitlines()[2]
    outputs += [notified.stdout, notified.stderr]
    # debug logging was on: the Kafka client's config dump is in the log
    text = wait_for(lambda: "Starting KafkaAdminClient with configuration" in (
        t := log.read_text()) and t, "the Kafka client's debug config dump in the log")
    outputs.append(text)
    # and a refused SASL password of odd characters, with its client's debug config dump
    refused = check(write_config(config.parent, sasl_broker, sasl(certs[0].ca)),
                    {"KAFKA_PASSWORD": ODD_PASSWORD}, "debug")
    assert refused.returncode == 3
    assert "'sasl_plain_password': '***'" in refused.stderr
    outputs += [refused.stdout, refused.stderr]
    for secret in (PASSWORD, ODD_PASSWORD, TOKEN, *RECEIVER_SECRETS.values(),
                   base64.b64encode(PASSWORD.encode()).decode()):
        assert not leaks(secret, outputs), f"a secret leaked: {secret[:3]}…"
    assert "'sasl_plain_password': '***'" in text
