"""Many clusters: their polls share a bounded pool of threads, and a stop runs none of the
polls still queued."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from lagwatch.config import load_config
from lagwatch.daemon import Daemon, Poller
from tests.integration.helpers import wait_for


def test_polls_of_many_clusters_share_the_pool_and_a_stop_drops_the_queued_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 50 clusters, 4 poll threads, and polls that hang until released
    path = tmp_path / "lagwatch.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": f"c{i}", "bootstrap_servers": ["127.0.0.1:1"]}
                     for i in range(50)],
        "poll_threads": 4, "state_dir": str(tmp_path / "state"),
        "http": {"listen": "127.0.0.1:0"}}))
    started: list[str] = []
    lock, release = threading.Lock(), threading.Event()

    def hanging_poll(poller: Poller) -> None:
        with lock:
            started.append(poller.collector.cluster.name)
        release.wait()

    monkeypatch.setattr(Poller, "poll", hanging_poll)
    daemon = Daemon(load_config(str(path)))
    daemon.start()
    # When the pool is full, Then four polls run and 46 wait, with no thread for them
    wait_for(lambda: len(started) == 4, "four polls in flight")
    assert len([t for t in threading.enumerate()
                if t.name.startswith("ThreadPoolExecutor")]) == 4
    # When the daemon stops while they are in flight
    stopping = threading.Thread(target=daemon.stop)
    stopping.start()
    wait_for(lambda: daemon._stopped, "the stop to begin")
    release.set()
    stopping.join()
    # Then none of the 46 queued polls ran
    assert len(started) == 4
