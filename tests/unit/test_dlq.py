"""Dead-letter queue findings, from hand-built polls (one every 15 s)."""

from __future__ import annotations

import pytest

from lagwatch.config import ConfigError, load_config
from lagwatch.detect.config import DetectionConfig, DlqConfig
from lagwatch.detect.findings import Finding
from lagwatch.detect.verdict import Verdict
from lagwatch.model import GroupSnapshot, LogOffsets, Member, Retention, Snapshot
from lagwatch.pipeline import ClusterJudge
from lagwatch.status import Severity, Status

T0 = 1_790_000_000.0
DLQ = "orders.DLT"


def polls(ends: list[int], start: int = 0, groups: dict[str, GroupSnapshot] | None = None,
          retention_s: float = 7 * 86400.0) -> Verdict:
    """Judge a DLQ whose log end takes the given values, one poll every 15 s."""
    judge = ClusterJudge("c", DetectionConfig())  # orders.DLT: a DLQ of orders by its name
    verdict = None
    for k, end in enumerate(ends):
        verdict = judge.ingest(Snapshot("c", T0 + 15 * k, 0.0, up=True, groups=groups or {},
                                        offsets={(DLQ, 0): LogOffsets(start, end)},
                                        retention={DLQ: Retention(retention_s)}))
    assert verdict is not None
    return verdict


def test_messages_arriving_in_an_unread_dlq_give_inflow_and_unconsumed() -> None:
    verdict = polls([0, 0, 2, 5, 5])
    assert verdict.cluster_findings == (
        Finding("dlq_inflow", Severity.WARNING,
                "5 messages arrived in orders.DLT over the last 1m (0.08 msg/s): the consumers "
                "of orders fail on some messages", subject="orders.DLT"),
        Finding("dlq_unconsumed", Severity.WARNING,
                "orders.DLT holds 5 messages and no consumer group reads it",
                subject="orders.DLT"))
    dlq, = verdict.dlqs
    assert (dlq.source, dlq.arrived, dlq.unread, dlq.readers) == ("orders", 5, 5, {})
    assert dlq.oldest_unread_s == pytest.approx(37.5)  # offset 0 landed between 15 s and 30 s


def test_a_quiet_dlq_that_someone_reads_raises_nothing() -> None:
    reader = GroupSnapshot("dlq-reader", "Stable", members=(Member("m", "c", "h"),),
                           committed={(DLQ, 0): 7})
    verdict = polls([7, 7, 7, 7], groups={"dlq-reader": reader})
    assert verdict.cluster_findings == ()
    assert verdict.dlqs[0].readers == {"dlq-reader": Status.OK}


def test_a_stopped_dlq_reader_is_a_finding() -> None:
    reader = GroupSnapshot("dlq-reader", "Empty", committed={(DLQ, 0): 3})
    verdict = polls([7, 7, 7, 7], groups={"dlq-reader": reader})
    assert verdict.cluster_findings == (Finding(
        "dlq_consumer_lagging", Severity.WARNING,
        "group dlq-reader reading orders.DLT is stopped with 4 messages unread",
        subject="orders.DLT"),)


def test_unread_dlq_messages_near_retention_are_expiring() -> None:
    # offset 0 landed at 3.75 s, so at 45 s it is 41.25 s old; with a retention of 6 h it
    # is deleted in 5h 59m, inside the 6 h horizon
    verdict = polls([0, 4, 4, 4], retention_s=6 * 3600)
    kinds = [f.kind for f in verdict.cluster_findings]
    assert kinds == ["dlq_inflow", "dlq_unconsumed", "dlq_expiring"]
    assert verdict.cluster_findings[-1].reason == (
        "the oldest unread message in orders.DLT is 41s old; retention (6h) deletes it "
        "in 5h 59m")


def test_no_lagging_by_trend_on_a_dlq() -> None:
    # a reader falling behind steadily on a DLQ would be lagging on an ordinary topic
    judge = ClusterJudge("c", DetectionConfig())
    statuses = set()
    for k in range(40):
        reader = GroupSnapshot("r", "Stable", members=(Member("m", "c", "h"),),
                               committed={(DLQ, 0): 8 * k})
        verdict = judge.ingest(Snapshot("c", T0 + 15 * k, 0.0, up=True, groups={"r": reader},
                                        offsets={(DLQ, 0): LogOffsets(0, 10 * k + 50)}))
        assert verdict is not None
        statuses.add(verdict.assessments["r"][(DLQ, 0)].status)
    assert Status.LAGGING not in statuses


@pytest.mark.parametrize(("topic", "expected"), [
    ("orders.DLT", (True, "orders")), ("orders-dlt", (True, "orders")),
    ("orders.dlq", (True, "orders")), ("orders-dlq", (True, "orders")),
    ("orders_dlq", (True, "orders")), ("dlq.orders", (True, "orders")),
    ("dlq-orders", (True, "orders")), ("orders.deadletter", (True, "orders")),
    ("orders", (False, None)), ("payments-retry", (False, None))])
def test_default_dlq_name_patterns(topic: str, expected: tuple[bool, str | None]) -> None:
    assert DlqConfig().source_of(topic) == expected


def test_explicit_dlq_mapping_wins() -> None:
    config = DlqConfig.model_validate({"topics": {"poison": "orders", "orders.DLT": None}})
    assert config.source_of("poison") == (True, "orders")
    assert config.source_of("orders.DLT") == (True, None)


def test_a_dlq_pattern_must_name_the_source() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"bootstrap_servers": ["k:9092"],
                           "dlq": {"patterns": ["^dead-.*$"]}})
    assert str(caught.value) == ("dlq.patterns: pattern '^dead-.*$' needs a (?P<source>...) "
                                 "group naming the source topic")
