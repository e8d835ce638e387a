"""Each trouble, played by real producers and consumers, reaches its status in the API.

One daemon (1 s polls, 20 s minimum duration, 15 s stall window) watches seven groups,
each on its own topic written at 40 msg/s. Every scenario must reach its status within
the time stated in its test, and the healthy group must never be anything but ok (or
unknown while its history is shorter than the minimum duration).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata
from workload import Consumer, Producer

from tests.integration.helpers import ScenarioDaemon, ScenarioStage, wait_for, wait_polls

RATE = 40.0
SCENARIOS = ("healthy", "slow", "stuck", "retrying", "stopped", "rewound", "loss")


class Stage(ScenarioStage):
    """The running scenarios and the daemon watching them."""

    def __init__(self, bootstrap: str, admin: KafkaAdminClient, tmp: Path, run: str) -> None:
        self.bootstrap, self.admin = bootstrap, admin
        self.topic = {s: f"detect-{s}-{run}" for s in SCENARIOS}
        self.group = {s: f"detect-{s}-{run}" for s in SCENARIOS}
        admin.create_topics([NewTopic(t, 1, 1) for t in self.topic.values()])
        admin.wait_for_topics(list(self.topic.values()))
        self.producer = Producer(bootstrap, list(self.topic.values()), RATE)
        self.consumers = {s: Consumer(bootstrap, self.topic[s], self.group[s],
                                      rate=RATE / 2 if s == "slow" else None)
                          for s in SCENARIOS}
        self.watched = ScenarioDaemon(bootstrap, tmp, f"^detect-.*-{run}$")

    def statuses(self, scenario: str) -> list[str]:
        return self.watched.statuses[self.group[scenario]]

    def group_documents(self) -> dict[str, dict[str, Any]]:
        groups = self.watched.groups()
        return {s: groups[self.group[s]] for s in SCENARIOS if self.group[s] in groups}

    def reaches(self, scenario: str, status: str, within_s: float) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            seen.update(self.group_documents().get(scenario) or {})
            return dict(seen) if seen.get("status") == status else None

        def instead() -> str:
            consumer = self.consumers[scenario]
            return (f"{scenario} to become {status} (last seen: {seen.get('status')} "
                    f"{seen.get('state')} {seen.get('reasons')}, statuses "
                    f"{self.statuses(scenario)[-10:]}; its consumer's last error "
                    f"{consumer.last_error!r}, restarts {consumer.restarts})")

        return wait_for(reached, instead, timeout_s=within_s)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def stage(kafka_bootstrap: str, admin: KafkaAdminClient,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    running = Stage(kafka_bootstrap, admin, tmp_path_factory.mktemp("detect"),
                    str(int(time.time())))
    running.start(join_s=30)
    yield running
    running.stop()


def test_slow_but_alive_consumer_becomes_lagging_within_60s(stage: Stage) -> None:
    group = stage.reaches("slow", "lagging", within_s=60)
    assert group["severity"] == "warning"
    reason, = group["reasons"]
    assert reason.startswith(f"{stage.topic['slow']}[0] consuming ")
    assert " msg/s while producers write " in reason


def test_stuck_consumer_becomes_stalled_within_45s_of_its_last_commit(stage: Stage) -> None:
    stage.consumers["stuck"].committing = False
    group = stage.reaches("stuck", "stalled", within_s=45)
    assert group["members"] == 1
    partition = group["topics"][stage.topic["stuck"]]["partitions"]["0"]
    assert partition["status"] == "stalled"
    assert re.fullmatch(
        rf"{re.escape(stage.topic['stuck'])}\[0\] stuck at offset {partition['committed']:,} "
        r"for \d+s with [\d,]+ messages waiting; its last commit was \d+s ago: the consumer "
        r"is hung or blocked", group["reasons"][0]), group["reasons"]


def test_consumer_retrying_a_poison_pill_is_stalled_and_named_alive(stage: Stage) -> None:
    # Given a member that goes back to the same message and commits its offset every second
    consumer = stage.consumers["retrying"]
    consumer.recommitting, consumer.committing = True, False
    # Then the commit records tell lagwatch it is alive, yet stuck
    group = stage.reaches("retrying", "stalled", within_s=45)
    partition = group["topics"][stage.topic["retrying"]]["partitions"]["0"]
    assert re.fullmatch(
        rf"{re.escape(stage.topic['retrying'])}\[0\] stuck at offset "
        rf"{partition['committed']:,} for \d+s with [\d,]+ messages waiting; it still commits "
        r"this offset every 1s: alive but not getting past it \(a poison pill or a retry "
        r"loop\)", group["reasons"][0]), group["reasons"]


def test_closed_consumer_becomes_stopped_within_10s(stage: Stage) -> None:
    stage.consumers["stopped"].stop()
    group = stage.reaches("stopped", "stopped", within_s=10)
    assert (group["members"], group["state"]) == (0, "Empty")


def test_offsets_reset_through_the_admin_api_become_rewound_within_20s(stage: Stage) -> None:
    # Given a group that read everything so far, When its offsets are reset to 0
    tp = TopicPartition(stage.topic["rewound"], 0)
    stage.consumers["rewound"].stop()
    before = stage.admin.list_group_offsets([stage.group["rewound"]])[stage.group["rewound"]][tp]
    stage.admin.alter_group_offsets(stage.group["rewound"], {tp: OffsetAndMetadata(0, "", -1)})
    replay = Consumer(stage.bootstrap, tp.topic, stage.group["rewound"], rate=RATE * 1.5)
    stage.consumers["rewound"] = replay
    replay.start()
    # Then
    group = stage.reaches("rewound", "rewound", within_s=20)
    match = re.fullmatch(rf"{re.escape(tp.topic)}\[0\] moved back from offset ([\d,]+) to "
                         r"([\d,]+): ([\d,]+) messages will be processed again, about .+",
                         group["reasons"][0])
    assert match, group["reasons"]
    moved_from, moved_to, size = (int(n.replace(",", "")) for n in match.groups())
    assert 0 < moved_from <= before.offset
    assert moved_to < moved_from
    assert size == moved_from - moved_to


def test_records_deleted_past_the_committed_offset_become_data_loss_within_10s(
        stage: Stage) -> None:
    # Given a member that stopped committing, When retention-like deletion passes it
    stage.consumers["loss"].committing = False
    tp = TopicPartition(stage.topic["loss"], 0)
    assert stage.watched.daemon.http is not None
    wait_polls(stage.watched.daemon.http.url, 2)  # a commit in flight has landed
    end = stage.admin.list_partition_offsets({tp: -1})[tp].offset
    stage.admin.delete_records({tp: end})
    # Then
    group = stage.reaches("loss", "data_loss", within_s=10)
    partition = group["topics"][tp.topic]["partitions"]["0"]
    lost = partition["log_start"] - partition["committed"]
    assert lost > 0
    assert group["reasons"][0] == (
        f"{lost:,} unread messages were deleted by retention: {tp.topic}[0] committed "
        f"{partition['committed']:,} but the log starts at {partition['log_start']:,}")


def test_healthy_consumer_is_ok_throughout(stage: Stage) -> None:
    wait_for(lambda: len(stage.statuses("healthy")) >= 40, "40 s of healthy statuses",
             timeout_s=60)
    seen = stage.statuses("healthy")
    assert set(seen) <= {"ok", "unknown"}, seen
    assert set(seen[25:]) == {"ok"}, seen

