"""lagwatch's HTTP port as an attacker on the network would try it, against the running
daemon: anonymous writes, a pattern that backtracks, a request hidden in a body, a burst of
connections, malformed requests, and client certificates with a certificate rotated under
the running server."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import shutil
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from lagwatch.daemon import Daemon
from tests.exposition import value
from tests.integration.helpers import (
    http_get,
    post_json,
    scrape,
    status_document,
    stopped_group,
    wait_for,
)
from tests.tls import Authority, authority

TOKEN = "http-tests-token-0123456789"  # noqa: S105 - lagwatch's own bearer token
AUTH = {"listen": "127.0.0.1:0", "auth": {"bearer_token": TOKEN}}
FOREVER = {"match": {}, "ends": "2999-01-01T00:00:00Z"}


def last_poll(lagwatch: Daemon) -> str | None:
    poll: str | None = status_document(lagwatch)["clusters"]["default"]["last_poll"]
    return poll


def raw(lagwatch: Daemon, request: bytes, wait_s: float = 5.0) -> bytes:
    """Send bytes to the port; return all it answers until it closes or goes quiet."""
    assert lagwatch.http is not None
    with socket.create_connection(lagwatch.http.address, timeout=wait_s) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def test_without_credentials_configured_nobody_may_change_silences(
        daemon: Callable[..., Daemon], unique: Callable[[str], str]) -> None:
    # Given the default: no credentials configured
    lagwatch = daemon(unique("nothing"))
    assert lagwatch.http is not None
    base = lagwatch.http.url
    # When anyone tries to silence everything for ever, Then it is refused, saying how
    refused = {"error": "changing silences needs credentials: set http.auth (basic or bearer)"
                        " or basic_auth_users in the web configuration file "
                        "(http.web_config_file)"}
    assert post_json(base + "/api/v1/silences", FOREVER, None) == (403, refused)
    request = urllib.request.Request(base + "/api/v1/silences/x",  # noqa: S310 - loopback
                                     method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as deleted:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback
    assert (deleted.value.code, json.loads(deleted.value.read())) == (403, refused)
    # and reading stays open, with nothing silenced
    code, body = http_get(base + "/api/v1/silences")
    assert (code, json.loads(body)) == (200, {"silences": []})


@pytest.fixture
def guarded(daemon: Callable[..., Daemon], unique: Callable[[str], str], tmp_path: Path
            ) -> Daemon:
    """A daemon whose port an exporter-toolkit web configuration file guards: one user,
    prometheus, with a bcrypt password (scrape-password)."""
    hashed = bcrypt.hashpw(b"scrape-password", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    return daemon(unique("nothing"), http={"listen": "127.0.0.1:0", "web_config_file": str(web)})


def basic_get(lagwatch: Daemon, path: str, password: str | None, user: str = "prometheus"
              ) -> tuple[int, str | None]:
    """GET with Basic credentials (none without a password): the status, Retry-After."""
    assert lagwatch.http is not None
    request = urllib.request.Request(lagwatch.http.url + path)  # noqa: S310 - loopback
    if password is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


def test_basic_auth_users_from_a_web_config_file_guard_all_but_the_probes(
        guarded: Daemon) -> None:
    # Given users with bcrypt passwords in an exporter-toolkit web configuration file
    # Then /metrics and the API need the password, the probes do not
    asked = [("/metrics", None), ("/metrics", "wrong"), ("/metrics", "scrape-password"),
             ("/api/v1/status", "scrape-password"), ("/healthz", None)]
    assert [basic_get(guarded, path, password)[0] for path, password in asked] == [
        401, 401, 200, 200, 200]


def test_a_flood_of_wrong_passwords_is_checked_ten_times_and_never_delays_an_honest_scrape(
        guarded: Daemon) -> None:
    # Given a user with a bcrypt password, and Prometheus's scrape checked once
    assert guarded.http is not None
    users = guarded.http.credentials.users
    assert basic_get(guarded, "/metrics", "scrape-password") == (200, None)
    assert users.checks == 1
    # When 40 different wrong passwords (half of them for a user that does not exist)
    # arrive 8 at a time from one address, beside honest scrapes
    with ThreadPoolExecutor(8) as pool:
        wrong = list(pool.map(lambda n: basic_get(guarded, "/metrics", f"guess-{n}", user=(
            "prometheus" if n % 2 else "nobody")), range(40)))
        honest = list(pool.map(lambda _: basic_get(guarded, "/metrics", "scrape-password"),
                               range(10)))
    # Then ten were checked with bcrypt and refused; the rest were refused unchecked, 429
    # with the seconds to wait; and every honest scrape passed without a check
    assert sorted({code for code, _ in wrong}) == [401, 429]
    assert sum(1 for code, _ in wrong if code == 401) == 10
    assert all(0 < int(after or 0) <= 60 for code, after in wrong if code == 429), wrong
    assert honest == [(200, None)] * 10
    assert users.checks == 1 + 10
    # And a password already refused is refused again without a check
    assert users.known("nobody", "guess-0") is False


def test_a_pattern_that_backtracks_neither_freezes_the_daemon_nor_a_restart(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], tmp_path: Path) -> None:
    # Given a stopped group whose name (38 characters, no x) Python's re would match against
    # (.*)*x for ever; every poll matches its incident against each silence
    _, group = stopped_group(make_topic, kafka_bootstrap, unique, "backtracking-silence-subject")
    assert len(group) >= 37 and "x" not in group
    state = str(tmp_path / "kept")
    lagwatch = daemon(group, http=AUTH, poll_interval="250ms", state_dir=state)
    wait_for(lambda: any(i["subject"] == group for i in json.loads(
        _authorized(lagwatch, "/api/v1/incidents"))["incidents"]), "the group's incident")
    assert lagwatch.http is not None
    # When the silence that froze Python's regex engine is made
    code, made = post_json(lagwatch.http.url + "/api/v1/silences",
                           {"match": {"group": "(.*)*x"}, "ends": "2999-01-01T00:00:00Z"},
                           TOKEN)
    assert code == 201, made
    # Then polls go on and /healthz answers within a second, poll after poll
    answered = _healthz_over_polls(lagwatch, polls=60)
    assert max(answered) < 1.0, answered
    # and so after a restart, with the silence kept
    lagwatch.stop()
    restarted = daemon(group, http=AUTH, poll_interval="250ms", state_dir=state)
    answered = _healthz_over_polls(restarted, polls=60)
    assert max(answered) < 1.0, answered
    assert [s["match"]["group"] for s in json.loads(
        _authorized(restarted, "/api/v1/silences"))["silences"]] == ["(.*)*x"]


def _authorized(lagwatch: Daemon, path: str) -> bytes:
    assert lagwatch.http is not None
    request = urllib.request.Request(lagwatch.http.url + path,  # noqa: S310 - loopback
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
    return body


def _polls(lagwatch: Daemon) -> float:
    return value(scrape(lagwatch), "lagwatch_poll_duration_seconds_count",
                 cluster="default") or 0.0


def _healthz_over_polls(lagwatch: Daemon, polls: int) -> list[float]:
    """Time /healthz until ``polls`` more polls have completed; return each answer's
    seconds."""
    assert lagwatch.http is not None
    until, answered = _polls(lagwatch) + polls, []
    deadline = time.monotonic() + 30 + polls
    while _polls(lagwatch) < until:
        assert time.monotonic() < deadline, f"polls stopped at {_polls(lagwatch)}"
        started = time.monotonic()
        assert http_get(lagwatch.http.url + "/healthz") == (200, b"ok\n")
        answered.append(time.monotonic() - started)
        time.sleep(0.1)
    return answered


def test_a_request_hidden_in_a_body_is_never_served(
        daemon: Callable[..., Daemon], unique: Callable[[str], str]) -> None:
    # Given a daemon that accepts writes with its token
    lagwatch = daemon(unique("nothing"), http=AUTH)
    # When a GET carries, as its body, a whole POST that would silence everything
    body = json.dumps(FOREVER).encode()
    hidden = (b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + TOKEN.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = raw(lagwatch, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 + str(len(hidden)).encode() + b"\r\n\r\n" + hidden, wait_s=3)
    # Then one request was answered, and nothing was silenced
    assert answer.count(b"HTTP/1.1 ") == 1
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nok\n")
    assert json.loads(_authorized(lagwatch, "/api/v1/silences")) == {"silences": []}


def test_200_connections_and_2000_requests_are_all_served_while_polls_go_on(
        daemon: Callable[..., Daemon], unique: Callable[[str], str]) -> None:
    # Given a daemon polling every 250 ms
    lagwatch = daemon(unique("nothing"), poll_interval="250ms")
    assert lagwatch.http is not None
    host, port = lagwatch.http.address
    wait_for(lambda: last_poll(lagwatch), "a first poll")
    first = last_poll(lagwatch)
    start = threading.Barrier(200)
    statuses: list[int] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        start.wait()
        for n in range(10):
            path = ("/healthz", "/metrics", "/api/v1/status")[(k + n) % 3]
            connection.request("GET", path, headers={"Accept-Encoding": "gzip"})
            response = connection.getresponse()
            response.read()
            with lock:
                statuses.append(response.status)
        connection.close()
    # When 200 clients connect at once and send 10 requests each
    threads = [threading.Thread(target=client, args=(k,)) for k in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # Then every request was answered, and polls went on meanwhile
    assert (len(statuses), set(statuses)) == (2000, {200})
    wait_for(lambda: last_poll(lagwatch) != first, "another poll")


def test_malformed_requests_get_answers_and_no_traceback(
        daemon: Callable[..., Daemon], unique: Callable[[str], str],
        caplog: pytest.LogCaptureFixture) -> None:
    lagwatch = daemon(unique("nothing"), http=AUTH)
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    with caplog.at_level(logging.DEBUG):
        negative = raw(lagwatch, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1"
                                 b"\r\n\r\n")
        deep = b"[" * 100_000
        nested = raw(lagwatch, b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\n" + auth
                     + b"Content-Length: " + str(len(deep)).encode() + b"\r\n\r\n" + deep)
        huge = raw(lagwatch, b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\n" + auth
                   + b"Content-Length: 52428800\r\n\r\n" + b"{" * 65536)
        head = raw(lagwatch, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        put = raw(lagwatch, b"PUT /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            b"Content-Length: 0\r\n\r\n")
    assert negative.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert nested.startswith(b"HTTP/1.1 413 ")  # 100,000 brackets are over the 64 KiB limit
    assert huge.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"connection: close\r\n" in huge.lower()
    assert huge.endswith(b'{\n  "error": "the body is over 65,536 bytes"\n}\n')
    status, _, rest = head.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert (status, body) == (b"HTTP/1.1 200 OK", b"")
    assert b"content-length: " in headers.lower()
    assert put.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nallow: GET, HEAD\r\n" in put
    assert put.endswith(b'"error": "PUT is not allowed on /metrics (allowed: GET, HEAD)"\n}\n')
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_deep_json_within_the_size_limit_is_refused_as_too_deep(
        daemon: Callable[..., Daemon], unique: Callable[[str], str]) -> None:
    lagwatch = daemon(unique("nothing"), http=AUTH)
    assert lagwatch.http is not None
    deep = b"[" * 60_000
    request = urllib.request.Request(lagwatch.http.url + "/api/v1/silences",  # noqa: S310
                                     data=deep, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback
    assert (caught.value.code, json.loads(caught.value.read())) == (
        400, {"error": "the body is not JSON: nested too deeply"})


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority]:
    base = tmp_path_factory.mktemp("http-certs")
    return authority(base / "first", "first"), authority(base / "second", "second")


def _get_tls(url: str, ca: Path, client: tuple[Path, Path] | None = None) -> Any:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(*map(str, client))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310
            return response.status
    except (urllib.error.URLError, ConnectionError, ssl.SSLError) as exc:
        return type(getattr(exc, "reason", exc)).__name__


def test_client_certificates_are_required_and_a_rotated_certificate_is_served_at_once(
        daemon: Callable[..., Daemon], unique: Callable[[str], str], tmp_path: Path,
        cas: tuple[Authority, Authority]) -> None:
    # Given HTTPS with client certificates required, from files a rotation will replace
    first, second = cas
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first.server_cert, live / "tls.crt")
    shutil.copy(first.server_key, live / "tls.key")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {live / 'tls.crt'}\n"
                   f"  key_file: {live / 'tls.key'}\n  client_ca_file: {first.ca}\n"
                   "  client_auth_type: RequireAndVerifyClientCert\n")
    lagwatch = daemon(unique("nothing"), http={"listen": "127.0.0.1:0",
                                               "web_config_file": str(web)})
    assert lagwatch.http is not None
    url = lagwatch.http.url + "/healthz"
    ours = (first.client_cert, first.client_key)
    # Then a client with a certificate from the client CA is served; without one, or with
    # one from another CA, it is not
    assert _get_tls(url, first.ca, ours) == 200
    assert _get_tls(url, first.ca) != 200
    assert _get_tls(url, first.ca, (second.client_cert, second.client_key)) != 200
    # When the certificate files are replaced by the second CA's
    shutil.copy(second.server_cert, live / "tls.crt.new")
    shutil.copy(second.server_key, live / "tls.key.new")
    (live / "tls.key.new").replace(live / "tls.key")
    (live / "tls.crt.new").replace(live / "tls.crt")
    # Then, without a restart, the new certificate is served
    wait_for(lambda: _get_tls(url, second.ca, ours) == 200, "the rotated certificate")
    assert _get_tls(url, first.ca, ours) != 200


def test_a_client_that_stalls_mid_request_is_cut_off(
        daemon: Callable[..., Daemon], unique: Callable[[str], str]) -> None:
    lagwatch = daemon(unique("nothing"), http=AUTH)
    assert lagwatch.http is not None

    def answer_to(request: bytes) -> bytes:
        """What the server says before it closes (failing if it keeps waiting)."""
        assert lagwatch.http is not None
        with socket.create_connection(lagwatch.http.address, timeout=60) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):  # a TimeoutError here: it never gave up
                answer += chunk
        return answer
    # Given a client that sends half a request line, and one that sends a body's first
    # byte of 100, Then both are cut off (after 10 s), the second with a 408
    assert answer_to(b"GET /heal") == b""
    slow = answer_to(b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
    assert slow.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert slow.endswith(b'{\n  "error": "the body did not arrive within 10 s"\n}\n')
