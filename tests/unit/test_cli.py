"""Command-line failures that need no broker: each is one line on stderr and exit status 3."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka_local import KAFKA_VERSION as V

ROOT = Path(__file__).resolve().parent.parent.parent
LAUNCHER = ROOT / "tools" / "kafka_local.py"


def lagwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lagwatch", *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


def test_run_without_any_cluster_says_how_to_name_one() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAGWATCH_BOOTSTRAP"}
    result = lagwatch("run", env=env)
    assert result.returncode == 3
    assert result.stderr == ("lagwatch: clusters: no cluster configured; pass "
                             "--bootstrap-server HOST:PORT or a config file with a "
                             "clusters list\n")


def test_run_on_a_busy_port_names_the_address(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = lagwatch("run", "--bootstrap-server", "127.0.0.1:1", "--state-dir",
                          str(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert result.stderr == (f"lagwatch: http.listen: cannot listen on 127.0.0.1:{port}: "
                             "Address already in use\n")


def test_a_second_daemon_on_a_state_dir_exits_3_and_a_killed_one_s_lock_is_taken_over(
        tmp_path: Path) -> None:
    # Given a daemon running on a state directory (its cluster is down: it runs anyway)
    def run() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "lagwatch", "run", "--bootstrap-server", "127.0.0.1:1",
             "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = run()
    try:
        assert first.stdout is not None
        assert first.stdout.readline().startswith("lagwatch ")  # serving: it holds the lock
        # When a second starts on the same directory, Then it is refused, naming both
        second = lagwatch("run", "--bootstrap-server", "127.0.0.1:1", "--listen",
                          "127.0.0.1:0", "--state-dir", str(tmp_path))
        assert (second.returncode, second.stderr) == (3, (
            f"lagwatch: state_dir {tmp_path} is in use by another lagwatch (pid "
            f"{first.pid}); give each daemon its own state_dir\n"))
    finally:
        first.kill()  # When the first dies without letting go
        first.wait()
    # Then the next one takes the directory over
    third = run()
    try:
        assert third.stdout is not None
        assert third.stdout.readline().startswith("lagwatch ")
    finally:
        third.terminate()
        assert third.wait(30) == 0


def test_a_bad_flag_value_is_exit_3_not_argparse_2() -> None:
    result = lagwatch("check", "--bootstrap-server", "nohost")
    assert result.returncode == 3
    assert result.stderr == ("lagwatch: clusters[0].bootstrap_servers[0]: expected HOST:PORT "
                             "(got 'nohost')\n")
    unknown = lagwatch("check", "--frobnicate")
    assert unknown.returncode == 3
    assert unknown.stderr.endswith("lagwatch: unrecognized arguments: --frobnicate\n")


@pytest.mark.parametrize(("present", "missing", "hint"), [
    ((), "java", "install Java 17 or newer"),
    (("java",), "mvn", "install Apache Maven"),
])
def test_launcher_names_a_missing_tool_in_one_line(tmp_path: Path, present: tuple[str, ...],
                                                   missing: str, hint: str) -> None:
    # Given a PATH that holds only the tools in `present`, and an empty jar cache
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in present:
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    scratch = tmp_path / "tmp"  # where the broker's directory is made
    scratch.mkdir()
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path),
           "LAGWATCH_KAFKA_CACHE": str(tmp_path / "cache"), "TMPDIR": str(scratch)}
    # When
    result = subprocess.run([sys.executable, str(LAUNCHER), "start"], capture_output=True,
                            text=True, timeout=60, check=False, env=env)
    # Then
    assert result.returncode == 3
    assert result.stderr.splitlines()[-1] == (
        f"lagwatch: '{missing}' was not found on PATH; the local Kafka broker needs it "
        f"({hint})")
    assert list(scratch.iterdir()) == []  # the broker's directory went with the failed start


@pytest.mark.parametrize("command", ["validate", "check", "run", "test-notify"])
def test_a_config_that_is_not_utf8_is_one_line_naming_the_file_and_offset(
        tmp_path: Path, command: str) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("clusters:\n  - name: caf\u00e9\n".encode("latin-1"))
    result = lagwatch(command, "-c", str(path))
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == (f"lagwatch: config file {str(path)!r} is not UTF-8 text (the "
                             f"first byte that is not is at offset 23)\n")


def test_a_secret_file_that_is_not_utf8_is_named_without_its_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(b"s3cr\xe9t")
    path = tmp_path / "lagwatch.yaml"
    path.write_text(f"""clusters:
  - name: prod
    bootstrap_servers: ["127.0.0.1:9092"]
    security: {{protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN, username: lw,
                password_file: {secret}}}
""")
    result = lagwatch("validate", "-c", str(path))
    assert result.returncode == 3
    assert result.stderr == (
        f"lagwatch: clusters[0].security.password_file: {str(secret)!r} is not UTF-8 text "
        f"(the first byte that is not is at offset 4)\n")


def test_the_test_script_names_every_missing_tool_in_one_line_before_starting(
        tmp_path: Path) -> None:
    # Given a PATH with Java and Maven but neither Prometheus binary, openssl nor Go
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "java", "javac", "mvn", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    # When the whole suite is asked for
    result = subprocess.run([str(ROOT / "tools" / "test")], capture_output=True, text=True,
                            timeout=30, check=False, env=env)
    # Then it stops at once, naming what is missing and the package that gives it
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == (
        "lagwatch: the tests need prometheus promtool openssl go, not found on PATH; "
        "install them (Debian: apt-get install prometheus openssl; .ci/run does; Go 1.24 "
        "or newer from go.dev: the chart's tests build helm with it) or run only the "
        "unit tests (tools/test tests/unit)\n")
    # and with only Go missing, only Go is named
    for tool in ("prometheus", "promtool", "openssl"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    result = subprocess.run([str(ROOT / "tools" / "test")], capture_output=True, text=True,
                            timeout=30, check=False, env=env)
    assert (result.returncode, result.stderr) == (3, (
        "lagwatch: the tests need go, not found on PATH; install them (Go 1.24 or newer "
        "from go.dev: the chart's tests build helm with it) or run only the unit tests "
        "(tools/test tests/unit)\n"))


FAKE_MVN = """#!/bin/sh
# copies three "jars" into -DoutputDirectory once $MVN_GO exists, counting its runs
echo run >> "$MVN_RUNS"
for arg in "$@"; do case "$arg" in
  -DoutputDirectory=*) out="${arg#*=}" ;;
  -Dkafka.version=*) version="${arg#*=}" ;;
esac; done
mkdir -p "$out"
while [ ! -e "$MVN_GO" ]; do sleep 0.05; done
for jar in kafka_2.13 kafka-clients kafka-server; do
  head -c 1000 /dev/zero > "$out/$jar-$version.jar"
done
"""


def test_two_first_runs_at_once_both_get_the_jars_resolved_once(tmp_path: Path) -> None:
    # Given an empty jar cache and an mvn that takes a while
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mvn").write_text(FAKE_MVN)
    (bin_dir / "mvn").chmod(0o755)
    go = tmp_path / "go"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "LAGWATCH_KAFKA_CACHE": str(tmp_path / "cache"), "MVN_RUNS": str(tmp_path / "runs"),
           "MVN_GO": str(go)}

    def fetch() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(LAUNCHER), "fetch"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # When a second fetch starts while the first is resolving
    watchdog = threading.Timer(30, go.touch)  # never hang, whatever happens
    watchdog.start()
    try:
        first = fetch()
        assert first.stderr is not None
        assert first.stderr.readline().startswith(f"lagwatch: resolving Apache Kafka {V} ")
        second = fetch()
        assert second.stderr is not None
        waited = second.stderr.readline()
        go.touch()
        results = [(f.wait(60), *f.communicate()) for f in (first, second)]
    finally:
        watchdog.cancel()
    # Then the second waits for the first, both get the same directory, and mvn ran once
    cache = tmp_path / "cache" / f"kafka-{V}"
    assert waited == (f"lagwatch: another process is resolving the Kafka jars into {cache}; "
                      "waiting for it...\n")
    assert [(code, out, err) for code, out, err in results] == [(0, f"{cache}\n", "")] * 2
    assert (tmp_path / "runs").read_text() == "run\n"
    assert sorted(p.name for p in cache.iterdir()) == [
        ".manifest", f"kafka-clients-{V}.jar", f"kafka-server-{V}.jar",
        f"kafka_2.13-{V}.jar"]
    assert [p.name for p in cache.parent.iterdir() if p.name.startswith(".")] == []
    # And a jar damaged later is noticed and the cache resolved again
    (cache / f"kafka-clients-{V}.jar").write_bytes(b"cut")
    again = subprocess.run([sys.executable, str(LAUNCHER), "fetch"], env=env, text=True,
                           capture_output=True, timeout=60, check=False)
    assert (again.returncode, again.stderr) == (0, (
        f"lagwatch: resolving Apache Kafka {V} jars into {cache} (the cache is unusable: "
        f"kafka-clients-{V}.jar is missing or not the size its manifest says)...\n"))
    assert (cache / f"kafka-clients-{V}.jar").stat().st_size == 1000


def test_a_test_that_uses_the_default_state_dir_fails_the_session_and_nothing_else_does(
        tmp_path: Path) -> None:
    # Given a test whose lagwatch state goes to the default state_dir, and another that
    # writes where a lagwatch running beside the tests would (its own state_dir, here a
    # temporary one)
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import default_state_dir_untouched  # noqa: F401\n")
    (tmp_path / "test_leaky.py").write_text(
        "from pathlib import Path\n\n"
        "from lagwatch.config import Config\n\n\n"
        "def test_leaky() -> None:\n"
        "    config = Config.model_validate({'clusters': [\n"
        "        {'name': 'a', 'bootstrap_servers': ['127.0.0.1:9092']}]})\n"
        "    Path(config.state_dir).mkdir(parents=True)\n"
        "    (Path(config.state_dir) / 'lagwatch.sqlite').write_text('state')\n\n\n"
        "def test_beside() -> None:\n"
        f"    (Path({str(tmp_path / 'beside')!r}) / 'lagwatch.sqlite').write_text('x')\n")
    (tmp_path / "beside").mkdir()
    # When it runs
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path / "test_leaky.py")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False,
                            env={**os.environ, "HOME": str(tmp_path / "home")})
    # Then the session fails, naming the one file written to the default state_dir
    assert result.returncode == 1, result.stdout
    assert re.search(r"AssertionError: a test used the default state_dir \(set state_dir or "
                     r"--state-dir\): /tmp/lagwatch-default-state-\w+/state/lagwatch\.sqlite"
                     r"\n", result.stdout), result.stdout
    assert re.match(r"2 passed(, \d+ warnings)?, 1 error", result.stdout.splitlines()[-1])


def test_the_launcher_refuses_a_kafka_version_that_is_not_a_release_number() -> None:
    result = subprocess.run([sys.executable, str(LAUNCHER), "fetch", "--kafka-version",
                             "4.x; rm -rf /"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "", (
        f"lagwatch: Kafka version '4.x; rm -rf /' is not a release number such as {V}\n"))
