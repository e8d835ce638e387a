"""lagwatch audit on the real broker: one group set up to pass every item lagwatch can
observe, and one group for each item set up to fail it: Java (kafka-clients) and
kafka-python members configured as teams configure them (auto-commit, no static
membership, the eager range assignor with a short max.poll.interval.ms, more members than
partitions, one hot key, short retention, a slow reader of a compacted topic, unclean
leader election)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata
from workload import Consumer, JavaConsumer, Producer

from lagwatch.daemon import Daemon
from tests.integration.helpers import (
    ScenarioDaemon,
    commit,
    http_get,
    produce,
    settled,
    status_document,
    wait_for,
)

CASES = ("good", "auto", "eager", "crowd", "hot", "short", "compact", "unclean", "kip848")
AGE = r"\d+[smhd](?: \d+[smh])?"  # a duration as lagwatch writes one: 45s, 6m 10s
DAY_MS = 86_400_000


@dataclass
class Stage:
    names: dict[str, str]  # case -> group and topic name
    config: str
    workers: list[Any]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lagwatch", "audit", "-c", self.config,
                               *args], capture_output=True, text=True, timeout=300, check=False)


def _topics(names: dict[str, str]) -> list[NewTopic]:
    configs = {"good": {"retention.ms": str(8 * DAY_MS)}, "short": {"retention.ms": str(DAY_MS)},
               "compact": {"cleanup.policy": "compact"},
               "unclean": {"unclean.leader.election.enable": "true"}}
    counts = {"good": 4, "auto": 2, "eager": 2, "crowd": 2, "hot": 4, "kip848": 2}
    return [NewTopic(names[c], counts.get(c, 1), 1, topic_configs=configs.get(c, {}))
            for c in CASES] + [NewTopic(f"{names['good']}.DLT", 1, 1)]


@pytest.fixture(scope="module")
def stage(java: str, kafka_bootstrap: str, admin: KafkaAdminClient, producer: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    run = str(int(time.time()))
    names = {c: f"audit-{c}-{run}" for c in CASES}
    admin.create_topics(_topics(names))
    admin.wait_for_topics([*names.values(), f"{names['good']}.DLT"])
    produce(producer, f"{names['good']}.DLT", {0: 3})  # what the DLQ's reader commits past
    tmp = tmp_path_factory.mktemp("audit")
    config = tmp / "lagwatch.yaml"
    config.write_text(yaml.safe_dump({
        "clusters": [{"name": "default", "bootstrap_servers": [kafka_bootstrap],
                      "groups": {"include": [f"^audit-.*-{run}$"]}}],
        "state_dir": str(tmp / "state"),
        # one broker: the durability standard is lowered so that a topic can pass it
        "audit": {"min_replication_factor": 1, "min_insync_replicas": 1},
        "alerting": {"receivers": [{"name": "sre", "webhook": {"url": "https://127.0.0.1:9/h"}}],
                     "routes": [{"match": {"group": f"^audit-good-{run}$"},
                                 "receivers": ["sre"]}]}}))
    n = names
    every = [n[c] for c in ("good", "auto", "eager", "crowd", "short", "unclean", "kip848")]
    producers = [Producer(kafka_bootstrap, every, 10, key=lambda i: b"%d" % i),
                 Producer(kafka_bootstrap, [n["hot"]], 20, key=lambda _i: b"the-one-key"),
                 Producer(kafka_bootstrap, [n["compact"]], 20, key=lambda i: b"%d" % (i % 10))]
    # Java consumers (kafka-clients) set up as teams set them up, good and bad
    settings = {
        "good": {"group.instance.id": "good-0",
                 "partition.assignment.strategy":
                     "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"},
        "auto": {"enable.auto.commit": "true", "auto.commit.interval.ms": "1000"},
        "eager": {"partition.assignment.strategy":
                      "org.apache.kafka.clients.consumer.RangeAssignor",
                  "max.poll.interval.ms": "10000", "session.timeout.ms": "6000",
                  "heartbeat.interval.ms": "2000"}}
    javas = [JavaConsumer(java, kafka_bootstrap, n[c], n[c], "classic", client_id=f"java-{c}",
                          settings=s) for c, s in settings.items()]
    # and one on the consumer protocol (KIP-848), static
    javas.append(JavaConsumer(java, kafka_bootstrap, n["kip848"], n["kip848"], "consumer",
                              client_id="java-kip848",
                              settings={"group.instance.id": "kip848-0"}))
    # kafka-python members that commit after each poll that read
    pythons = [*(Consumer(kafka_bootstrap, n["crowd"], n["crowd"]) for _ in range(3)),
               *(Consumer(kafka_bootstrap, n[c], n[c]) for c in ("hot", "short", "unclean")),
               Consumer(kafka_bootstrap, n["compact"], n["compact"], rate=2),
               Consumer(kafka_bootstrap, f"{n['good']}.DLT", f"audit-gooddlq-{run}")]
    workers: list[Any] = [*producers, *javas, *pythons]
    try:
        for w in workers:
            w.start()
        for w in [*javas, *pythons[3:]]:
            assert w.joined.wait(60), w.group
        # two of the crowd's three members own its two partitions: the group has settled
        wait_for(lambda: settled(admin, n["crowd"]) == (3, 2),
                 lambda: f"the crowd to settle (members, owners: {settled(admin, n['crowd'])})",
                 timeout_s=120)
        # and every group with work commits (the DLQ's reader has read its three)
        # (a busy host can hold a kafka-python member in a rebalance until it is restarted)
        groups = [*(n[c] for c in CASES), f"audit-gooddlq-{run}"]
        wait_for(lambda: not _uncommitted(admin, groups),
                 lambda: f"every group to commit (not yet: {_uncommitted(admin, groups)})",
                 timeout_s=120)
        yield Stage(names, str(config), workers)
    finally:
        for w in workers:
            w.stop()


def _uncommitted(admin: KafkaAdminClient, groups: list[str]) -> list[str]:
    """The groups that have not committed an offset yet."""
    committed = admin.list_group_offsets(dict.fromkeys(groups))
    return [g for g in groups if not any(om.offset > 0 for om in committed.get(g, {}).values())]


def _items(doc: dict[str, Any], group: str) -> dict[str, tuple[str, list[str]]]:
    items = doc["clusters"]["default"]["groups"][group]["items"]
    return {i["id"]: (i["outcome"], i["evidence"]) for i in items}


@pytest.fixture(scope="module")
def audited(stage: Stage) -> dict[str, Any]:
    result = stage.cli("--samples", "8", "--interval", "2s", "--format", "json")
    assert result.returncode == 2, result.stderr
    assert "lagwatch: sample 7/8 taken; next in 2s" in result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_group_set_up_well_passes_every_item_lagwatch_can_observe(
        stage: Stage, audited: dict[str, Any]) -> None:
    group, topic = stage.names["good"], stage.names["good"]
    items = _items(audited, group)
    outcomes = {k: v[0] for k, v in items.items()}
    assert outcomes == {
        "idempotency": "not observable", "commit_strategy": "pass", "dlq": "pass",
        "poison_pill": "pass", "lag_alerting": "pass", "static_membership": "pass",
        "rebalance_settings": "pass", "scaling": "pass", "key_cardinality": "pass",
        "retention_replay": "pass", "compaction": "pass", "durability": "pass",
        "replay_tooling": "not observable", "shadow_environment": "not observable",
        "crash_tests": "not observable"}, items
    assert items["dlq"][1] == [f"{topic} -> {topic}.DLT: read by audit-gooddlq-"
                               f"{group.rsplit('-', 1)[1]}; 0 messages arrived in the window"]
    assert items["static_membership"][1] == ["1 of 1 member set group.instance.id: good-0"]
    assert items["lag_alerting"][1] == ["critical: sre", "warning: sre"]
    assert items["scaling"][1] == [f"{topic}: 1 member for 4 partitions: room for 3 more"]
    assert items["durability"][1] == [f"{topic}: replication factor 1, min.insync.replicas 1, "
                                      "unclean.leader.election.enable false"]
    assert items["rebalance_settings"][1][0] == "assignor cooperative-sticky"
    # the members' timeouts, from the group's metadata record in __consumer_offsets
    assert items["rebalance_settings"][1][2] == ("java-good: session.timeout.ms 10000, "
                                                 "max.poll.interval.ms 300000")
    assert re.fullmatch(rf"{topic}: keeps 8d; the oldest record is {AGE} old",
                        items["retention_replay"][1][0])


def test_a_group_on_the_consumer_protocol_is_judged_by_what_it_sets(
        stage: Stage, audited: dict[str, Any]) -> None:
    items = _items(audited, stage.names["kip848"])
    assert items["static_membership"] == ("pass", [
        "1 of 1 member set group.instance.id: kip848-0"])
    assert items["rebalance_settings"] == ("pass", [
        "consumer protocol (KIP-848): server-side assignor uniform, incremental rebalances",
        "0.0 rebalances an hour (the limit is 6)"])


def test_the_cluster_items_carry_the_brokers_numbers(audited: dict[str, Any]) -> None:
    items = {i["id"]: (i["outcome"], i["evidence"])
             for i in audited["clusters"]["default"]["items"]}
    assert items.keys() == {"broker_disk", "under_replicated", "controller_moves"}
    outcome, disk = items["broker_disk"]
    assert outcome == "pass"
    assert re.fullmatch(r"1 log dir, the fullest \d+% used", disk[0]), disk
    outcome, replicas = items["under_replicated"]
    assert outcome == "pass"
    assert re.fullmatch(r"none of \d+ partitions under-replicated", replicas[0]), replicas
    assert items["controller_moves"] == ("pass", ["0 controller moves seen"])


@pytest.mark.parametrize(("case", "item", "outcome"), [
    ("auto", "commit_strategy", "warn"), ("auto", "dlq", "fail"),
    ("auto", "static_membership", "warn"), ("auto", "lag_alerting", "fail"),
    ("eager", "rebalance_settings", "fail"), ("crowd", "scaling", "warn"),
    ("hot", "key_cardinality", "warn"), ("short", "retention_replay", "fail"),
    ("compact", "compaction", "fail"), ("unclean", "durability", "fail")])
def test_each_group_set_up_to_fail_an_item_fails_it_with_its_evidence(
        stage: Stage, audited: dict[str, Any], case: str, item: str, outcome: str) -> None:
    name = stage.names[case]
    got, evidence = _items(audited, name)[item]
    assert got == outcome, (evidence, _items(audited, name))
    expected: dict[tuple[str, str], list[str] | str] = {
        ("auto", "commit_strategy"): r"looks like auto-commit: a commit request every "
                                     r"1\.\ds \(±0\.\ds\), (\d+) of \1 with all 2 partitions",
        ("auto", "dlq"): [f"{name}: no dead-letter topic (none named for it by the dlq "
                          "patterns or dlq.topics)"],
        ("auto", "static_membership"): ["0 of 1 member set group.instance.id"],
        ("auto", "lag_alerting"): ["critical: no receiver", "warning: no receiver"],
        ("crowd", "scaling"): [f"{name}: 2 members own its 2 partitions: no room to scale out",
                               "1 member of 3 own no partition and sit idle"],
        ("hot", "key_cardinality"): [f"{name}: the busiest partition takes 4.0x the mean "
                                     "produce rate of 4 partitions: a hot key?"],
        ("short", "retention_replay"): rf"{name}: keeps 1d \(retention\.ms 86400000\), less "
                                       r"than the replay requirement of 7d; the oldest "
                                       rf"record is {AGE} old",
        ("compact", "compaction"): rf"{name}: compacted, min\.compaction\.lag\.ms 0; the "
                                   rf"group is {AGE} behind: updates may be compacted away "
                                   r"unread",
        ("unclean", "durability"): [f"{name}: replication factor 1, min.insync.replicas 1, "
                                    "unclean.leader.election.enable true"],
    }.get((case, item), [])
    if isinstance(expected, str):
        assert re.fullmatch(expected, evidence[0]), evidence
    elif expected:
        assert evidence == expected
    if (case, item) == ("eager", "rebalance_settings"):
        assert evidence[0] == "assignor range (eager: every rebalance stops the whole group)"
        assert evidence[2] == "java-eager: session.timeout.ms 6000, max.poll.interval.ms 10000"
        assert evidence[3] == ("max.poll.interval.ms below 1m: a slow batch rebalances the "
                               "group")


def test_text_and_markdown_carry_the_same_items(stage: Stage) -> None:
    short = stage.names["short"]
    text = stage.cli("--samples", "1", "--group", f"^{short}$")
    assert text.returncode == 2, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("cluster default: 3 pass (observed over ")
    assert re.search(rf"^group {short}: \d+ pass, \d+ not observable, \d+ warn, \d+ fail$",
                     text.stdout, re.M)
    at = lines.index("  [fail] Retention period matches replay requirements")
    assert re.fullmatch(rf"      {short}: keeps 1d \(retention\.ms 86400000\), less than the "
                        rf"replay requirement of 7d; the oldest record is {AGE} old", lines[at + 1])
    assert lines[at + 2] == ("      -> Keep at least 7d (audit.replay_requirement), or change "
                             "the requirement to what replays really need.")
    markdown = stage.cli("--samples", "1", "--group", f"^{short}$", "--format", "markdown")
    assert markdown.returncode == 2, markdown.stderr
    md = markdown.stdout.splitlines()
    at = md.index("- [ ] **Retention period matches replay requirements**: fail")
    assert md[at + 2] == ("  - *What to do*: Keep at least 7d (audit.replay_requirement), or "
                          "change the requirement to what replays really need.")
    assert "- [x] **Log compaction behaviour understood**: pass" in md


def test_bad_input_is_one_line_and_exit_3(stage: Stage, tmp_path: Path) -> None:
    none = stage.cli("--samples", "1", "--group", "^no-such-group$")
    assert (none.returncode, none.stdout) == (3, "")
    assert none.stderr.startswith("lagwatch: --group '^no-such-group$' matches none of the "
                                  "watched groups (audit-")
    bad = stage.cli("--group", "(")
    assert (bad.returncode, bad.stderr) == (3, (
        "lagwatch: --group: invalid regex '(': missing ): ( (patterns are RE2, as in "
        "Prometheus: no backreferences or lookaround)\n"))
    config = tmp_path / "bad.yaml"
    config.write_text("clusters: [{name: a, bootstrap_servers: ['127.0.0.1:1']}]\n"
                      "audit: {replay_requirement: soon}\n")
    result = subprocess.run([sys.executable, "-m", "lagwatch", "audit", "-c", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (3, (
        "lagwatch: audit.replay_requirement: invalid duration 'soon': use 500ms, 30s, 5m, "
        "1h or seconds\n"))
    down = subprocess.run([sys.executable, "-m", "lagwatch", "audit", "--bootstrap-server",
                           "127.0.0.1:1", "--samples", "1"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (down.returncode, down.stdout, down.stderr) == (3, "", (
        "lagwatch: cluster 'default' is unreachable at 127.0.0.1:1: KafkaConnectionError: "
        "111 ECONNREFUSED\n"))


def test_the_daemon_audits_a_stalled_group_from_its_own_history(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        tmp_path: Path) -> None:
    topic = make_topic([0, 0])
    group = unique("audit-stuck")
    traffic = Producer(kafka_bootstrap, [topic], 10)
    stuck = Consumer(kafka_bootstrap, topic, group)
    lagwatch = ScenarioDaemon(kafka_bootstrap, tmp_path, f"^{group}$")
    try:
        traffic.start()
        stuck.start()
        assert stuck.joined.wait(60)
        stuck.paused = {0}  # a poison pill on partition 0: its offset stands still
        lagwatch.start(group)
        wait_for(lambda: lagwatch.groups()[group]["status"] == "stalled", "the group to stall",
                 timeout_s=120)
        base = lagwatch.daemon.http.url if lagwatch.daemon.http else ""
        code, body = http_get(f"{base}/api/v1/audit?group=%5E{group}%24")
        assert code == 200, body
        outcome, evidence = _items(json.loads(body), group)["poison_pill"]
        assert outcome == "fail"
        assert evidence[0] == ("stalled now: a partition's offset stands still with messages "
                               "waiting")
        assert re.fullmatch(r"stalled from \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", evidence[1])
        code, body = http_get(f"{base}/api/v1/audit?group=nothing-like-it")
        assert (code, json.loads(body)) == (404, {
            "error": "group 'nothing-like-it' matches none of the watched groups"})
    finally:
        lagwatch.stop()
        stuck.stop()
        traffic.stop()


def _daemon_items(daemon: Daemon, group: str) -> dict[str, tuple[str, list[str]]]:
    assert daemon.http is not None
    code, body = http_get(f"{daemon.http.url}/api/v1/audit?group=%5E{group}%24")
    assert code == 200, body
    return _items(json.loads(body), group)


def test_a_replay_in_the_window_asks_for_idempotent_handlers(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        admin: KafkaAdminClient, unique: Callable[[str], str]) -> None:
    # Given a group at offset 60 of 100, reset to the earliest offset and replaying
    topic, group = make_topic([100]), unique("audit-replay")
    commit(kafka_bootstrap, group, topic, {0: 60})
    watching = daemon(group, detection={"window": "2m", "min_duration": "20s",
                                        "stall_after": "4s"})
    wait_for(lambda: status_document(watching)["clusters"]["default"]["groups"]
             .get(group, {}).get("status") == "stopped", "stopped")
    assert _daemon_items(watching, group)["idempotency"] == ("not observable", [
        "lagwatch cannot see whether handlers are idempotent; no replay seen"])
    admin.alter_group_offsets(group, {TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)})
    replay = Consumer(kafka_bootstrap, topic, group, rate=5.0)
    replay.start()
    try:
        rewound = wait_for(lambda: (g := status_document(watching)["clusters"]["default"]
                                    ["groups"][group])["status"] == "rewound" and g, "rewound")
        outcome, evidence = _daemon_items(watching, group)["idempotency"]
    finally:
        replay.stop()
    # Then the audit names the replay: from 60 back to where lagwatch first saw it
    moved = re.match(rf"{topic}\[0\] moved back from offset 60 to \d+: (\d+) messages will be "
                     "processed again", rewound["reasons"][0])
    assert moved, rewound["reasons"]
    assert outcome == "warn"
    assert len(evidence) == 1
    assert re.fullmatch(rf"replayed {moved[1]} messages of {topic}\[0\] at \d{{4}}-\d\d-\d\dT"
                        r"\d\d:\d\d:\d\dZ: check the handlers are idempotent", evidence[0])


def test_dead_letters_while_the_group_consumes_are_poison_pills_handled(
        daemon: Callable[..., Daemon], make_topic: Callable[..., str], kafka_bootstrap: str,
        producer: Any, unique: Callable[[str], str]) -> None:
    # Given a group keeping up with its topic, and 7 messages sent to the topic's DLQ
    topic = make_topic([0])
    dlq = make_topic([0], name=f"{topic}.DLT")
    group = unique("audit-pills")
    traffic = Producer(kafka_bootstrap, [topic], 10)
    reader = Consumer(kafka_bootstrap, topic, group)
    watching = daemon(group)
    try:
        traffic.start()
        reader.start()
        assert reader.joined.wait(60)
        wait_for(lambda: (status_document(watching)["clusters"]["default"]["groups"]
                          .get(group, {}).get("topics", {}).get(topic, {})
                          .get("consume_rate") or 0) > 0, "the group to consume")
        produce(producer, dlq, {0: 7})
        # Then the poison-pill item passes, naming the dead letters
        wait_for(lambda: len(_daemon_items(watching, group)["poison_pill"][1]) == 2,
                 lambda: f"the dead letters counted ({_daemon_items(watching, group)})")
        outcome, evidence = _daemon_items(watching, group)["poison_pill"]
    finally:
        reader.stop()
        traffic.stop()
    assert outcome == "pass"
    assert evidence[1] == "7 messages went to a dead-letter topic while the group kept consuming"
    assert re.fullmatch(r"no stalled partition in \d+[smh](?: \d+s)?", evidence[0])
