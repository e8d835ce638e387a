"""Never silently blind: a group whose offsets could not be read or decoded is unknown with
the reason, the cluster gets the ``blind`` finding, its metric and check's exit status 3;
and the request versions lagwatch speaks stay the ones the compatibility suite ran."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from types import SimpleNamespace

import kafka.protocol
import pytest

from lagwatch.cli import EXIT_CRITICAL, EXIT_UNUSABLE, check_status
from lagwatch.detect.findings import HealthMemory, blind_groups
from lagwatch.kafka.answers import with_blind_spots
from lagwatch.kafka.config import ClusterConfig
from lagwatch.kafka.reader import ClusterReader
from lagwatch.kafka.versions import KAFKA_PYTHON_CEILING, TESTED_RELEASES, kafka_release
from lagwatch.model import GroupSnapshot, LogOffsets, Member, Snapshot
from lagwatch.report.latest import LatestReports
from lagwatch.serve.metrics import Exporter
from lagwatch.simulate import judged_alone, report_alone
from lagwatch.status import Severity, Status
from tests.exposition import parse

NOW = 1_790_000_000.0
READ = GroupSnapshot("fine", "Empty", committed={("orders", 0): 100})
UNREAD = GroupSnapshot("billing", "Stable", members=(Member("m", "c", "h"),))
STOPPED = GroupSnapshot("fraud", "Empty", committed={("orders", 0): 90, ("audit", 0): 1})
OFFSETS = {("orders", 0): LogOffsets(0, 100)}
TIMEOUT = "KafkaTimeoutError: Timeout after 5000ms"


def snapshot(*groups: GroupSnapshot, at: float = NOW) -> Snapshot:
    return Snapshot("prod", at, 0.1, up=True, groups={g.group_id: g for g in groups},
                    offsets=OFFSETS)


def test_each_blind_spot_is_named_and_a_deleted_topic_or_a_share_group_is_none() -> None:
    share = GroupSnapshot("queue", "Stable", group_type="share")
    groups = {g.group_id: g for g in (READ, UNREAD, STOPPED, share)}
    # When billing's offsets were not read, and audit's log offsets were not either
    found = with_blind_spots(groups, {"billing": TIMEOUT, "queue": TIMEOUT}, None,
                             {"audit": "NotLeaderForPartitionError"})
    # Then each blind group says what was not read, and why
    assert found["billing"].blind == (
        f"the committed offsets could not be read ({TIMEOUT})",)
    assert found["fraud"].blind == (
        "the log offsets of topic audit could not be read (NotLeaderForPartitionError)",)
    assert found["fine"].blind == found["queue"].blind == ()
    # And when the metadata could not be read, every group with partitions is blind
    found = with_blind_spots(groups, {}, TIMEOUT, {})
    assert found["fine"].blind == (f"the cluster's metadata could not be read ({TIMEOUT})",)
    assert found["billing"].blind == ()  # it has no partition to read
    # And a clean poll changes nothing
    assert with_blind_spots(groups, {}, None, {}) is groups


def test_a_blind_group_is_unknown_never_ok_and_a_worse_status_stays() -> None:
    blind = GroupSnapshot("billing", "Empty", blind=(f"the committed offsets could not be "
                                                     f"read ({TIMEOUT})",))
    partly = GroupSnapshot("fraud", "Empty", committed={("orders", 0): 90},
                           blind=("the log offsets of topic audit could not be read (X)",))
    fine = GroupSnapshot("fine", "Empty", committed={("orders", 0): 100},
                         blind=("the log offsets of topic audit could not be read (X)",))
    report = report_alone(snapshot(blind, partly, fine))
    by_id = {g.group_id: g for g in report.groups}
    assert (by_id["billing"].status, by_id["billing"].reasons) == (Status.UNKNOWN, (
        f"lagwatch cannot judge this group: the committed offsets could not be read "
        f"({TIMEOUT})",))
    assert by_id["billing"].lag_messages is None and by_id["billing"].topics == ()
    # a stopped partition is still stopped: the blind part is said after it
    assert by_id["fraud"].status is Status.STOPPED
    assert by_id["fraud"].reasons == (
        "no active members while 10 messages are unread on 1 partition",
        "lagwatch cannot judge part of this group: the log offsets of topic audit could "
        "not be read (X)")
    # what it can see is caught up, yet it is not ok
    assert (by_id["fine"].status, by_id["fine"].reasons[0]) == (
        Status.UNKNOWN, "lagwatch cannot judge part of this group: the log offsets of "
                        "topic audit could not be read (X)")


def test_the_blind_finding_names_groups_and_causes_and_turns_critical() -> None:
    memory = HealthMemory()
    cause = f"the committed offsets could not be read ({TIMEOUT})"
    groups = {g.group_id: g for g in (
        READ, GroupSnapshot("billing", "Empty", blind=(cause,)),
        GroupSnapshot("audit", "Empty", blind=(cause,)))}
    # When two of three groups cannot be judged: a warning, naming them and why
    first = blind_groups(groups, memory, critical_after_s=60, now=NOW)
    assert first is not None
    assert (first.kind, first.severity, first.reason) == ("blind", Severity.WARNING, (
        f"lagwatch cannot judge 2 of 3 groups (status unknown): audit, billing: {cause}"))
    # Then, still blind a stall window later, it is critical and says for how long
    later = blind_groups(groups, memory, critical_after_s=60, now=NOW + 61)
    assert later is not None and later.severity is Severity.CRITICAL
    assert later.reason.startswith("lagwatch cannot judge 2 of 3 groups, for 1m 1s ")
    # And once every group can be read again, the finding and its clock are gone
    assert blind_groups({"fine": READ}, memory, critical_after_s=60, now=NOW + 62) is None
    assert memory.blind_since is None
    # And blind to every judged group is critical at once
    alone = blind_groups({"b": groups["billing"]}, HealthMemory(), 60, NOW)
    assert alone is not None and alone.severity is Severity.CRITICAL


def test_blind_groups_are_counted_in_a_metric_and_check_exits_3_saying_why() -> None:
    blind = GroupSnapshot("billing", "Empty", blind=(f"the committed offsets could not be "
                                                     f"read ({TIMEOUT})",))
    stopped = GroupSnapshot("fraud", "Empty", committed={("orders", 0): 90})
    polled = snapshot(blind, stopped)
    state = LatestReports(["prod"], 30.0)
    report = state.publish(polled, judged_alone(polled))
    samples = parse(Exporter(state).text())
    assert samples[("lagwatch_blind_groups", frozenset({("cluster", "prod")}))] == 1
    assert samples[("lagwatch_cluster_findings", frozenset({
        ("cluster", "prod"), ("kind", "blind"), ("severity", "warning")}))] == 1
    # check says it could not judge, whatever else it saw (fraud is stopped: critical)
    assert check_status([report]) == (EXIT_UNUSABLE, (
        f"lagwatch: cluster prod: lagwatch cannot judge 1 of 2 groups (status unknown): "
        f"billing: the committed offsets could not be read ({TIMEOUT})"))
    seen = snapshot(stopped)
    assert check_status([report_alone(seen)]) == (EXIT_CRITICAL, "")


def _requests() -> dict[int, tuple[str, int]]:
    found = {}
    for module in pkgutil.walk_packages(kafka.protocol.__path__, "kafka.protocol."):
        for name, obj in vars(importlib.import_module(module.name)).items():
            if name.endswith("Request") and isinstance(getattr(obj, "API_KEY", None), int):
                found[obj.API_KEY] = (name, obj.max_version)
    return found


@pytest.mark.parametrize("key", sorted(KAFKA_PYTHON_CEILING))
def test_kafka_python_sends_no_request_newer_than_the_matrix_ran(key: int) -> None:
    # a kafka-python release that raises one must first pass the compatibility suite
    name, tested = KAFKA_PYTHON_CEILING[key]
    request, newest = _requests()[key]
    assert request == name + "Request"
    assert newest <= tested, f"kafka-python sends {name} v{newest}; the matrix ran v{tested}"


def test_a_cluster_s_release_is_told_from_its_api_versions() -> None:
    newest = {18: (0, 5), 35: (1, 5), 2: (1, 11), 0: (0, 13), 1: (4, 18)}
    assert kafka_release(newest) == ("4.4", False)
    assert kafka_release({**newest, 18: (0, 4)}) == ("4.3", False)
    assert kafka_release({2: (0, 9), 1: (0, 17), 0: (0, 11)}) == ("3.9", False)
    assert kafka_release({2: (0, 8), 1: (0, 16)}) == ("older than 3.9", False)
    # an API the newest tested release does not answer, or a newer version of one
    assert kafka_release({**newest, 95: (0, 0)}) == (f"newer than {TESTED_RELEASES[-1]}", True)
    assert kafka_release({**newest, 9: (1, 11)}) == ("newer than 4.4", True)


def test_a_cluster_newer_than_the_matrix_is_named_at_each_connect_and_warned_of_once(
        caplog: pytest.LogCaptureFixture) -> None:
    newer = {18: (0, 6), 2: (1, 12)}  # what a Kafka after 4.4 might answer

    def admin(**_options: object) -> SimpleNamespace:
        return SimpleNamespace(_manager=SimpleNamespace(
            broker_version_data=SimpleNamespace(api_versions=newer)), close=lambda: None)

    reader = ClusterReader(ClusterConfig(name="prod", bootstrap_servers=["k:9092"]), 60.0,
                           admin_factory=admin)
    with caplog.at_level(logging.INFO, logger="lagwatch.kafka.reader"):
        reader._client()
        reader._drop_admin()  # a reconnect
        reader._client()
    assert reader.kafka_release == "newer than 4.4"
    assert caplog.messages == [
        "cluster prod: Apache Kafka newer than 4.4, as its API versions tell",
        "cluster prod runs Apache Kafka newer than 4.4, the newest release lagwatch was "
        "tested with; lagwatch asks for the request versions it was tested with, and a "
        "group it cannot read is reported unknown (the blind finding)",
        "cluster prod: Apache Kafka newer than 4.4, as its API versions tell"]
