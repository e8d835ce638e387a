"""What an attacker on the network or in a config file could try, refused without a broker:
patterns that backtrack, echoed secrets, short tokens, bad web configs, silences that end
before they start, and two daemons on one state directory."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.config import AlertingConfig, SilenceConfig
from lagwatch.alerting.incidents import IncidentKey
from lagwatch.alerting.outbox import Outbox
from lagwatch.cli import RedactingFormatter
from lagwatch.config import ConfigError, load_config
from lagwatch.configtypes import describe
from lagwatch.lock import DirLock, StateDirInUseError
from lagwatch.patterns import compile_pattern

HEAD = 'clusters: [{name: prod, bootstrap_servers: ["kafka:9092"]}]\n'
RE2 = "(patterns are RE2, as in Prometheus: no backreferences or lookaround)"


def error_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lagwatch.yaml"
    path.write_text(HEAD + text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    return str(caught.value)


def test_a_pattern_that_backtracks_in_python_matches_in_linear_time() -> None:
    # Given the silence that froze the daemon: Python's re never finishes this match
    silence = SilenceConfig.model_validate({"match": {"group": "(.*)*x"},
                                            "ends": "2999-01-01T00:00:00Z"})
    # When it is matched against a 37-character group and a 1 MB one
    for subject in ("a" * 37, "a" * 1_000_000):
        key = IncidentKey("prod", subject, "lag")
        # Then it answers (RE2 is linear in the subject's length)
        assert silence.match.covers(key) is False
    assert silence.match.covers(IncidentKey("prod", "a" * 36 + "x", "lag")) is True


@pytest.mark.parametrize(("pattern", "reason"), [
    ("(?=billing)", "invalid perl operator: (?="),
    (r"(a)\1", r"invalid escape sequence: \1"),
    ("(", "missing ): ("),
])
def test_a_pattern_re2_refuses_is_named_with_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid regex") as caught:
        compile_pattern(pattern)
    assert str(caught.value) == f"invalid regex {pattern!r}: {reason} {RE2}"


@pytest.mark.parametrize(("text", "message"), [
    ("http: {auth: {bearer_token: 918273645500112233}}",
     "http.auth.bearer_token: must be a valid string"),
    ("alerting: {receivers: [{name: s, slack: {token: 918273645500112233, channel: c}}]}",
     "alerting.receivers[0].slack.token: must be a valid string"),
    ("alerting: {receivers: [{name: s, slack: {webhook_url: 918273645500112233}}]}",
     "alerting.receivers[0].slack.webhook_url: must be a valid string"),
    ("alerting: {receivers: [{name: p, pagerduty: {routing_key: 918273645500112233}}]}",
     "alerting.receivers[0].pagerduty.routing_key: must be a valid string"),
    ("alerting: {receivers: [{name: w, webhook: {url: 'https://h/x', "
     "hmac_secret: 918273645500112233}}]}",
     "alerting.receivers[0].webhook.hmac_secret: must be a valid string"),
])
def test_a_secret_of_the_wrong_type_is_named_but_never_echoed(tmp_path: Path, text: str,
                                                               message: str) -> None:
    assert error_of(tmp_path, text) == message


def test_a_value_that_is_no_secret_is_still_echoed(tmp_path: Path) -> None:
    assert error_of(tmp_path, "poll_interval: [1]") == (
        "poll_interval: invalid duration [1]: use 500ms, 30s, 5m, 1h or seconds")


def test_lagwatch_s_own_bearer_token_needs_16_characters(tmp_path: Path) -> None:
    assert error_of(tmp_path, "http: {auth: {bearer_token: abc}}") == (
        "http.auth: bearer_token must be at least 16 characters long (make one with: "
        "openssl rand -hex 32)")
    (tmp_path / "token").write_text("short-token\n")
    assert error_of(tmp_path, f"http: {{auth: {{bearer_token_file: {tmp_path}/token}}}}") == (
        f"http.auth: the token in bearer_token_file {tmp_path}/token must be at least 16 "
        "characters long (make one with: openssl rand -hex 32)")


BCRYPT = "$2y$10$" + "a" * 53  # the shape of a bcrypt hash


@pytest.mark.parametrize(("web", "message"), [
    ("basic_auth_users: {prometheus: plain-password}",
     "basic_auth_users: user 'prometheus': the password must be a bcrypt hash ($2y$..., 60 "
     'characters; htpasswd -nBC 10 "" makes one)'),
    ("tls_server_config: {cert_file: CERT, key_file: CERT, client_auth_type: "
     "RequireAnyClientCert}",
     "tls_server_config.client_auth_type: 'RequireAnyClientCert' is not served: use "
     "NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert (lagwatch verifies "
     "every client certificate it asks for)"),
    ("tls_server_config: {cert_file: /nonexistent.crt, key_file: CERT}",
     "tls_server_config.cert_file: cannot read '/nonexistent.crt': No such file or "
     "directory"),
    ("http_server_config: {http2: true}", "http_server_config: unknown key"),
])
def test_a_bad_web_configuration_file_is_named_with_its_key(tmp_path: Path, web: str,
                                                            message: str) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("not a certificate")
    path = tmp_path / "web.yml"
    path.write_text(web.replace("CERT", str(cert)))
    assert error_of(tmp_path, f"http: {{web_config_file: {path}}}") == (
        f"http: web_config_file {path}: {message}")


def test_credentials_are_set_in_one_place(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users: {{prometheus: '{BCRYPT}'}}\n")
    assert error_of(tmp_path, "http: {auth: {bearer_token: 0123456789abcdef0123}, "
                              f"web_config_file: {path}}}") == (
        "http: auth: set credentials here or in the web configuration file's "
        "basic_auth_users, not both")


def test_a_silence_must_end_after_it_starts(tmp_path: Path) -> None:
    assert error_of(tmp_path, "alerting: {silences: [{starts: '2026-12-02T10:00:00Z', "
                              "ends: '2026-12-01T10:00:00Z'}]}") == (
        "alerting.silences[0]: ends (2026-12-01T10:00:00+00:00) must be after starts "
        "(2026-12-02T10:00:00+00:00)")


def test_an_api_silence_must_end_in_the_future() -> None:
    alerter = Alerter(AlertingConfig(), Outbox(None))
    now = datetime(2026, 12, 5, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match="is not in the future") as caught:
        alerter.add_silence({"ends": "2026-12-04T00:00:00Z"}, now)
    assert str(caught.value) == "ends (2026-12-04T00:00:00+00:00) is not in the future"
    with pytest.raises(ValidationError) as invalid:
        alerter.add_silence({"ends": "2026-12-06T00:00:00"}, now)
    assert describe(invalid.value) == "ends: needs a time zone, e.g. 2026-11-27T22:00:00Z"


def test_a_kept_silence_re2_refuses_is_dropped_at_start_with_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    # Given a silence kept from before patterns were RE2 (a lookahead), and a good one
    outbox = Outbox(None)
    outbox.save_silence("old", '{"match": {"group": "(?!test).*"}, "ends": '
                               '"2999-01-01T00:00:00Z"}')
    outbox.save_silence("good", '{"match": {"group": "billing"}, "ends": '
                                '"2999-01-01T00:00:00Z"}')
    # When the alerter starts from it
    with caplog.at_level(logging.WARNING):
        alerter = Alerter(AlertingConfig(), outbox)
    # Then the refused one is gone, said once, and the good one stays
    assert [sid for sid, _ in alerter.silences()] == ["good"]
    assert outbox.silences().keys() == {"good"}
    assert [r.getMessage() for r in caplog.records] == [
        f"dropped silence old kept in memory: match.group: invalid regex '(?!test).*': "
        f"invalid perl operator: (?! {RE2}"]


@pytest.mark.parametrize("secret", [
    "back\\slash", "it's", 'say "hi"', "pässwörd", "918273645500112233", "a"])
def test_logs_are_scrubbed_of_a_secret_in_every_form(secret: str) -> None:
    # Given a formatter that knows the secret, and records carrying it every way a log line
    # can: as it is, in a dict's repr (kafka-python's config dump), JSON, bytes, a URL
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), [secret])
    forms = [secret, repr({"sasl_plain_password": secret}),
             repr(f"{secret} and 'quotes' \"both\""), f'{{"token": {json_of(secret)}}}',
             repr(secret.encode()), "https://h/hook?key=" + quoted(secret)]
    for form in forms:
        record = logging.LogRecord("kafka", logging.DEBUG, __file__, 1, form, None, None)
        # Then none of them shows it
        text = formatter.format(record)
        assert "***" in text, (form, text)
        for leaked in (secret, repr(secret)[1:-1], json_of(secret)[1:-1]):
            assert leaked not in text, (form, text)


def json_of(text: str) -> str:
    return json.dumps(text)


def quoted(text: str) -> str:
    return quote(text, safe="")


def test_a_second_daemon_on_a_state_directory_is_refused_until_the_first_lets_go(
        tmp_path: Path) -> None:
    first = DirLock(str(tmp_path))
    with pytest.raises(StateDirInUseError) as caught:
        DirLock(str(tmp_path))
    assert str(caught.value) == (
        f"state_dir {tmp_path} is in use by another lagwatch (pid {os.getpid()}); give each "
        "daemon its own state_dir")
    first.release()
    DirLock(str(tmp_path)).release()


def test_a_credential_that_cannot_travel_in_a_request_is_refused_by_name(
        tmp_path: Path) -> None:
    # test-notify crashed with a UnicodeEncodeError on a webhook URL with an umlaut
    assert error_of(tmp_path, "alerting: {receivers: [{name: s, slack: {webhook_url: "
                              "'https://hooks.slack.com/services/T0/B0/Päth'}}]}") == (
        "alerting.receivers[0].slack: webhook_url must be printable ASCII without spaces "
        "(percent-encode other characters in a URL)")
    assert error_of(tmp_path, "http: {auth: {bearer_token: 'token with spaces in it'}}") == (
        "http.auth: bearer_token must be printable ASCII without spaces (percent-encode "
        "other characters in a URL)")
