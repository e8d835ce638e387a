"""What an attacker on the network or in a config file could try, refused without a broker:
patterns that backtrack, echoed secrets, short tokens, bad web configs, silences that end
before they start, and two daemons on one state directory."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
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
from lagwatch.patterns import compile_pattern, compile_request_pattern

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


def test_a_pattern_from_a_request_gets_a_smaller_budget_than_one_from_a_file() -> None:
    # Given a pattern whose program is a few megabytes (\\pL is every letter of Unicode)
    big = r"^[\pL\pN._-]{1,249}$"
    assert compile_pattern(big).fullmatch("billing-consumers")  # a config file may hold it
    # When a request gives it, Then RE2 refuses it without compiling a program that large
    with pytest.raises(ValueError) as caught:
        compile_request_pattern(big)
    assert str(caught.value) == f"invalid regex {big!r}: pattern too large - compile failed {RE2}"
    # and a pattern longer than 1,024 characters is refused before RE2 sees it
    with pytest.raises(ValueError) as long:
        compile_request_pattern("a" * 1025)
    assert str(long.value) == ("invalid regex: 1,025 characters, more than the 1,024 a "
                               "request may give")
    # And a silence made through the API is held to the request's budget
    alerter = Alerter(AlertingConfig(), Outbox(None))
    with pytest.raises(ValidationError) as invalid:
        alerter.add_silence({"match": {"group": big}, "ends": "2999-01-01T00:00:00Z"}, 0.0)
    assert describe(invalid.value) == (
        f"match.group: invalid regex {big!r}: pattern too large - compile failed {RE2}")


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


BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9)}]\n"
               for p, a in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize(("text", "problem"), [
    ("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + BOMB,
     "is not valid YAML: it holds more than 100,000 values once its aliases are expanded, "
     "more than lagwatch reads (an alias bomb?)"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "is not valid YAML: it is nested too deeply to read"),
    ("# " + "x" * (1 << 20) + "\n",
     "is larger than 1,048,576 bytes, the most lagwatch reads of a configuration file"),
])
def test_a_config_that_would_exhaust_the_machine_is_refused_in_one_line(
        tmp_path: Path, text: str, problem: str) -> None:
    # a 495-byte alias bomb took 193 s and 3.8 GB before a MemoryError traceback
    path = tmp_path / "lagwatch.yaml"
    assert error_of(tmp_path, text) == f"config file {str(path)!r} {problem}"
    # and so in the web configuration file
    web = tmp_path / "web.yml"
    web.write_text(text)
    assert error_of(tmp_path, f"http: {{web_config_file: {web}}}") == (
        f"http: web_config_file {web}: {web} {problem}")


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


@pytest.mark.parametrize("make", [Path.mkdir, lambda p: p.symlink_to(p.parent / "elsewhere")])
def test_a_lock_path_that_is_not_a_regular_file_is_refused(
        tmp_path: Path, make: Callable[[Path], object]) -> None:
    # a directory at the lock's path could not be locked: two daemons shared the state dir
    make(tmp_path / "lagwatch.lock")
    with pytest.raises(StateDirInUseError) as caught:
        DirLock(str(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path / 'lagwatch.lock'} is not a regular file, so lagwatch cannot lock its "
        "state_dir; remove it or give this daemon another state_dir")


def test_a_webhook_url_s_query_and_password_are_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "lagwatch.yaml"
    path.write_text("clusters: [{name: prod, bootstrap_servers: ['k:9092']}]\n"
                    "alerting: {receivers: [{name: w, webhook: {url: "
                    "'https://ops:hunter2@hooks.example/in?token=s3cr3t&team=kafka'}}]}\n")
    config = load_config(str(path))
    webhook = config.alerting.receivers[0].webhook
    assert webhook is not None
    assert webhook.shown_url() == "https://hooks.example/in?***"
    formatter = RedactingFormatter(logging.Formatter("%(message)s"), config.secrets())
    record = logging.LogRecord("lagwatch", logging.INFO, __file__, 1,
                               f"delivery to {webhook.url} failed", None, None)
    assert formatter.format(record) == "delivery to https://ops:***@hooks.example/in?*** failed"


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
