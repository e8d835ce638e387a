"""The Prometheus exposition rendered from LatestReports, parsed back as Prometheus would."""

from __future__ import annotations

import gzip
import http.client
import math
from collections.abc import Iterator

import pytest

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.config import AlertingConfig
from lagwatch.alerting.outbox import Outbox
from lagwatch.model import GroupSnapshot, LogOffsets, Member, PollError, Snapshot
from lagwatch.report.latest import LatestReports
from lagwatch.report.view import ClusterReport
from lagwatch.serve import metrics as export
from lagwatch.serve.api import accepts_gzip
from lagwatch.serve.config import HttpConfig
from lagwatch.serve.families import Family
from lagwatch.serve.metrics import Exporter
from lagwatch.serve.server import HttpServer
from lagwatch.simulate import Scenario, judged_alone, replay
from tests.exposition import Samples, parse

NOW = 1_790_000_000.0
GROUP = GroupSnapshot("billing", "Stable",
                      members=(Member("m", "c", "h", assignment=(("orders", 0), ("orders", 1))),),
                      committed={("orders", 0): 90})
GOOD = Snapshot("prod", NOW, 0.2, up=True, groups={"billing": GROUP},
                offsets={("orders", 0): LogOffsets(5, 100), ("orders", 1): LogOffsets(0, 7)})


def at(samples: Samples, name: str, cluster: str = "prod", **labels: str) -> float | None:
    return samples.get((name, frozenset({"cluster": cluster, **labels}.items())))



def publish(state: LatestReports, snapshot: Snapshot) -> ClusterReport:
    """Publish one poll judged on its own, as lagwatch's first poll is."""
    return state.publish(snapshot, judged_alone(snapshot))

def test_metrics_carry_the_contract_names_labels_and_values() -> None:
    # Given
    state = LatestReports(["prod"], 30.0)
    exporter = Exporter(state)
    # When
    exporter.metrics.observe(publish(state, GOOD).snapshot)
    samples = parse(exporter.text())
    # Then
    where = {"group": "billing", "topic": "orders"}
    assert at(samples, "lagwatch_partition_lag_messages", partition="0", **where) == 10
    assert at(samples, "lagwatch_partition_committed_offset", partition="0", **where) == 90
    assert at(samples, "lagwatch_partition_lag_messages", partition="1", **where) is None
    assert at(samples, "lagwatch_partition_log_end_offset", topic="orders", partition="1") == 7
    assert at(samples, "lagwatch_partition_log_start_offset", topic="orders",
              partition="0") == 5
    assert at(samples, "lagwatch_group_lag_messages", **where) == 10
    assert at(samples, "lagwatch_group_members", group="billing") == 1
    assert at(samples, "lagwatch_group_status", group="billing", status="unknown") == 1
    assert at(samples, "lagwatch_group_status", group="billing", status="ok") == 0
    assert at(samples, "lagwatch_group_state", group="billing", state="Stable") == 1
    assert at(samples, "lagwatch_group_info", group="billing", type="classic") == 1
    assert at(samples, "lagwatch_group_epoch", group="billing") is None  # classic: none
    assert at(samples, "lagwatch_cluster_up") == 1
    assert at(samples, "lagwatch_last_poll_timestamp_seconds") == NOW
    assert at(samples, "lagwatch_poll_duration_seconds_count") == 1
    assert at(samples, "lagwatch_poll_errors_total", stage="connect") == 0


def test_a_consumer_protocol_group_exports_its_type_and_epoch() -> None:
    group = GroupSnapshot("kip848", "Stable", members=GROUP.members, committed=GROUP.committed,
                          group_type="consumer", epoch=94)
    state = LatestReports(["prod"], 30.0)
    publish(state, Snapshot("prod", NOW, 0.2, up=True, groups={"kip848": group},
                           offsets=GOOD.offsets))
    samples = parse(Exporter(state).text())
    assert at(samples, "lagwatch_group_info", group="kip848", type="consumer") == 1
    assert at(samples, "lagwatch_group_epoch", group="kip848") == 94
    assert at(samples, "lagwatch_group_members", group="kip848") == 1


def test_per_partition_series_can_be_switched_off() -> None:
    state = LatestReports(["prod"], 30.0)
    publish(state, GOOD)
    names = {name for name, _ in parse(Exporter(state, per_partition=False).text())}
    assert not {n for n in names if n.startswith("lagwatch_partition_")}
    assert {"lagwatch_group_lag_messages", "lagwatch_cluster_up"} <= names
    every = {name for name, _ in parse(Exporter(state).text())}
    assert {"lagwatch_partition_lag_messages", "lagwatch_partition_log_end_offset"} <= every


def test_a_failed_poll_sets_cluster_up_to_0_and_counts_the_error_by_stage() -> None:
    state = LatestReports(["prod"], 30.0)
    exporter = Exporter(state)
    publish(state, GOOD)
    failed = Snapshot("prod", NOW + 30, 10.0, up=False,
                      errors=(PollError("connect", "prod", "KafkaTimeoutError"),))
    exporter.metrics.observe(failed)
    publish(state, failed)
    samples = parse(exporter.text())

    assert at(samples, "lagwatch_cluster_up") == 0
    assert at(samples, "lagwatch_poll_errors_total", stage="connect") == 1
    # the last known numbers stay, and their age shows in the last poll timestamp
    assert at(samples, "lagwatch_last_poll_timestamp_seconds") == NOW
    assert at(samples, "lagwatch_partition_lag_messages", group="billing", topic="orders",
              partition="0") == 10


def test_label_values_are_escaped() -> None:
    odd = 'team "a"\\b\nc'
    state = LatestReports(["prod"], 30.0)
    publish(state, Snapshot("prod", NOW, 0.1, up=True,
                           groups={odd: GroupSnapshot(odd, "Empty")}))
    samples = parse(Exporter(state).text())
    assert at(samples, "lagwatch_group_state", group=odd, state="Empty") == 1


def test_ready_only_after_a_recent_successful_poll_of_every_cluster() -> None:
    state = LatestReports(["prod", "dr"], 30.0)
    assert not state.ready(NOW)
    publish(state, GOOD)
    assert not state.ready(NOW)
    publish(state, Snapshot("dr", NOW, 0.1, up=True))
    assert state.ready(NOW + 89)
    assert not state.ready(NOW + 91)


def test_a_long_poll_that_brings_a_cluster_back_makes_it_ready() -> None:
    # Given a poll that started 100 s ago and waited 95 s on a broker coming back
    state = LatestReports(["prod"], 30.0)
    publish(state, Snapshot("prod", NOW - 100, 95.0, up=True))
    # Then it is judged by when it finished, 5 s ago
    assert state.ready(NOW)
    assert not state.ready(NOW + 86)


def test_detection_metrics_are_exported_and_always_finite() -> None:
    # Given a stopped group whose unread messages retention then cuts
    scenario = Scenario(members=lambda t: 1 if t < 600 else 0,
                        events={1800.0: lambda s: s.cut_retention(1000)})
    state = LatestReports(["sim"], 15.0)
    exporter = Exporter(state)
    list(replay(scenario.run(1815), latest=state))
    samples = parse(exporter.text())

    # Then
    where = {"cluster": "sim", "group": "billing", "topic": "orders"}
    assert at(samples, "lagwatch_lost_messages_total", **where) == 119_000
    assert at(samples, "lagwatch_group_status", cluster="sim", group="billing",
              status="data_loss") == 1
    assert at(samples, "lagwatch_partition_produce_rate_per_second", cluster="sim",
              topic="orders", partition="0") == 100.0
    # the oldest unread message was written when the group stopped, at 600 s
    assert at(samples, "lagwatch_partition_lag_seconds", partition="0",
              **where) == pytest.approx(1215.0, abs=0.1)
    assert all(math.isfinite(v) for v in samples.values())


def test_skipped_offsets_topic_records_are_counted_by_kind() -> None:
    state = LatestReports(["prod"], 30.0)
    publish(state, Snapshot("prod", NOW, 0.1, up=True, records_skipped=(3, 1)))
    samples = parse(Exporter(state).text())
    assert at(samples, "lagwatch_offsets_topic_records_skipped_total", kind="unknown_type") == 3
    assert at(samples, "lagwatch_offsets_topic_records_skipped_total", kind="undecodable") == 1


def test_a_caught_up_group_has_a_catch_up_eta_of_zero() -> None:
    caught_up = GroupSnapshot("billing", "Stable", members=GROUP.members,
                              committed={("orders", 0): 100, ("orders", 1): 7})
    state = LatestReports(["prod"], 30.0)
    publish(state, Snapshot("prod", NOW, 0.2, up=True, groups={"billing": caught_up},
                           offsets=GOOD.offsets))
    samples = parse(Exporter(state).text())
    assert at(samples, "lagwatch_group_catchup_eta_seconds", group="billing",
              topic="orders") == 0


def test_a_cluster_is_rendered_again_only_when_its_report_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two clusters, both rendered once
    rendered: list[str] = []
    real = export.families

    def counting(reports: list[ClusterReport], per_partition: bool = True,
                 health: bool = True) -> Iterator[Family]:
        rendered.extend(r.cluster for r in reports)
        return real(reports, per_partition, health)

    monkeypatch.setattr(export, "families", counting)
    state = LatestReports(["prod", "dr"], 30.0)
    exporter = Exporter(state)
    publish(state, GOOD)
    publish(state, Snapshot("dr", NOW, 0.1, up=True))
    exporter.refresh()
    assert rendered == ["prod", "dr"]
    # When only prod polls again, with the group further behind
    behind = GroupSnapshot("billing", "Stable", members=GROUP.members,
                           committed={("orders", 0): 60})
    publish(state, Snapshot("prod", NOW + 30, 0.2, up=True, groups={"billing": behind},
                           offsets=GOOD.offsets))
    samples = parse(exporter.text())
    exporter.refresh()
    # Then prod alone is rendered again, the scrape shows it, and dr is still there
    assert rendered == ["prod", "dr", "prod"]
    assert at(samples, "lagwatch_partition_lag_messages", group="billing", topic="orders",
              partition="0") == 40
    assert at(samples, "lagwatch_cluster_up", cluster="dr") == 1


@pytest.mark.parametrize(("header", "gzipped"), [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("*", True), ("GZIP", True),
    ("", False), ("identity", False), ("gzip;q=0", False), ("*, gzip;q=0", False),
    ("gzip;q=oops", False),
])
def test_accept_encoding_decides_whether_metrics_are_gzipped(header: str, gzipped: bool
                                                             ) -> None:
    assert accepts_gzip(header) is gzipped


def test_metrics_are_served_gzipped_to_clients_that_ask_and_plain_to_others() -> None:
    # Given a daemon's HTTP endpoint over one polled cluster
    state = LatestReports(["prod"], 30.0)
    exporter = Exporter(state)
    publish(state, GOOD)
    server = HttpServer(HttpConfig(listen="127.0.0.1:0"), state, exporter,
                        Alerter(AlertingConfig(), Outbox(None))).start()
    try:
        connection = http.client.HTTPConnection(*server.address, timeout=10)
        # When it is scraped twice on one connection, with and without gzip
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        zipped = connection.getresponse()
        zipped_body = zipped.read()
        connection.request("GET", "/metrics")
        plain = connection.getresponse()
        plain_body = plain.read()
        connection.close()
    finally:
        server.stop()
    # Then both carry the same metrics, each with its exact length, on a kept-alive connection
    assert zipped.status == plain.status == 200
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert plain.getheader("Content-Encoding") is None
    assert int(zipped.getheader("Content-Length", "")) == len(zipped_body)
    assert int(plain.getheader("Content-Length", "")) == len(plain_body)
    lagwatch = gzip.decompress(zipped_body).decode().partition("# HELP lagwatch_cluster_up")[2]
    assert lagwatch and lagwatch == plain_body.decode().partition("# HELP lagwatch_cluster_up")[2]
    assert at(parse(plain_body.decode()), "lagwatch_partition_lag_messages", group="billing",
              topic="orders", partition="0") == 10
