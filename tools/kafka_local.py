"""Start a throwaway single-node Apache Kafka broker (KRaft) from Maven Central jars.

Used by the test suite (session fixture), the quick-start script and the benchmarks.

    python tools/kafka_local.py start            # runs until Ctrl-C, prints the bootstrap server
    python tools/kafka_local.py run -- CMD ...   # starts the broker, runs CMD with
                                                 # LAGWATCH_BOOTSTRAP set, stops the broker
    python tools/kafka_local.py start --kafka-version 3.9.2   # any release of RELEASES
    python tools/kafka_local.py fetch --all      # every release's jars (CI)

The jars are resolved once per release with `mvn dependency:copy-dependencies` into a cache
directory (``$LAGWATCH_KAFKA_CACHE``, default ``~/.cache/lagwatch``) and reused across runs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
LOG4J = HERE / "kafka" / "log4j2.properties"
RELEASES = ("3.9.2", "4.0.2", "4.1.2", "4.2.2", "4.3.2", "4.4.0")
"""The tested matrix: the newest patch of every Apache Kafka release from 3.9 on, oldest
first (the README's *Kafka compatibility*)."""
KAFKA_VERSION = RELEASES[-1]  # the newest: the default broker, and the suite's
READY_TOPIC = "__lagwatch_launcher_ready"

# Settings a single node needs, plus ones that keep tests fast.
BASE_PROPERTIES: Mapping[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    # consumer-protocol (KIP-848) groups: heartbeats and sessions as short as classic ones'
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.heartbeat.interval.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.session.timeout.ms": "10000",
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
    "log.retention.check.interval.ms": "5000",
}


@dataclass(frozen=True)
class Secure:
    """A secured listener beside the plaintext one (which setup code and the broker itself
    keep using): SASL_SSL with SCRAM-SHA-512 users, or SSL with client certificates
    required (mTLS). ``keystore_pem`` holds the broker's key and certificate."""

    protocol: str  # "SASL_SSL" or "SSL"
    ca_file: Path
    keystore_pem: Path
    users: Mapping[str, str] = field(default_factory=dict)  # SCRAM-SHA-512 name -> password

    def properties(self) -> dict[str, str]:
        """The broker settings of the SECURE listener."""
        prefix = "listener.name.secure."
        props = {prefix + "ssl.keystore.type": "PEM",
                 prefix + "ssl.keystore.location": str(self.keystore_pem),
                 prefix + "ssl.truststore.type": "PEM",
                 prefix + "ssl.truststore.location": str(self.ca_file)}
        if self.protocol == "SSL":
            props[prefix + "ssl.client.auth"] = "required"
        else:
            props[prefix + "sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
            props[prefix + "scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        return props

    def format_args(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM users."""
        return [arg for name, password in self.users.items()
                for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]


class LauncherError(RuntimeError):
    """A one-line, user-facing reason the broker could not be started."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    """Return where a release's resolved jars are kept between runs."""
    root = os.environ.get("LAGWATCH_KAFKA_CACHE") or Path.home() / ".cache" / "lagwatch"
    return Path(root) / f"kafka-{version}"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        hint = "install Java 17 or newer" if tool == "java" else "install Apache Maven"
        msg = f"'{tool}' was not found on PATH; the local Kafka broker needs it ({hint})"
        raise LauncherError(msg)
    return path


MANIFEST = ".manifest"  # one "size name" line per jar, written last, before the rename


def _cache_problem(target: Path) -> str | None:
    """Why a jar cache cannot be used (None: it can): missing, or not what its manifest
    lists (a copy interrupted or damaged)."""
    manifest = target / MANIFEST
    if not target.exists():
        return "missing"
    if not manifest.exists():
        return "it has no manifest (an interrupted or older copy)"
    for line in manifest.read_text().splitlines():
        size, name = line.split(" ", 1)
        jar = target / name
        if not jar.is_file() or jar.stat().st_size != int(size):
            return f"{name} is missing or not the size its manifest says"
    return None


def resolve_jars(progress: bool = True, version: str = KAFKA_VERSION) -> Path:
    """Download a release's jars once (Maven Central) and return their directory.

    Safe when several processes start at once, and after an interrupted run: the jars are
    resolved into a private directory, listed in a manifest and renamed into place under
    a file lock; a cache that does not match its manifest is resolved again.
    """
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise LauncherError(f"Kafka version {version!r} is not a release number such as "
                            f"{KAFKA_VERSION}")
    target = cache_dir(version)
    if _cache_problem(target) is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(target.name + ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"lagwatch: another process is resolving the Kafka jars into {target}; "
                      "waiting for it...", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        problem = _cache_problem(target)
        if problem is None:  # the other process finished it
            return target
        if progress:
            why = "first run only" if problem == "missing" else f"the cache is unusable: {problem}"
            print(f"lagwatch: resolving Apache Kafka {version} jars into {target} "
                  f"({why})...", file=sys.stderr, flush=True)
        _resolve_into(target, version)
    return target


def _resolve_into(target: Path, version: str) -> None:
    """Resolve the jars into a private directory, then rename it over ``target``."""
    mvn = _require("mvn")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would keep a cache shared by several users private
    try:
        cmd = [mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
               f"-Dkafka.version={version}", "-DincludeScope=runtime",
               f"-DoutputDirectory={tmp}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(tmp.glob("*.jar"))
        if result.returncode != 0 or not jars:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise LauncherError(f"mvn could not resolve the Kafka {version} jars: "
                                + (" | ".join(tail) or "it copied no jar"))
        (tmp / MANIFEST).write_text("".join(f"{j.stat().st_size} {j.name}\n" for j in jars))
        if target.exists():  # unusable: out of the way first, then gone
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            target.rename(aside / "jars")
            shutil.rmtree(aside, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def die_with_parent() -> None:
    """Linux: the child (a preexec_fn) gets SIGKILL when the thread that started it ends,
    so no broker or CPU hog outlives a test run that was killed. Start it from a thread
    that lives as long as the child should."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def new_cluster_id() -> str:
    """Return a KRaft cluster id: URL-safe base64 of 16 random bytes, not starting with -."""
    cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    return "A" + cluster_id[1:] if cluster_id.startswith("-") else cluster_id


class LocalKafka:
    """A KRaft broker+controller of Apache Kafka ``version`` on free loopback ports in a
    temporary directory.

    Alone it is a single-node cluster (``--standalone``). With ``voters`` it is one node of
    a static quorum; see KafkaCluster.
    """

    def __init__(self, extra_properties: Mapping[str, str] | None = None,
                 heap: str = "512m", workdir: Path | None = None,
                 port: int | None = None, *, node_id: int = 1, voters: str | None = None,
                 cluster_id: str | None = None, controller_port: int | None = None,
                 secure: Secure | None = None, version: str = KAFKA_VERSION) -> None:
        self.version = version
        self.extra_properties = dict(extra_properties or {})
        self.heap = heap
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="lagwatch-kafka-"))
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.node_id, self.voters = node_id, voters
        self.cluster_id = cluster_id or new_cluster_id()
        self.secure = secure
        self.secure_port = free_port() if secure else None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_mark = 0

    @property
    def bootstrap(self) -> str:
        """Return the bootstrap server clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap(self) -> str:
        """Return the secured listener's address (only with ``secure``)."""
        assert self.secure_port is not None, "this broker has no secured listener"
        return f"127.0.0.1:{self.secure_port}"

    @property
    def log_file(self) -> Path:
        """Return the broker's server.log."""
        return self.workdir / "logs" / "server.log"

    def _properties(self) -> dict[str, str]:
        props = dict(BASE_PROPERTIES)
        props.update({
            "node.id": str(self.node_id),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.workdir / "data"),
        })
        if self.secure is not None:
            props["listeners"] += f",SECURE://127.0.0.1:{self.secure_port}"
            props["advertised.listeners"] += f",SECURE://127.0.0.1:{self.secure_port}"
            props["listener.security.protocol.map"] += f",SECURE:{self.secure.protocol}"
            props.update(self.secure.properties())
        if self.voters:
            props["controller.quorum.voters"] = self.voters
        else:
            props["controller.quorum.bootstrap.servers"] = f"127.0.0.1:{self.controller_port}"
        props.update(self.extra_properties)
        return props

    def _java(self, jars: Path, *args: str) -> list[str]:
        return [_require("java"), f"-Xms{min(256, int(self.heap[:-1]))}m", f"-Xmx{self.heap}",
                "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.workdir / 'logs'}",
                f"-Dlog4j2.configurationFile={LOG4J}",
                "-cp", f"{jars}/*", *args]

    def start(self, timeout_s: float = 90.0) -> LocalKafka:
        """Format storage, start the broker and wait until it serves groups; a start that
        fails stops what it started and removes its directory."""
        try:
            self.launch()
            deadline = time.monotonic() + timeout_s
            self.wait_started(deadline)
            _wait_for_coordinator(self.bootstrap, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Format storage (once; a restart keeps its data) and start the process."""
        _require("java")
        jars = resolve_jars(version=self.version)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in self._properties().items()))
        if not (self.workdir / "data" / "meta.properties").exists():
            standalone = [] if self.voters else ["--standalone"]
            fmt = subprocess.run(
                self._java(jars, "kafka.tools.StorageTool", "format", *standalone,
                           "-t", self.cluster_id, "-c", str(config),
                           *(self.secure.format_args() if self.secure else [])),
                capture_output=True, text=True, check=False)
            if fmt.returncode != 0:
                raise LauncherError("formatting Kafka storage failed: "
                                    + (fmt.stdout + fmt.stderr).strip().splitlines()[-1])
        self._log_mark = len(self._log_text())
        stdout = (self.workdir / "logs" / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            self._java(jars, "kafka.Kafka", str(config)),
            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal is for lagwatch; we stop Kafka last
            preexec_fn=die_with_parent)  # noqa: PLW1509 - only a prctl call, no locks
        stdout.close()

    def wait_started(self, deadline: float) -> None:
        """Block until this launch logged that the server started."""
        while "Kafka Server started" not in self._log_text()[self._log_mark:]:
            self._check_alive()
            if time.monotonic() > deadline:
                raise LauncherError(f"Kafka did not start in time; see {self.log_file}")
            time.sleep(0.2)

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            out = (self.workdir / "logs" / "stdout.log").read_text(errors="replace")
            last = (out.strip().splitlines() or ["(no output)"])[-1]
            msg = f"Kafka exited with status {self.process.returncode}: {last}"
            raise LauncherError(msg)

    def stop(self, timeout_s: float = 20.0, keep_data: bool = False) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after timeout_s; remove its directory
        unless keep_data (to start it again later)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_workdir and not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class KafkaCluster:
    """Several KRaft nodes (each broker and controller) forming one cluster on loopback."""

    def __init__(self, nodes: int = 3, heap: str = "384m") -> None:
        ports = [free_port() for _ in range(nodes)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
        cluster_id = new_cluster_id()
        replication = {
            "offsets.topic.replication.factor": str(nodes),
            "default.replication.factor": str(nodes),
            "min.insync.replicas": str(max(1, nodes - 1)),
            "transaction.state.log.replication.factor": str(nodes),
            "transaction.state.log.min.isr": str(max(1, nodes - 1)),
            "share.coordinator.state.topic.replication.factor": str(nodes),
            "share.coordinator.state.topic.min.isr": str(max(1, nodes - 1)),
        }
        self.nodes = [LocalKafka(replication, heap, node_id=i + 1, voters=voters,
                                 cluster_id=cluster_id, controller_port=port)
                      for i, port in enumerate(ports)]

    @property
    def bootstrap(self) -> str:
        """Return every node's address, comma-separated."""
        return ",".join(n.bootstrap for n in self.nodes)

    def start(self, timeout_s: float = 120.0) -> KafkaCluster:
        """Start every node and wait until the cluster serves groups."""
        deadline = time.monotonic() + timeout_s
        try:
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_started(deadline)
            _wait_for_coordinator(self.bootstrap, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop_node(self, index: int) -> None:
        """Stop one node, keeping its data so it can come back."""
        self.nodes[index].stop(keep_data=True)

    def start_node(self, index: int, timeout_s: float = 90.0) -> None:
        """Start a stopped node again on the same ports and data."""
        self.nodes[index].launch()
        self.nodes[index].wait_started(time.monotonic() + timeout_s)

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _wait_for_coordinator(bootstrap: str, deadline: float) -> None:
    """Block until a topic can be created and the group coordinator answers."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","),
                                     request_timeout_ms=5000, bootstrap_timeout_ms=5000)
        except KafkaError as exc:
            last = exc
            time.sleep(0.3)
            continue
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(READY_TOPIC, 1, 1)])
            admin.list_group_offsets({"__lagwatch_launcher_probe": None})
            return
        except KafkaError as exc:
            last = exc
            time.sleep(0.3)
        finally:
            admin.close()
    raise LauncherError(f"Kafka's group coordinator did not become ready: {last!r}")


@contextlib.contextmanager
def running_broker(**kwargs: object) -> Iterator[LocalKafka]:
    """Run a LocalKafka for the duration of a with-block."""
    broker = LocalKafka(**kwargs)  # type: ignore[arg-type]
    with broker:
        yield broker


def _run_command(broker: LocalKafka, command: list[str], demo: bool) -> int:
    """Run the user's command against the broker; {bootstrap} and {workdir} are filled in.

    With ``demo``, the demo traffic runs too, the command's log goes to a file in the
    broker's directory, and the terminal shows lagwatch's live status table instead.
    """
    traffic = None
    if demo:
        from demo_traffic import GROUPS, DemoTraffic

        print(f"lagwatch: starting demo traffic on topic demo-orders (groups "
              f"{', '.join(GROUPS)}) and demo-orders.DLT", file=sys.stderr, flush=True)
        traffic = DemoTraffic(broker.bootstrap, broker.workdir).start()
    env = dict(os.environ, LAGWATCH_BOOTSTRAP=broker.bootstrap)
    log_path = broker.workdir / "lagwatch.log"
    log = log_path.open("ab") if demo else None
    listen = _demo_listen()
    while True:
        argv = [c.replace("{bootstrap}", broker.bootstrap)
                .replace("{workdir}", str(broker.workdir)).replace("{listen}", listen)
                for c in command if c != "--"]
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE if demo else None,
                                 stderr=log, text=True)
        first = child.stdout.readline() if child.stdout is not None else ""
        # another demo took 9391 between the look and lagwatch's bind: any free port then
        taken = f"cannot listen on {listen}: Address already in use"
        if (demo and not first and listen.endswith(":9391") and child.wait() == 3
                and taken in log_path.read_text(errors="replace")):
            listen = "127.0.0.1:0"
            continue
        break
    # Ctrl-C reaches the child through the terminal's process group; SIGTERM is passed on.
    # Either way the child decides when to exit, and the broker stops after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    stop_view = threading.Event()
    try:
        if demo:
            _show_status(first, stop_view, log_path, broker.bootstrap)
        code = child.wait()
    finally:
        stop_view.set()
        if traffic is not None:
            traffic.stop()
        if log is not None:
            log.close()
    if demo and code > 0:  # it failed: show why, since its log goes with the broker's dir
        tail = (broker.workdir / "lagwatch.log").read_text(errors="replace").splitlines()
        print("\n".join(tail[-5:]), file=sys.stderr)
    return 128 - code if code < 0 else code


def _demo_listen(port: int = 9391) -> str:
    """127.0.0.1:9391 when it is free at this moment, else any free port: two demos
    started together each get one (decided as lagwatch starts, not minutes before)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as lagwatch's server binds: a port an earlier demo just left is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return "127.0.0.1:0"
    return f"127.0.0.1:{port}"


def _show_status(first: str, stop: threading.Event, log: Path, broker: str) -> None:
    """Print lagwatch's start line, then keep its status table on screen (with where its
    log is) until it exits."""
    from demo_view import watch

    found = re.search(r"status at (\S+)/api/v1/status", first)
    if found is None:  # lagwatch did not start; its log says why
        return
    print(first.strip(), file=sys.stderr, flush=True)
    threading.Thread(target=watch, args=(found.group(1), stop),
                     kwargs={"log": str(log), "broker": broker}, daemon=True).start()


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kafka_local", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    fetch = sub.add_parser("fetch", help="resolve the jars into the cache and exit")
    fetch.add_argument("--all", action="store_true",
                       help=f"every release of the tested matrix ({', '.join(RELEASES)})")
    start = sub.add_parser("start", help="run a broker until interrupted")
    run = sub.add_parser("run", help="run a broker around a command")
    for verb in (fetch, start, run):
        verb.add_argument("--kafka-version", default=KAFKA_VERSION, metavar="X.Y.Z",
                          help=f"the Apache Kafka release (default {KAFKA_VERSION}, the "
                               f"newest tested; tested: {', '.join(RELEASES)})")
    run.add_argument("--demo", action="store_true",
                     help="create demo-orders and demo consumer groups with live traffic")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.verb == "fetch":
            for version in RELEASES if args.all else (args.kafka_version,):
                print(resolve_jars(version=version))
            return 0
        print("lagwatch: starting a local Kafka broker...", file=sys.stderr, flush=True)
        with running_broker(version=args.kafka_version) as broker:
            print(f"lagwatch: local Kafka {broker.version} is up at {broker.bootstrap} "
                  f"(logs: {broker.log_file})", file=sys.stderr, flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            if args.verb == "start":
                with contextlib.suppress(KeyboardInterrupt):
                    signal.pause()
                return 0
            return _run_command(broker, args.command, demo=args.demo)
    except LauncherError as exc:
        print(f"lagwatch: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
