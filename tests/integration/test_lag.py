"""Lag, offsets and group state as lagwatch reports them from a real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient
from workload import subscribed

from lagwatch.daemon import Daemon
from tests.exposition import value
from tests.integration.helpers import commit, http_get, scrape, status_document, wait_for


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lagwatch", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def group_of(daemon: Daemon, group: str) -> dict[str, Any] | None:
    groups: dict[str, Any] = status_document(daemon)["clusters"]["default"]["groups"]
    return groups.get(group)


def test_check_json_reports_exact_offsets_and_lag_per_partition(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        config_file: Callable[..., str]) -> None:
    # Given 10, 20 and 30 messages in three partitions, and a group with no members that
    # committed 4, 20 and 5
    written_at = time.time()
    topic = make_topic([10, 20, 30])
    group = unique("group")
    commit(kafka_bootstrap, group, topic, {0: 4, 1: 20, 2: 5})

    # When
    result = run_cli("check", "--json", "-c", config_file(group))

    # Then: exact numbers, and exit status 2 because a stopped group is critical
    assert result.returncode == 2, result.stderr
    doc = json.loads(result.stdout)["clusters"]["default"]
    assert doc["up"] is True
    reported = doc["groups"][group]
    partitions = reported["topics"][topic]["partitions"]
    # the time lag of a partition behind is its oldest unread record's age, read from it,
    # and the unread messages are deleted when that record is 7 days (retention.ms) old
    for p in ("0", "2"):
        lag_s = partitions[p].pop("lag_seconds")
        assert 0 <= lag_s <= time.time() - written_at + 1
        assert partitions[p].pop("retention_eta_seconds") == pytest.approx(
            7 * 86400 - lag_s, abs=0.002)
    unknown_over_time = {"lag_seconds_extrapolated": False, "produce_rate": None,
                         "consume_rate": None}
    read = {"lag_seconds_exact": True, "compacted_away": 0}
    assert partitions == {
        "0": {"committed": 4, "log_end": 10, "log_start": 0, "last_stable": 10,
              "lag_messages": 6, "readable_messages": 6, "catchup_eta_seconds": None,
              "status": "stopped", "reason": f"{topic}[0] has 6 unread messages and no consumer",
              **unknown_over_time, **read},
        "1": {"committed": 20, "log_end": 20, "log_start": 0, "last_stable": 20,
              "lag_messages": 0, "lag_seconds": 0.0, "lag_seconds_exact": False,
              "readable_messages": None, "compacted_away": None, "catchup_eta_seconds": 0.0,
              "status": "ok", "reason": None, "retention_eta_seconds": None,
              **unknown_over_time},
        "2": {"committed": 5, "log_end": 30, "log_start": 0, "last_stable": 30,
              "lag_messages": 25, "readable_messages": 25, "catchup_eta_seconds": None,
              "status": "stopped",
              "reason": f"{topic}[2] has 25 unread messages and no consumer",
              **unknown_over_time, **read},
    }
    assert reported["topics"][topic]["lag_messages"] == 31
    assert reported["lag_messages"] == 31
    assert (reported["status"], reported["severity"]) == ("stopped", "critical")
    assert reported["state"] == "Empty"
    assert reported["members"] == 0
    assert reported["reasons"] == [
        "no active members while 31 messages are unread on 2 partitions"]


def test_metrics_report_exact_offsets_and_lag_per_partition(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        daemon: Callable[..., Daemon]) -> None:
    # Given
    topic = make_topic([10, 20, 30])
    group = unique("group")
    commit(kafka_bootstrap, group, topic, {0: 4, 1: 20, 2: 5})

    # When
    lagwatch = daemon(group)
    wait_for(lambda: group_of(lagwatch, group), f"a poll that sees {group}")
    samples = scrape(lagwatch)

    # Then
    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset({"cluster": "default", **labels}.items())))

    for partition, (committed, end, lag) in enumerate([(4, 10, 6), (20, 20, 0), (5, 30, 25)]):
        where = {"group": group, "topic": topic, "partition": str(partition)}
        assert value("lagwatch_partition_committed_offset", **where) == committed
        assert value("lagwatch_partition_lag_messages", **where) == lag
        assert value("lagwatch_partition_log_end_offset", topic=topic,
                     partition=str(partition)) == end
        assert value("lagwatch_partition_log_start_offset", topic=topic,
                     partition=str(partition)) == 0
    assert value("lagwatch_group_lag_messages", group=group, topic=topic) == 31
    assert value("lagwatch_group_members", group=group) == 0
    assert value("lagwatch_group_status", group=group, status="stopped") == 1
    assert value("lagwatch_group_status", group=group, status="ok") == 0
    assert value("lagwatch_cluster_up") == 1
    assert value("lagwatch_poll_errors_total", stage="offsets") == 0
    # each poll is timed twice: reading Kafka, then processing what it read
    timings = wait_for(lambda: (t := poll_timings(lagwatch))[0] == t[1] and t,
                       "a scrape between polls")
    assert timings[0] >= 1 and timings[2] > 0


def poll_timings(lagwatch: Daemon) -> tuple[float | None, float | None, float | None]:
    """Polls timed reading Kafka, polls timed processing, and the processing time."""
    samples = scrape(lagwatch)
    return (value(samples, "lagwatch_poll_duration_seconds_count", cluster="default"),
            value(samples, "lagwatch_poll_processing_seconds_count", cluster="default"),
            value(samples, "lagwatch_poll_processing_seconds_sum", cluster="default"))


def test_endpoints_answer_per_cluster_and_group_with_404_for_unknown_names(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        daemon: Callable[..., Daemon]) -> None:
    # Given
    topic = make_topic([2])
    group = unique("group")
    commit(kafka_bootstrap, group, topic, {0: 2})
    lagwatch = daemon(group)
    assert lagwatch.http is not None
    base = lagwatch.http.url
    wait_for(lambda: group_of(lagwatch, group), f"a poll that sees {group}")

    # Then
    assert http_get(base + "/healthz") == (200, b"ok\n")
    assert http_get(base + "/readyz") == (200, b"ready\n")
    code, body = http_get(f"{base}/api/v1/status/default/{group}")
    assert code == 200
    assert json.loads(body)["status"] == "ok"
    code, body = http_get(f"{base}/api/v1/status/default")
    assert (code, list(json.loads(body)["groups"])) == (200, [group])
    assert http_get(f"{base}/api/v1/status/default/nope") == (
        404, b'{\n  "error": "group \'nope\' is not watched in cluster \'default\'"\n}\n')
    assert http_get(f"{base}/api/v1/status/elsewhere")[0] == 404
    assert http_get(f"{base}/nothing-here")[0] == 404


def test_group_state_and_members_follow_a_member_joining_and_leaving(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        daemon: Callable[..., Daemon]) -> None:
    # Given a consumer that joined the group and owns the topic's partitions
    topic = make_topic([3, 3])
    group = unique("group")
    consumer = subscribed(kafka_bootstrap, topic, group,
                          enable_auto_commit=False, session_timeout_ms=6000)
    try:
        wait_for(lambda: consumer.poll(200) is not None and consumer.assignment(),
                 "the consumer to be assigned partitions")
        # with offsets, the group outlives its last member: the coordinator's periodic
        # cleanup deletes an empty group that has none, whenever it happens to run
        consumer.commit()
        lagwatch = daemon(group)

        # Then
        joined = wait_for(lambda: (g := group_of(lagwatch, group)) and g["members"] == 1 and g,
                          "the group to show one member")
        assert joined["state"] == "Stable"
    finally:
        consumer.close()

    # When the member leaves, Then
    left = wait_for(lambda: (g := group_of(lagwatch, group)) and g["members"] == 0 and g,
                    "the group to show no members")
    assert left["state"] == "Empty"


def test_partitions_without_a_commit_get_no_invented_lag(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        daemon: Callable[..., Daemon]) -> None:
    # Given a member assigned three partitions that committed only on partition 0
    topic = make_topic([5, 6, 7])
    group = unique("group")
    consumer = subscribed(kafka_bootstrap, topic, group,
                          enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        wait_for(lambda: consumer.poll(200) is not None and len(consumer.assignment()) == 3,
                 "the consumer to own all three partitions")
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
        lagwatch = daemon(group)

        # When
        reported = wait_for(lambda: (g := group_of(lagwatch, group)) and g["members"] == 1
                            and g["lag_messages"] is not None and g, "a poll with the commit")
        samples = scrape(lagwatch)
    finally:
        consumer.close()

    # Then
    partitions = reported["topics"][topic]["partitions"]
    assert partitions["0"]["lag_messages"] == 3
    for p, end in (("1", 6), ("2", 7)):
        assert partitions[p] == {
            "committed": None, "log_end": end, "log_start": 0, "last_stable": end,
            "lag_messages": None, "lag_seconds": None, "lag_seconds_extrapolated": False,
            "lag_seconds_exact": False, "readable_messages": None, "compacted_away": None,
            "produce_rate": None,
            "consume_rate": None, "catchup_eta_seconds": None, "retention_eta_seconds": None,
            "status": "unknown", "reason": "no committed offset yet"}
    assert reported["lag_messages"] == 3
    lag_series = {dict(labels)["partition"] for name, labels in samples
                  if name == "lagwatch_partition_lag_messages" and ("group", group) in labels}
    assert lag_series == {"0"}
    assert reported["reasons"][0] == "no committed offset yet on 2 partitions: " \
        f"{topic}[1], {topic}[2]"


def test_a_deleted_topic_does_not_break_the_poll_of_other_groups(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        daemon: Callable[..., Daemon], admin: KafkaAdminClient) -> None:
    # Given a member still assigned a topic that is then deleted, and a healthy group elsewhere.
    # The doomed topic stays empty: a producer that wrote to it would ask for its metadata
    # for as long as it lives, and the session's producer lives as long as the tests.
    doomed, kept = make_topic([0]), make_topic([8])
    holder, other = unique("holder"), unique("other")
    consumer = subscribed(kafka_bootstrap, doomed, holder,
                          enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        wait_for(lambda: consumer.poll(200) is not None and consumer.assignment(),
                 "the holder to own the doomed topic")
        commit(kafka_bootstrap, other, kept, {0: 3})
        admin.delete_topics([doomed])
        wait_for(lambda: doomed not in admin.list_topics(), "the topic deletion")

        # When
        lagwatch = daemon(holder, other)
        doc = wait_for(lambda: (d := status_document(lagwatch)["clusters"]["default"])
                       and other in d["groups"] and d, "a poll that sees both groups")
    finally:
        consumer.close()

    # Then the other group's numbers are exact and the deleted topic is named as an error
    assert doc["up"] is True
    assert doc["groups"][other]["topics"][kept]["partitions"]["0"]["lag_messages"] == 5
    assert doc["groups"][holder]["topics"] == {}
    assert doc["errors"] == [f"metadata topic {doomed}: topic does not exist; "
                             f"offsets are still held by group(s) {holder}"]
    samples = scrape(lagwatch)
    assert samples[("lagwatch_poll_errors_total",
                    frozenset({"cluster": "default", "stage": "metadata"}.items()))] >= 1


def test_check_with_samples_judges_over_several_polls_and_shows_progress(
        kafka_bootstrap: str, make_topic: Callable[..., str], unique: Callable[[str], str],
        config_file: Callable[..., str]) -> None:
    # Given a group with no members and a quiet topic
    topic = make_topic([10])
    group = unique("group")
    commit(kafka_bootstrap, group, topic, {0: 10})

    # When
    # (other tests' dead-letter topics on the shared broker must not change the exit status)
    result = run_cli("check", "--json", "-c", config_file(group, dlq={"patterns": []}),
                     "--samples", "3", "--interval", "1s")

    # Then
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("lagwatch: sample 1/3 taken; next in 1s\n"
                             "lagwatch: sample 2/3 taken; next in 1s\n")
    partition = json.loads(result.stdout)["clusters"]["default"]["groups"][group][
        "topics"][topic]["partitions"]["0"]
    assert (partition["status"], partition["produce_rate"], partition["consume_rate"]) == (
        "ok", 0.0, 0.0)
    assert partition["lag_seconds"] == 0.0


def test_check_rejects_a_bad_sample_count() -> None:
    result = run_cli("check", "--bootstrap-server", "127.0.0.1:1", "--samples", "0")
    assert result.returncode == 3
    assert result.stderr == "lagwatch: --samples: must be 1 or more (got 0)\n"
