"""History and detection memory survive a restart; a broken state file never stops lagwatch."""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path

import pytest

from lagwatch.detect.config import DetectionConfig
from lagwatch.detect.rules import Memory
from lagwatch.model import GroupSnapshot, LogOffsets, Snapshot
from lagwatch.pipeline import ClusterJudge
from lagwatch.simulate import Scenario, step
from lagwatch.status import Status
from lagwatch.store import FILE_NAME, StateFile


def feed(pipeline: ClusterJudge, scenario: Scenario | list[Snapshot],
         duration_s: float = 0.0) -> Status:
    status = Status.UNKNOWN
    snapshots = scenario.run(duration_s) if isinstance(scenario, Scenario) else scenario
    for snapshot in snapshots:
        verdict = pipeline.ingest(snapshot)
        assert verdict is not None
        status = verdict.assessments["billing"][("orders", 0)].status
    return status


def test_a_restarted_pipeline_keeps_its_window_and_its_lagging_status(tmp_path: Path) -> None:
    # Given a slow consumer judged lagging, with every poll stored
    scenario = Scenario(capacity=step(1000, 80, 600))
    *first, last = scenario.run(1215)
    store = StateFile(str(tmp_path))
    before = ClusterJudge("sim", DetectionConfig(), store)
    assert feed(before, first) is Status.LAGGING
    store.close()

    # When a new process restores from the same directory
    after = ClusterJudge("sim", DetectionConfig(), StateFile(str(tmp_path)))
    replayed = after.restore(now=scenario.start + 1200)

    # Then it has the same window and memory, and the next poll is still lagging
    assert replayed == 81  # polls at 0..1200 s every 15 s
    assert after.history.span_s() == before.history.span_s()
    assert after.memory.rules == before.memory.rules
    assert feed(after, [last]) is Status.LAGGING


def test_polls_older_than_the_window_are_not_kept(tmp_path: Path) -> None:
    scenario = Scenario()
    pipeline = ClusterJudge("sim", DetectionConfig(window=300, min_duration=60, stall_after=60),
                        StateFile(str(tmp_path)))
    feed(pipeline, scenario, 1200)
    restored = ClusterJudge("sim", DetectionConfig(window=300, min_duration=60, stall_after=60),
                        StateFile(str(tmp_path)))
    assert restored.restore(now=scenario.start + 1200) == 21  # 300 s of 15 s polls, inclusive


def test_a_corrupt_state_file_is_moved_aside_and_rebuilt(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        store = StateFile(str(tmp_path))
    assert any("is damaged (file is not a database); moved it to" in r.getMessage()
               for r in caplog.records)
    assert [p.name.startswith(f"{FILE_NAME}.corrupt-") for p in tmp_path.iterdir()
            if p.name != FILE_NAME and "-wal" not in p.name and "-shm" not in p.name] == [True]
    pipeline = ClusterJudge("sim", DetectionConfig(), store)
    feed(pipeline, Scenario(), 60)
    assert ClusterJudge("sim", DetectionConfig(), StateFile(str(tmp_path))).restore(
        now=Scenario().start + 60) == 5


def test_an_unusable_state_directory_only_costs_persistence(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        store = StateFile(str(blocker / "state"))
    assert any("history will not survive a restart" in r.getMessage() for r in caplog.records)
    pipeline = ClusterJudge("sim", DetectionConfig(), store)
    assert pipeline.restore(now=0.0) == 0
    assert feed(pipeline, Scenario(), 300) is Status.OK


def test_polls_stored_by_an_earlier_version_are_restored(tmp_path: Path) -> None:
    # Given a state file whose polls hold committed offsets one [topic, partition, offset]
    # row each, as lagwatch wrote them before it kept them by topic
    old = {"t": 1000.0, "o": [["orders", 0, 0, 500, 500], ["orders", 1, 0, 90, None]],
           "g": {"billing": [["orders", 0, 450], ["orders", 1, 80]]}}
    store = StateFile(str(tmp_path))
    assert store._db is not None
    store._db.execute("INSERT INTO polls VALUES (?, ?, ?)", (
        "sim", 1000.0, zlib.compress(json.dumps(old).encode())))
    # When it is restored, beside a poll written now
    now = Snapshot("sim", 1015.0, 0.0, up=True, offsets={
        ("orders", 0): LogOffsets(0, 510, 510)}, groups={"billing": GroupSnapshot(
            "billing", "Stable", committed={("orders", 0): 460})})
    store.save(now, Memory(), keep_after=0.0)
    snapshots, _ = StateFile(str(tmp_path)).load("sim", since=0.0)
    # Then both read back the same way
    assert [(s.taken_at, s.offsets, {g: s.groups[g].committed for g in s.groups})
            for s in snapshots] == [
        (1000.0, {("orders", 0): LogOffsets(0, 500, 500), ("orders", 1): LogOffsets(0, 90)},
         {"billing": {("orders", 0): 450, ("orders", 1): 80}}),
        (1015.0, {("orders", 0): LogOffsets(0, 510, 510)},
         {"billing": {("orders", 0): 460}})]
