"""Faults on the real broker and around lagwatch itself, each with its expected behaviour.

The 3-broker coordinator move is in test_cluster_health.py; a cluster unreachable for two
minutes, with alerting, in test_alerting.py.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.structs import OffsetAndMetadata
from kafka_local import LocalKafka, free_port
from workload import Consumer

from lagwatch.daemon import Daemon
from lagwatch.kafka.reader import ClusterReader
from lagwatch.store import FILE_NAME
from tests.exposition import value
from tests.fake_apis import FakeSlack, serving
from tests.integration.helpers import (
    commit,
    http_get,
    polls,
    produce,
    scrape,
    status_document,
    wait_for,
    wait_polls,
)

FAST = {"window": "2m", "min_duration": "20s", "stall_after": "4s"}


def groups(daemon: Daemon) -> dict[str, Any]:
    return status_document(daemon)["clusters"]["default"]["groups"]  # type: ignore[no-any-return]


def incidents(daemon: Daemon) -> list[dict[str, Any]]:
    assert daemon.http is not None
    return json.loads(http_get(daemon.http.url + "/api/v1/incidents")[1])["incidents"]  # type: ignore[no-any-return]


@pytest.fixture
def hook() -> Iterator[FakeSlack]:
    """A webhook receiver that accepts everything (the fake answers any path)."""
    with serving(FakeSlack()) as api:
        yield api  # type: ignore[misc]


def alerting_to(hook: FakeSlack) -> dict[str, Any]:
    return {"for": "1s", "resolve_after": "2s", "min_firing": "1s",
            "receivers": [{"name": "hook", "webhook": {"url": f"{hook.url}/hook"}}],
            "default_receivers": ["hook"]}


def actions(hook: FakeSlack) -> list[tuple[str, str]]:
    return [(c.body["action"], c.body["incident"]) for c in hook.accepted()]


def test_broker_killed_then_restarted_keeps_lagwatch_up_without_false_statuses(
        daemon: Callable[..., Daemon], hook: FakeSlack, tmp_path: Path) -> None:
    with LocalKafka() as broker:
        # Given a stopped group that has paged, and a group that is fine, on their own broker
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic("orders", 1, 1)])
        admin.wait_for_topics(["orders"])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        produce(producer, "orders", {0: 30})
        producer.close()
        commit(broker.bootstrap, "stopped", "orders", {0: 20})
        commit(broker.bootstrap, "caught-up", "orders", {0: 30})
        watching = daemon("stopped", "caught-up", bootstrap=broker.bootstrap,
                          detection=FAST, alerting=alerting_to(hook))
        wait_for(lambda: actions(hook) == [("trigger", "default/stopped/lag")], "the page")
        seen: list[tuple[str, str, bool]] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.3):
                doc = status_document(watching)["clusters"]["default"]
                seen.extend((g, d["status"], doc["up"]) for g, d in doc["groups"].items())
        threading.Thread(target=sample, daemon=True).start()
        # When the broker is killed
        assert broker.process is not None
        broker.process.kill()
        broker.stop(keep_data=True)
        wait_for(lambda: value(scrape(watching), "lagwatch_cluster_up", cluster="default") == 0,
                 "lagwatch_cluster_up 0")
        assert watching.http is not None
        wait_polls(watching.http.url, 3)  # down for a few polls
        # And comes back on the same port and data
        broker.start()
        polls_then = value(scrape(watching), "lagwatch_poll_duration_seconds_count",
                           cluster="default")
        recovered = wait_for(
            lambda: (s := scrape(watching)) and value(s, "lagwatch_cluster_up",
                                                      cluster="default") == 1 and s,
            "lagwatch_cluster_up 1", timeout_s=30)
        polls_to_recover = value(recovered, "lagwatch_poll_duration_seconds_count",
                                 cluster="default") - (polls_then or 0)
        wait_polls(watching.http.url, 3)
        sampling.set()
        watching.stop()  # before the broker goes for good, so no poll waits on it
    # Then it recovered within 2 polls, no status changed, and nothing resolved
    assert polls_to_recover <= 2
    assert {s for g, s, _ in seen if g == "stopped"} == {"stopped"}
    assert {s for g, s, _ in seen if g == "caught-up"} <= {"ok", "idle"}  # idle: no traffic
    assert {up for *_, up in seen} == {True, False}
    assert [a for a in actions(hook) if "cluster_unreachable" not in a[1]] == [
        ("trigger", "default/stopped/lag")]  # the group's incident never resolved
    assert [a for a, i in actions(hook) if i == "default//cluster_unreachable"] == [
        "trigger", "resolve"]


def test_a_deleted_group_leaves_the_status_and_resolves_its_incident(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        admin: KafkaAdminClient, unique: Callable[[str], str], hook: FakeSlack) -> None:
    topic, group = make_topic([30]), unique("doomed")
    commit(kafka_bootstrap, group, topic, {0: 20})
    watching = daemon(group, detection=FAST, alerting=alerting_to(hook))
    wait_for(lambda: ("trigger", f"default/{group}/lag") in actions(hook), "the page")
    # When
    admin.delete_groups([group])
    # Then
    wait_for(lambda: group not in groups(watching), "the group to leave the status")
    wait_for(lambda: ("resolve", f"default/{group}/lag") in actions(hook), "the resolve")
    assert status_document(watching)["clusters"]["default"]["up"] is True


def test_a_topic_deleted_and_recreated_raises_no_false_alarm(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        admin: KafkaAdminClient, producer: KafkaProducer, unique: Callable[[str], str]) -> None:
    topic, group = make_topic([300]), unique("recreated")
    commit(kafka_bootstrap, group, topic, {0: 300})
    watching = daemon(group, detection=FAST)
    wait_for(lambda: groups(watching).get(group, {}).get("status") == "ok", "ok at first")
    statuses: set[str] = set()
    # When the topic is deleted (Kafka drops the group's offsets on it), recreated with the
    # same name and 20 new messages, and the group commits on it again
    admin.delete_topics([topic])
    wait_for(lambda: topic not in groups(watching).get(group, {}).get("topics", {}),
             "the deleted topic to leave the group")
    wait_for(lambda: _create(admin, topic), "the topic to be created again", timeout_s=30)
    produce(producer, topic, {0: 20})
    commit(kafka_bootstrap, group, topic, {0: 20})
    wait_for(lambda: groups(watching).get(group, {}).get("lag_messages") == 0, "lag 0 again")
    assert watching.http is not None
    since = polls(watching.http.url)

    def five_polls_seen() -> bool:
        statuses.add(groups(watching)[group]["status"])
        return polls(watching.http.url) >= since + 5
    wait_for(five_polls_seen, "5 polls of the recreated topic")
    # Then no data loss, rewind or stall was claimed from the old offsets
    assert statuses <= {"ok", "idle", "unknown"}, statuses
    partition = groups(watching)[group]["topics"][topic]["partitions"]["0"]
    assert (partition["committed"], partition["log_end"]) == (20, 20)


def _create(admin: KafkaAdminClient, topic: str) -> bool:
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.wait_for_topics([topic])
    except Exception:
        return False
    return True


def test_partitions_added_to_a_watched_topic_appear_without_alarms(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        admin: KafkaAdminClient, unique: Callable[[str], str]) -> None:
    topic, group = make_topic([10]), unique("growing")
    commit(kafka_bootstrap, group, topic, {0: 10})
    watching = daemon(group, detection=FAST)
    wait_for(lambda: group in groups(watching), "a first poll")
    # When two partitions are added and written to, and the group commits on them
    admin.create_partitions({topic: NewPartitions(total_count=3)})
    fresh = KafkaProducer(bootstrap_servers=kafka_bootstrap)  # sees the new partitions
    produce(fresh, topic, {1: 5, 2: 7})
    fresh.close()
    commit(kafka_bootstrap, group, topic, {0: 10, 1: 5, 2: 7})
    # Then they appear, with exact numbers and no alarm
    wait_for(lambda: set(groups(watching)[group]["topics"][topic]["partitions"]) == {
        "0", "1", "2"}, "the new partitions")
    doc = groups(watching)[group]
    assert (doc["status"], doc["lag_messages"]) in {("ok", 0), ("unknown", 0)}
    committed = {p: d["committed"] for p, d in doc["topics"][topic]["partitions"].items()}
    assert committed == {"0": 10, "1": 5, "2": 7}


def test_offsets_reset_to_earliest_is_rewound_and_to_latest_is_no_alarm(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        admin: KafkaAdminClient, unique: Callable[[str], str]) -> None:
    topic, group = make_topic([100]), unique("reset")
    commit(kafka_bootstrap, group, topic, {0: 60})
    watching = daemon(group, detection=FAST)
    wait_for(lambda: groups(watching).get(group, {}).get("status") == "stopped", "stopped")
    tp = TopicPartition(topic, 0)
    # When reset to the earliest offset, and a consumer replays from there
    admin.alter_group_offsets(group, {tp: OffsetAndMetadata(0, "", -1)})
    replay = Consumer(kafka_bootstrap, topic, group, rate=5.0)
    replay.start()
    try:
        rewound = wait_for(lambda: (g := groups(watching)[group])["status"] == "rewound" and g,
                           "rewound")
    finally:
        replay.stop()
    assert rewound["reasons"][0].startswith(f"{topic}[0] moved back from offset 60 to ")
    # When reset to the latest offset
    admin.alter_group_offsets(group, {tp: OffsetAndMetadata(100, "", -1)})
    # Then nothing is wrong: not rewound, not data loss, not stopped (no lag)
    wait_for(lambda: groups(watching)[group]["status"] in {"ok", "idle"}, "no alarm")
    assert groups(watching)[group]["lag_messages"] == 0


def test_a_poll_slower_than_the_interval_is_skipped_counted_and_logged(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    topic, group = make_topic([5]), unique("slow-poll")
    commit(kafka_bootstrap, group, topic, {0: 5})
    running, most = [0], [0]
    real_poll = ClusterReader.poll

    def slow_poll(self: ClusterReader) -> Any:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            time.sleep(2.5)  # the interval is 1 s
            return real_poll(self)
        finally:
            running[0] -= 1
    monkeypatch.setattr(ClusterReader, "poll", slow_poll)
    with caplog.at_level(logging.WARNING, logger="lagwatch.daemon"):
        watching = daemon(group)
        wait_for(lambda: (value(scrape(watching), "lagwatch_poll_overruns_total",
                                cluster="default") or 0) >= 2, "two overruns", timeout_s=30)
    assert most[0] == 1  # never two polls of one cluster at once
    assert "default: a poll was skipped because the previous one is still running" in caplog.text


def test_a_corrupt_state_file_is_moved_aside_and_rebuilt(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_bytes(b"this is not a database" * 100)
    topic, group = make_topic([5]), unique("corrupt")
    commit(kafka_bootstrap, group, topic, {0: 2})
    with caplog.at_level(logging.WARNING, logger="lagwatch.store"):
        watching = daemon(group)
    wait_for(lambda: group in groups(watching), "a poll")
    assert f"state file {state / FILE_NAME} is damaged (file is not a database)" in caplog.text
    assert list(state.glob(f"{FILE_NAME}.corrupt-*"))
    assert value(scrape(watching), "lagwatch_state_writable") == 1


def test_an_unusable_state_dir_raises_lagwatch_s_own_incident(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], tmp_path: Path, hook: FakeSlack) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    topic, group = make_topic([5]), unique("no-state")
    commit(kafka_bootstrap, group, topic, {0: 2})
    watching = daemon(group, state_dir=str(blocker / "state"), alerting=alerting_to(hook))
    wait_for(lambda: ("trigger", "lagwatch/state/state_unwritable") in actions(hook),
             "lagwatch's own page")
    assert value(scrape(watching), "lagwatch_state_writable") == 0
    assert groups(watching)[group]["status"] in {"stopped", "unknown"}
    # and /readyz, still 200 (a Prometheus that stops scraping would see nothing), says so
    assert watching.http is not None
    code, body = http_get(watching.http.url + "/readyz")
    assert (code, body.decode().splitlines()[0]) == (200, "ready")
    assert body.decode().splitlines()[1].startswith("state file: history: ")
    assert body.decode().splitlines()[1].endswith("; lagwatch runs from memory")


def test_a_full_disk_keeps_lagwatch_running_and_paging_from_memory(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], hook: FakeSlack) -> None:
    topic, group = make_topic([30]), unique("full-disk")
    watching = daemon(group, detection=FAST, alerting=alerting_to(hook))
    wait_for(lambda: status_document(watching)["clusters"]["default"]["up"], "a first poll")
    # When the state file refuses every write, as on a full disk (simulated: SQLite's
    # query_only makes each write fail with an OperationalError, as a full disk does)
    for db in (watching.store._db, watching.alerter.outbox._db):  # type: ignore[union-attr]
        assert db is not None
        db.execute("PRAGMA query_only = ON")
    commit(kafka_bootstrap, group, topic, {0: 20})  # and a group stops, with lag
    # Then lagwatch pages about itself and about the group, and keeps polling
    wait_for(lambda: {("trigger", "lagwatch/state/state_unwritable"),
                      ("trigger", f"default/{group}/lag")} <= set(actions(hook)),
             "both pages", timeout_s=45)
    metrics = scrape(watching)
    assert (value(metrics, "lagwatch_state_write_errors_total") or 0) > 0
    assert value(metrics, "lagwatch_state_writable") == 0
    assert watching.alerter.outbox.path is None  # carried on in memory


def test_a_state_file_damaged_mid_file_while_running_still_pages_from_memory(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], hook: FakeSlack, tmp_path: Path) -> None:
    # Given a running daemon whose state file holds its incidents and history
    topic, group = make_topic([30]), unique("damaged")
    state = tmp_path / "damaged"
    watching = daemon(group, detection=FAST, alerting=alerting_to(hook), state_dir=str(state))
    wait_for(lambda: status_document(watching)["clusters"]["default"]["up"], "a first poll")
    # When every page but the first is overwritten in the file (its WAL written back
    # first), as a failing disk or a stray write would leave it
    path = state / FILE_NAME
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer.close()
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(4096)
        file.write(bytes(range(256)) * ((size - 4096) // 256))
    commit(kafka_bootstrap, group, topic, {0: 20})  # and a group stops, with lag
    # Then lagwatch pages about itself and about the group, from memory
    wait_for(lambda: {("trigger", "lagwatch/state/state_unwritable"),
                      ("trigger", f"default/{group}/lag")} <= set(actions(hook)),
             lambda: f"both pages (sent: {actions(hook)})", timeout_s=60)
    assert watching.alerter.outbox.path is None
    assert watching.alerter.outbox.failing == "database disk image is malformed"
    assert value(scrape(watching), "lagwatch_state_writable") == 0


def test_a_state_file_damaged_while_stopped_is_moved_aside_keeping_incidents_and_silences(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], hook: FakeSlack, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # Given a daemon that paged a stopped group and holds a silence made through the API
    topic, group = make_topic([30]), unique("damaged-stopped")
    commit(kafka_bootstrap, group, topic, {0: 20})
    state = tmp_path / "kept"
    first = daemon(group, detection=FAST, alerting=alerting_to(hook), state_dir=str(state))
    wait_for(lambda: ("trigger", f"default/{group}/lag") in actions(hook), "the page")
    silence = first.alerter.add_silence({"match": {"group": "^nothing-matches$"},
                                         "ends": "2999-01-01T00:00:00Z"}, time.time())
    wait_polls(first.http.url, 2)  # type: ignore[union-attr]
    first.stop()
    # When, while it is stopped, the history's pages are overwritten in the file
    path = state / FILE_NAME
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [n for (n,) in db.execute("SELECT pageno FROM dbstat WHERE name = 'polls'")]
    db.close()
    with path.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * 4096)
            file.write(bytes(range(256)) * 16)
    # Then the next start says so, moves it aside, and keeps its incident and its silence
    with caplog.at_level(logging.WARNING):
        second = daemon(group, detection=FAST, alerting=alerting_to(hook),
                        state_dir=str(state))
    aside = next(p for p in state.glob(f"{FILE_NAME}.corrupt-*")
                 if not p.name.endswith(("-wal", "-shm")))  # its log moved beside it
    assert f"state file {path} is damaged (" in caplog.text
    assert (f"moved it to {aside} and starting afresh, with what can still be read of its "
            "incidents, notifications and silences") in caplog.text
    assert (f"from {aside}, carried over what its incidents, receipts, silences, meta, outbox "
            "tables still held") in caplog.text
    assert silence in dict(second.alerter.silences())
    wait_polls(second.http.url, 3)  # type: ignore[union-attr]
    assert actions(hook).count(("trigger", f"default/{group}/lag")) == 1  # not paged again
    assert value(scrape(second), "lagwatch_state_writable") == 1


def test_sigterm_during_delivery_finishes_the_send_or_resumes_it_at_the_next_start(
        config_file: Callable[..., str], make_topic: Callable[..., str], kafka_bootstrap: str,
        unique: Callable[[str], str], hook: FakeSlack) -> None:
    topic, group = make_topic([30]), unique("sigterm")
    commit(kafka_bootstrap, group, topic, {0: 20})
    hook.delay_s = 3.0  # the receiver is slow
    path = config_file(group, detection=FAST, alerting=alerting_to(hook))
    state = Path(yaml.safe_load(Path(path).read_text())["state_dir"]) / FILE_NAME

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "lagwatch", "run", "-c", path,
                                 "--listen", f"127.0.0.1:{free_port()}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = start()
    wait_for(lambda: hook.in_flight, "a delivery in flight", timeout_s=30)
    # When SIGTERM arrives mid-send
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    pending = _pending(state)
    # Then either the send finished before exit, or it is still pending and the next start
    # sends it
    if pending:
        hook.delay_s = 0.0
        proc = start()
        wait_for(lambda: not _pending(state), "the pending send after restart", timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert ("trigger", f"default/{group}/lag") in actions(hook)
    assert _pending(state) == 0


def _pending(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'")
                   .fetchone()[0])
    finally:
        db.close()
