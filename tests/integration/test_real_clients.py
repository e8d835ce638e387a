"""Verdicts on consumers as they really behave, with a CPU hog competing for the cores.

Real clients drain partitions unevenly (a Java consumer hands out one partition's fetched
records before the next; kafka-python likewise), join twice at start, restart and are
deployed one member at a time. On four-partition topics written at 40 msg/s:

- kafka-python and Java kafka-clients 4.1 (classic protocol) consumers read 50% and 85%
  of the produce rate: ``lagging`` within 3 minutes and in every poll after that;
- a Java consumer stuck on a poison pill, re-committing its offset every 5 s: ``stalled``
  within 60 s;
- a kafka-python consumer holding one of its four partitions while it keeps up on the
  others: ``stalled`` on that partition only;
- a kafka-python consumer restarted once and three Java members deployed as a rolling
  restart: never a finding or a status with a severity.

The whole stage runs twice for the module: alone, and with a busy loop on one core
throughout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka_local import die_with_parent
from workload import Consumer, JavaConsumer, Producer

from tests.integration.helpers import ScenarioDaemon, wait_for

RATE = 40.0
PARTITIONS = 4
SLOW = {"py-50": 0.5, "py-85": 0.85, "java-50": 0.5, "java-85": 0.85}
HEALTHY = ("py-restart", "java-rolling")
OTHERS = ("java-pill", "py-one")
LAGGING_WITHIN_S = 180.0
HELD_POLLS = 60  # polls the slow groups are watched for after each became lagging
QUIET = {"ok", "unknown", "idle"}  # statuses without a severity


class Stage:
    """The groups, the traffic, the hog, and what lagwatch said each second."""

    def __init__(self, java: str, bootstrap: str, admin: KafkaAdminClient, tmp: Path,
                 run: str) -> None:
        self.java, self.bootstrap = java, bootstrap
        names = (*SLOW, *HEALTHY, *OTHERS)
        self.topic = {n: f"real-{n}-{run}" for n in names}
        self.group = dict(self.topic)
        admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in self.topic.values()])
        admin.wait_for_topics(list(self.topic.values()))
        self.producer = Producer(bootstrap, list(self.topic.values()), RATE)
        self.members: dict[str, list[Any]] = {
            n: [self._consumer(n, rate=RATE * share)] for n, share in SLOW.items()}
        self.members["py-restart"] = [self._consumer("py-restart")]
        self.members["py-one"] = [self._consumer("py-one")]
        self.members["java-pill"] = [self._consumer("java-pill")]
        self.members["java-rolling"] = [self._consumer("java-rolling", client_id=f"m{k}")
                                        for k in range(3)]
        self.watched = ScenarioDaemon(bootstrap, tmp, f"^real-.*-{run}$")
        self.events: dict[str, float] = {}  # what was done when (monotonic)
        self.lagging_at: dict[str, float] = {}

    def _consumer(self, name: str, rate: float | None = None,
                  client_id: str | None = None) -> Any:
        topic, group = self.topic[name], self.group[name]
        if name.startswith("java"):
            return JavaConsumer(self.java, self.bootstrap, topic, group, "classic",
                                rate=rate or 0.0, client_id=client_id)
        return Consumer(self.bootstrap, topic, group, rate=rate)

    def doc(self, name: str) -> dict[str, Any]:
        return self.watched.groups()[self.group[name]]  # type: ignore[no-any-return]

    def statuses(self, name: str) -> list[str]:
        return self.watched.statuses[self.group[name]]

    def play(self) -> None:
        """Run every scenario to its end; raise (fail) when a step never happens."""
        self.producer.start()
        for consumers in self.members.values():
            for consumer in consumers:
                consumer.start()
        for consumers in self.members.values():
            for consumer in consumers:
                assert consumer.joined.wait(90), f"{consumer.group} never joined"
        self.members["py-one"][0].paused = {2}
        self.watched.start(*self.group.values())
        self.events["watched"] = time.monotonic()
        self.members["java-pill"][0].send("stuck 5")
        self.events["pill"] = time.monotonic()
        self._restart_py()
        self._rolling_restart()
        self._await_lagging()

    def _restart_py(self) -> None:
        old = self.members["py-restart"][0]
        old.stop()
        new = self._consumer("py-restart")
        self.members["py-restart"].append(new)
        new.start()
        assert new.joined.wait(60), "the restarted consumer never joined"

    def _rolling_restart(self) -> None:
        for k in range(3):
            old = self.members["java-rolling"][k]
            old.stop()
            new = self._consumer("java-rolling", client_id=f"m{k}")
            self.members["java-rolling"].append(new)
            new.start()
            assert new.joined.wait(90), f"member m{k} never came back"
            wait_for(lambda: (d := self.doc("java-rolling"))["members"] == 3
                     and d["state"] == "Stable", "the rolling restart to settle", 90)

    def _await_lagging(self) -> None:
        def found() -> bool:
            for name in SLOW:
                took = self.watched.first(self.group[name], "lagging", self.events["watched"])
                if name not in self.lagging_at and took is not None:
                    self.lagging_at[name] = self.events["watched"] + took
            return len(self.lagging_at) == len(SLOW)

        wait_for(found, lambda: f"every slow group to be lagging (so far: {self.lagging_at})",
                 timeout_s=LAGGING_WITHIN_S + 30)
        # the verdicts must hold: watched for HELD_POLLS polls after each detection
        wait_for(lambda: all(len(self.after(n)) >= HELD_POLLS for n in SLOW),
                 f"{HELD_POLLS} polls after each detection", timeout_s=4 * HELD_POLLS)

    def after(self, name: str) -> list[str]:
        """The statuses recorded since the group was first lagging."""
        return [s for t, s in zip(self.watched.seen_at[self.group[name]],
                                  self.statuses(name), strict=False)
                if t >= self.lagging_at[name]]

    def explain(self, name: str) -> str:
        """What lagwatch said at each change of the group's status since it was first
        lagging, and what its members went through (restarts, the last error)."""
        since = self.lagging_at.get(name, 0.0)
        said = [f"+{t - since:.0f}s {status}: {reasons}"
                for t, status, reasons in self.watched.changes[self.group[name]] if t >= since]
        members = [f"member: restarts {getattr(m, 'restarts', '-')}, longest gap between "
                   f"commits {getattr(m, 'longest_gap_s', '-')}, generation "
                   f"{getattr(m, 'generation', getattr(m, 'epoch', '-'))}, last error "
                   f"{getattr(m, 'last_error', '-')!r}" for m in self.members[name]]
        return "\n".join([*said, *members])

    def stop(self) -> None:
        self.watched.stop()
        for consumers in self.members.values():
            for consumer in consumers:
                consumer.stop()
        self.producer.stop()


@pytest.fixture(scope="module", params=["alone", "hog"])
def stage(request: pytest.FixtureRequest, java: str, kafka_bootstrap: str,
          admin: KafkaAdminClient, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stage]:
    hog = (subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=die_with_parent)  # noqa: PLW1509 - gone with the run
           if request.param == "hog" else None)
    running = Stage(java, kafka_bootstrap, admin, tmp_path_factory.mktemp("real"),
                    f"{int(time.time())}-{request.param}")
    try:
        running.play()
        yield running
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        running.stop()


@pytest.mark.parametrize("name", SLOW)
def test_a_slow_consumer_draining_unevenly_is_lagging_from_detection_on(
        stage: Stage, name: str) -> None:
    # Then it was found within 3 minutes of being watched (it was slow from the start)
    assert name in stage.lagging_at, (name, stage.statuses(name)[-20:])
    took = stage.lagging_at[name] - stage.events["watched"]
    print(f"{name}: lagging {took:.0f} s after lagwatch started watching")
    assert took <= LAGGING_WITHIN_S
    # and every poll after that said lagging: never ok, never stalled
    after = stage.after(name)
    assert len(after) >= HELD_POLLS
    assert set(after) == {"lagging"}, stage.explain(name)
    assert stage.watched.alarms[stage.group[name]].keys() <= {"skewed"}  # uneven lag


def test_a_poison_pill_recommitted_every_5s_is_stalled_within_60s(stage: Stage) -> None:
    took = stage.watched.first(stage.group["java-pill"], "stalled", stage.events["pill"])
    assert took is not None, stage.statuses("java-pill")[-20:]
    print(f"java-pill: stalled {took:.0f} s after the pill")
    assert took <= 60
    reasons = stage.doc("java-pill")["reasons"]
    assert any("it still commits this offset every 5s" in r for r in reasons), reasons


def test_one_stuck_partition_of_four_is_stalled_while_its_siblings_are_ok(
        stage: Stage) -> None:
    doc = stage.doc("py-one")
    partitions = doc["topics"][stage.topic["py-one"]]["partitions"]
    assert {p: partitions[p]["status"] for p in sorted(partitions)} == {
        "0": "ok", "1": "ok", "2": "stalled", "3": "ok"}
    assert doc["status"] == "stalled"


@pytest.mark.parametrize("name", HEALTHY)
def test_a_restart_and_a_rolling_restart_raise_nothing(stage: Stage, name: str) -> None:
    # Then no finding with a severity, ever
    doc = stage.doc(name)
    assert stage.watched.alarms[stage.group[name]] == {}, doc["rebalances"]
    # and no status with one, except the seconds a restarted sole member is away (the
    # group is empty with messages waiting): far shorter than alerting's default `for`
    loud = [s for s in stage.statuses(name) if s not in QUIET]
    assert set(loud) <= ({"stopped"} if name == "py-restart" else set()), loud
    assert len(loud) < 15, loud
    rebalances = doc["rebalances"]
    assert rebalances["total"] >= 2  # it did rebalance: a restart is one leave, one join
    print(f"{name}: {rebalances}")
