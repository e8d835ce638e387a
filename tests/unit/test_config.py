"""Config loading: every mistake is one line naming the key path, exit status 3."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lagwatch.config import ConfigError, load_config
from lagwatch.configtypes import parse_duration

VALID = """
clusters:
  - name: prod
    bootstrap_servers: ["kafka-1:9092", "kafka-2:9092"]
    groups: {include: [".*"], exclude: ["^console-consumer-"]}
poll_interval: 15s
http: {listen: "127.0.0.1:9391"}
log_level: warning
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lagwatch.yaml"
    path.write_text(text)
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


def test_a_valid_file_loads_with_defaults_filled(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    cluster = config.clusters[0]
    assert cluster.bootstrap_servers == ["kafka-1:9092", "kafka-2:9092"]
    assert cluster.groups.matches("orders")
    assert not cluster.groups.matches("console-consumer-42")
    assert config.poll_interval == 15.0
    assert config.http.listen == "127.0.0.1:9391"
    assert cluster.request_timeout == 10.0
    assert cluster.security.client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("timeout", "backoff_ms"), [("10s", 1000), ("500ms", 500)])
def test_every_client_retries_a_down_broker_at_least_each_second(
        tmp_path: Path, timeout: str, backoff_ms: int) -> None:
    text = VALID.replace("    groups:", f"    request_timeout: {timeout}\n    groups:")
    cluster = load_config(write(tmp_path, text)).clusters[0]
    timeout_ms = int(cluster.request_timeout * 1000)
    assert cluster.client_options() == {
        "bootstrap_servers": ["kafka-1:9092", "kafka-2:9092"], "request_timeout_ms": timeout_ms,
        "reconnect_backoff_max_ms": backoff_ms, "security_protocol": "PLAINTEXT"}


def test_unknown_key_is_named_by_its_path(tmp_path: Path) -> None:
    text = VALID.replace("    groups:", "    grups: {}\n    groups:")
    assert error_of(tmp_path, text) == "clusters[0].grups: unknown key"


def test_wrong_type_names_the_key_and_the_value(tmp_path: Path) -> None:
    text = VALID.replace('log_level: warning', 'log_level: loud')
    assert error_of(tmp_path, text) == (
        "log_level: must be 'debug', 'info', 'warning' or 'error' (got 'loud')")


def test_wrong_container_type(tmp_path: Path) -> None:
    text = VALID.replace('groups: {include: [".*"], exclude: ["^console-consumer-"]}',
                         'groups: {include: 5}')
    assert error_of(tmp_path, text) == "clusters[0].groups.include: must be a valid list (got 5)"


def test_bad_regex_names_the_list_item(tmp_path: Path) -> None:
    text = VALID.replace('exclude: ["^console-consumer-"]', 'exclude: ["ok", "(unclosed"]')
    assert error_of(tmp_path, text) == (
        "clusters[0].groups.exclude[1]: invalid regex '(unclosed': missing ): (unclosed "
        "(patterns are RE2, as in Prometheus: no backreferences or lookaround)")


def test_bad_duration(tmp_path: Path) -> None:
    text = VALID.replace("poll_interval: 15s", "poll_interval: soon")
    assert error_of(tmp_path, text) == (
        "poll_interval: invalid duration 'soon': use 500ms, 30s, 5m, 1h or seconds")


def test_bad_bootstrap_server(tmp_path: Path) -> None:
    text = VALID.replace('"kafka-2:9092"', '"kafka-2"')
    assert error_of(tmp_path, text) == (
        "clusters[0].bootstrap_servers[1]: expected HOST:PORT (got 'kafka-2')")


def test_missing_required_key(tmp_path: Path) -> None:
    text = VALID.replace('    bootstrap_servers: ["kafka-1:9092", "kafka-2:9092"]\n', "")
    assert error_of(tmp_path, text) == "clusters[0].bootstrap_servers: required key is missing"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path / "nope.yaml"))
    assert str(caught.value) == f"config file '{tmp_path}/nope.yaml' not found"


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "clusters:\n  - name: [prod\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"config file '{path}' is not valid YAML at line 3, "
                                 "column 1: expected ',' or ']', but got '<stream end>'")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"config file '{path}': expected a mapping of keys "
                                 "at the top level")


def test_env_interpolation_and_missing_variable(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    text = VALID.replace('"kafka-1:9092"', '"${KAFKA_HOST}:9092"')
    monkeypatch.setenv("KAFKA_HOST", "broker-7")
    assert load_config(write(tmp_path, text)).clusters[0].bootstrap_servers[0] == "broker-7:9092"
    monkeypatch.delenv("KAFKA_HOST")
    assert error_of(tmp_path, text) == (
        "clusters[0].bootstrap_servers[0]: environment variable KAFKA_HOST is not set")


def test_sasl_secret_from_file_reaches_the_client_options(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    text = VALID.replace("    groups:", f"""    security:
      protocol: SASL_SSL
      sasl_mechanism: SCRAM-SHA-512
      username: lagwatch
      password_file: {secret}
      ca_file: /etc/ca.pem
    groups:""")
    options = load_config(write(tmp_path, text)).clusters[0].security.client_options()
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "lagwatch", "sasl_plain_password": "s3cret",
                       "ssl_cafile": "/etc/ca.pem", "ssl_certfile": None, "ssl_keyfile": None,
                       "ssl_password": None, "ssl_check_hostname": True}


def test_unreadable_secret_file(tmp_path: Path) -> None:
    text = VALID.replace("    groups:", """    security:
      protocol: SASL_PLAINTEXT
      sasl_mechanism: PLAIN
      username: lagwatch
      password_file: /nonexistent/secret
    groups:""")
    assert error_of(tmp_path, text) == (
        "clusters[0].security.password_file: cannot read '/nonexistent/secret': "
        "No such file or directory")


def test_sasl_without_mechanism(tmp_path: Path) -> None:
    text = VALID.replace("    groups:", "    security: {protocol: SASL_SSL}\n    groups:")
    assert error_of(tmp_path, text) == (
        "clusters[0].security: sasl_mechanism is required with protocol SASL_SSL")


def test_a_wrongly_typed_password_is_never_echoed(tmp_path: Path) -> None:
    text = VALID.replace("    groups:", """    security:
      protocol: SASL_PLAINTEXT
      sasl_mechanism: PLAIN
      username: lagwatch
      password: 123456789
    groups:""")
    message = error_of(tmp_path, text)
    assert message == "clusters[0].security.password: must be a valid string"
    assert "123456789" not in message


def test_duplicate_cluster_names(tmp_path: Path) -> None:
    text = """
clusters:
  - {name: prod, bootstrap_servers: ["a:9092"]}
  - {name: prod, bootstrap_servers: ["b:9092"]}
"""
    assert error_of(tmp_path, text) == "clusters: cluster name 'prod' is used twice"


def test_no_cluster_and_no_bootstrap_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {})
    assert str(caught.value) == ("clusters: no cluster configured; pass --bootstrap-server "
                                 "HOST:PORT or a config file with a clusters list")


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), {"bootstrap_servers": ["local:9092"],
                                                  "poll_interval": "2s",
                                                  "listen": "127.0.0.1:0"})
    assert config.clusters[0].bootstrap_servers == ["local:9092"]
    assert (config.poll_interval, config.http.listen) == (2.0, "127.0.0.1:0")


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0),
    (15, 15.0), ("7", 7.0), (0.25, 0.25)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0s", -1, "1 fortnight", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


def test_validate_command_exits_3_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("poll_interval: 15s", "poll_intervall: 15s"))
    result = subprocess.run([sys.executable, "-m", "lagwatch", "validate", "-c", path],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 3
    assert result.stderr == "lagwatch: poll_intervall: unknown key\n"
    assert result.stdout == ""


def test_validate_command_accepts_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    result = subprocess.run([sys.executable, "-m", "lagwatch", "validate", "-c", path],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout == (f"{path}: valid; 1 cluster(s): prod; poll every 15s; "
                             "http on 127.0.0.1:9391\n")
