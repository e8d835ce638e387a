"""An honest scrape while 50 clients send wrong bcrypt passwords, the current lagwatch
against an older one in the same run.

    .venv/bin/python bench/auth_flood.py              # baseline: cb35605^ (a check a request)
    .venv/bin/python bench/auth_flood.py --baseline REV --clients 50 --seconds 20

Each daemon watches a cluster that cannot be reached (no broker is needed: the port is
what is measured) and guards every path with an exporter-toolkit web configuration file:
user prometheus, a bcrypt hash of cost 10 (htpasswd -nBC 10). For each daemon in turn it
scrapes /metrics with the right password 20 times alone (the quiet figures), then for
``--seconds`` while ``--clients`` clients, each from an address of its own (127.0.0.11,
127.0.0.12, ...), send wrong passwords as fast as they are answered, half of them for a
user that does not exist, it scrapes again every half second. It prints the honest
scrape's p50 and max latency, quiet and under the flood, their ratio, and how the flood
was answered.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import bcrypt

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from kafka_local import free_port  # noqa: E402

from bench.baseline import checkout, run  # noqa: E402


def get(port: int, user: str, password: str, source: str = "127.0.0.1") -> tuple[int, float]:
    """GET /metrics with Basic credentials from ``source``: the status and seconds."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120,
                                            source_address=(source, 0))
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
        status = connection.getresponse().status
    finally:
        connection.close()
    return status, time.perf_counter() - started


def up(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if get(port, "prometheus", "scrape-password")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: the daemon on port {port} did not answer")


def flood(port: int, clients: int, seconds: float) -> tuple[list[float], Counter[int]]:
    """Honest scrape latencies while ``clients`` send wrong passwords; how they were
    answered."""
    stop, answers, lock = threading.Event(), Counter[int](), threading.Lock()

    def attacker(n: int) -> None:
        tries = 0
        while not stop.is_set():
            user = "prometheus" if tries % 2 else f"nobody-{n}"
            try:
                status, _ = get(port, user, f"guess-{n}-{tries}", f"127.0.0.{11 + n}")
            except OSError:
                status = 0
            with lock:
                answers[status] += 1
            tries += 1

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    honest = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, took = get(port, "prometheus", "scrape-password")
        assert status == 200, status
        honest.append(took)
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    return honest, answers


def measure(label: str, package: Path | None, home: Path, *, web: Path, clients: int,
            seconds: float) -> tuple[float, float]:
    port = free_port()
    daemon = run(home, {"clusters": [{"name": "nowhere", "bootstrap_servers": ["127.0.0.1:1"],
                                      "request_timeout": "2s"}],
                        "persist": False, "state_dir": str(home / "state"),
                        "http": {"listen": f"127.0.0.1:{port}", "web_config_file": str(web)}},
                 package)
    try:
        up(port)
        quiet = [get(port, "prometheus", "scrape-password")[1] for _ in range(20)]
        loaded, answers = flood(port, clients, seconds)
    finally:
        daemon.terminate()
        daemon.wait(60)
    q50, l50 = statistics.median(quiet), statistics.median(loaded)
    print(f"{label:<22} quiet p50 {q50 * 1000:8.1f} ms max {max(quiet) * 1000:8.1f} ms | "
          f"flood p50 {l50 * 1000:8.1f} ms max {max(loaded) * 1000:8.1f} ms "
          f"({len(loaded)} scrapes) | p50 x{l50 / q50:.1f} | flood answered "
          f"{dict(sorted(answers.items()))}", flush=True)
    return q50, l50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="cb35605^")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lagwatch-auth-flood-") as tmp:
        home = Path(tmp)
        hashed = bcrypt.hashpw(b"scrape-password", bcrypt.gensalt(10)).decode()
        web = home / "web.yml"
        web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        old = checkout(args.baseline, home / "baseline")
        print(f"{args.clients} clients sending wrong passwords for {args.seconds:g} s; "
              "bcrypt cost 10", flush=True)
        measure(f"baseline {args.baseline}", old, home / "old", web=web, clients=args.clients,
                seconds=args.seconds)
        measure("current", None, home / "new", web=web, clients=args.clients,
                seconds=args.seconds)


if __name__ == "__main__":
    main()
