"""HTTP latency under load: 200 concurrent clients against the daemon while it polls a
50,000 group-partition fixture, the current server against an older lagwatch's in the
same run.

    .venv/bin/python bench/http_load.py                    # baseline: ddd7869 (http.server)
    .venv/bin/python bench/http_load.py --baseline REV --seconds 20 --connections 200

Needs wrk (Debian: apt-get install wrk). Starts a local broker (or uses
$LAGWATCH_BENCH_BOOTSTRAP), builds bench/poll_scale.py's fixture (200 topics x 10
partitions, 500 groups reading 10 topics each), starts both daemons polling it every
``--poll-interval``, waits for each one's first poll, then for each endpoint (/healthz,
/api/v1/status, /metrics with gzip as Prometheus asks) runs wrk against each daemon in
turn and prints requests per second, p50 and p99 latency, and errors (connects refused,
reads and timeouts), with the p99 ratio baseline/current, and how long each daemon
took to stop on SIGTERM right after the load.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from kafka_local import free_port  # noqa: E402

from bench.baseline import checkout, run  # noqa: E402
from bench.poll_scale import broker, build_fixture, say  # noqa: E402

ENDPOINTS = [("/healthz", False), ("/api/v1/status", False), ("/metrics", True)]
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class Load:
    """What one wrk run measured."""

    requests_per_s: float
    p50_s: float
    p99_s: float
    errors: str


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT_S[unit]


def wrk(url: str, gzip: bool, connections: int, seconds: int) -> Load:
    """Run wrk with ``connections`` keep-alive connections on 2 threads."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
               "--timeout", "30s", url]
    if gzip:
        command[1:1] = ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    percent = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    said = [errors.group(1) if errors else "", f"non-2xx {non_2xx.group(1)}" if non_2xx else ""]
    return Load(float(rate.group(1)) if rate else 0.0, _seconds(percent["50"]),
                _seconds(percent["99"]), "; ".join(s for s in said if s) or "none")


def first_poll(port: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/status", timeout=60) as response:
                if json.load(response)["clusters"]["default"]["last_poll"]:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise SystemExit(f"bench: no poll finished on port {port} within {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ddd7869",
                        help="git revision of the lagwatch to compare with")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20, help="per endpoint and daemon")
    parser.add_argument("--poll-interval", type=float, default=15.0)
    parser.add_argument("--topics", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--topics-per-group", type=int, default=10)
    parser.add_argument("--broker-heap", default="1g")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk was not found on PATH (Debian: apt-get install wrk)")
    with broker(args.broker_heap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        say(f"building the fixture on {bootstrap}")
        build_fixture(bootstrap, args)
        daemons = {}
        for name, package in (("lagwatch", None),
                              (f"lagwatch {args.baseline}",
                               checkout(args.baseline, Path(tmp) / "baseline"))):
            port = free_port()
            home = Path(tmp) / name.replace(" ", "-")
            daemons[name] = (port, run(home, {
                "clusters": [{"name": "default", "bootstrap_servers": [bootstrap]}],
                "poll_interval": args.poll_interval, "log_level": "warning",
                "http": {"listen": f"127.0.0.1:{port}"}, "state_dir": str(home / "state")},
                package))
        try:
            for name, (port, _) in daemons.items():
                say(f"waiting for {name}'s first poll")
                first_poll(port)
            results: dict[tuple[str, str], Load] = {}
            for path, gzip in ENDPOINTS:
                for name, (port, _) in daemons.items():
                    say(f"{name}: {path} with {args.connections} connections, "
                        f"{args.seconds} s")
                    results[(path, name)] = wrk(f"http://127.0.0.1:{port}{path}", gzip,
                                                args.connections, args.seconds)
        finally:
            stopped = {name: stop(process) for name, (_, process) in daemons.items()}
    names = list(daemons)
    print(f"\n{args.connections} concurrent keep-alive connections (wrk, 2 threads), "
          f"{args.seconds} s per endpoint and daemon; both daemons polling "
          f"{args.groups * args.topics_per_group * args.partitions:,} group-partitions "
          f"every {args.poll_interval:g} s")
    print(f"{'endpoint':22} {'daemon':18} {'req/s':>8} {'p50':>9} {'p99':>9}  errors")
    for path, gzip in ENDPOINTS:
        for name in names:
            r = results[(path, name)]
            latency = (f"{r.p50_s * 1000:>7.1f}ms {r.p99_s * 1000:>7.1f}ms" if r.requests_per_s
                       else f"{'no request completed':>19}")
            print(f"{path + (' (gzip)' if gzip else ''):22} {name:18} {r.requests_per_s:>8.1f} "
                  f"{latency}  {r.errors}")
        ours, theirs = results[(path, names[0])], results[(path, names[1])]
        if ours.requests_per_s and theirs.requests_per_s:
            print(f"{'':22} {'p99 ratio':18} {theirs.p99_s / ours.p99_s:>8.2f}x "
                  "(baseline / current)")
    for name in names:
        print(f"{name}: stopped {stopped[name]} after SIGTERM, right after the load")


def stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, and how long the daemon took to exit (killed after 60 s)."""
    started = time.monotonic()
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "only when killed, 60 s"
    return f"{time.monotonic() - started:.1f} s"


if __name__ == "__main__":
    main()
