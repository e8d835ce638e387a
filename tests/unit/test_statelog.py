"""The state topic's records: what replicas write, what readers keep, what they refuse."""

from __future__ import annotations

import json
import zlib

import pytest

from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.incidents import Incident, IncidentKey, Phase, Signal
from lagwatch.alerting.sharing import Handed
from lagwatch.ha.ownership import Claim
from lagwatch.ha.replica import Replica
from lagwatch.ha.signing import Seal
from lagwatch.ha.statelog import (
    MAX_SKEW_MS,
    ShardState,
    claim_value,
    incident_record,
    silence_record,
    status_record,
)
from lagwatch.serve import fleet as fleet_module
from lagwatch.serve.fleet import FleetStatus
from lagwatch.status import Severity

A, B = Claim("replica-a", "r1", 4), Claim("replica-b", "r2", 5)
FIRING = Incident(Signal(IncidentKey("prod", "billing", "lag"), Severity.CRITICAL,
                         "billing is stalled", ("orders[0] stuck",), (("lag", "9"),),
                         "billing"),
                  Phase.FIRING, first_seen=10.0, fired_at=70.0,
                  notified={"pd": (70.0, Severity.CRITICAL)})
ID = "prod/billing/lag"
SEAL = Seal([b"k" * 32], "lagwatch-state")
SILENCE = SilenceConfig.model_validate({"match": {"group": "billing"},
                                        "ends": "2026-12-08T00:00:00Z"})


def test_an_incident_s_record_reads_back_as_written() -> None:
    state = ShardState()
    handed = Handed(FIRING, (("slack", "trigger", '{"m": 1}'),), {"slack": {"ts": "1.2"}})
    assert state.apply(3, b"claim", claim_value(A)) is None
    assert state.apply(3, *incident_record(A, ID, handed)) is None
    assert state.handed(3) == {ID: handed}
    assert state.handed(4) == {}


def test_a_resolved_incident_with_nothing_left_to_send_is_deleted_then_tombstoned() -> None:
    state = ShardState()
    state.apply(3, *incident_record(A, ID, Handed(FIRING)))
    # anyone can write a tombstone: one of a record still held is refused
    assert state.apply(3, b"incident:" + ID.encode(), None) == (
        "a tombstone of 'incident:prod/billing/lag', which is not deleted")
    assert state.handed(3) == {ID: Handed(FIRING)}
    # a resolve still to be delivered keeps the record
    state.apply(3, *incident_record(A, ID, Handed(None, (("pd", "resolve", "{}"),))))
    assert state.handed(3) == {ID: Handed(None, (("pd", "resolve", "{}"),))}
    # resolved with nothing left to send: the signed record deletes, the tombstone follows
    assert state.apply(3, *incident_record(A, ID, Handed(None))) is None
    assert state.apply(3, b"incident:" + ID.encode(), None) is None
    assert (state.handed(3), state.unreadable) == ({}, 1)


def test_a_value_signed_well_before_its_key_s_latest_is_a_replay() -> None:
    state = ShardState()
    assert state.apply(0, *silence_record("s1", SILENCE), at_ms=1_000_000) is None
    assert state.apply(0, *silence_record("s1", None), at_ms=2_000_000) is None
    # the silence's creation, written again by someone who kept it: refused
    assert state.apply(0, *silence_record("s1", SILENCE), at_ms=1_000_000) == (
        "signed 1000s before the latest value of its key: a replay (or the replicas' clocks "
        "are that far apart)")
    # clocks of replicas may disagree by up to MAX_SKEW_MS
    assert state.apply(0, *silence_record("s1", SILENCE),
                       at_ms=2_000_000 - MAX_SKEW_MS) is None
    assert list(state.silences()) == ["s1"]
    # a shard read again from its start (taken over anew) takes its older values again
    state.forget(0)
    assert state.apply(0, *silence_record("s1", SILENCE), at_ms=1_000_000) is None


def test_a_former_owner_s_write_after_the_new_owner_s_claim_is_discarded() -> None:
    state = ShardState()
    state.apply(3, *incident_record(A, ID, Handed(FIRING)))
    state.apply(3, b"claim", claim_value(B))
    late = incident_record(A, ID, Handed(None, (("pd", "resolve", "{}"),)))
    assert state.apply(3, *late) == ("a write of replica-a (generation 4), which no longer "
                                     "owns the shard")
    assert (state.handed(3), state.discarded) == ({ID: Handed(FIRING)}, 1)


@pytest.mark.parametrize(("key", "value", "why"), [
    (b"incident:x", b"\xff\xfe", "not JSON"),
    (b"incident:x", b"[]", "not a version 1 record"),
    (b"incident:x", json.dumps({"v": 1, "replica": "a", "generation": 1}).encode(),
     "no replica, incarnation and generation"),
    (b"incident:x", json.dumps({"v": 1, "replica": "a", "incarnation": "r",
                                "generation": True}).encode(),
     "no replica, incarnation and generation"),
    (b"incident:x", json.dumps({"v": 1, "replica": "a", "incarnation": "r", "generation": 1,
                                "incident": None, "pending": [["a", "b"]],
                                "receipts": {}}).encode(),
     "pending is not a list of [receiver, action, message]"),
    (b"incident:x", json.dumps({"v": 1, "replica": "a", "incarnation": "r", "generation": 1,
                                "incident": None, "pending": [], "receipts": []}).encode(),
     "receipts is not an object of objects"),
    (b"incident:x", json.dumps({"v": 1, "replica": "a", "incarnation": "r", "generation": 1,
                                "incident": {"key": ["p", "g", "lag"]}, "pending": [],
                                "receipts": {}}).encode(),
     "unreadable incident (KeyError: 'severity')"),
    (b"claim", b"", "not JSON"),
    (b"claim", None, "a tombstone of 'claim', which is not deleted"),
    (b"incident:x", b"[" * 100_000, "JSON nested too deeply"),
    (b"offsets", b"{}", "unknown key 'offsets'"),
    (None, b"{}", "unknown key ''"),
])
def test_a_value_no_replica_writes_is_counted_and_skipped(
        key: bytes | None, value: bytes | None, why: str) -> None:
    state = ShardState()
    state.apply(3, *incident_record(A, ID, Handed(FIRING)))
    assert state.apply(3, key, value) == why
    assert (state.handed(3), state.unreadable) == ({ID: Handed(FIRING)}, 1)


def fleet_with(*parts: tuple[int, bytes]) -> FleetStatus:
    replica = Replica(4, 10.0, "a", incarnation="r1", seal=SEAL)
    for shard, compressed in parts:
        key, payload = status_record(A, "prod", compressed)
        replica.apply_fleet(shard, key, SEAL.sign(shard, key, payload, "a", 1))
    return FleetStatus(replica, ["prod"])


def test_the_fleet_s_status_puts_every_shard_s_part_together() -> None:
    fleet = fleet_with(
        (1, zlib.compress(json.dumps({"cluster": None, "groups": {"b": {"status": "ok"}}})
                          .encode())),
        (2, zlib.compress(json.dumps({"cluster": {"up": True, "findings": []},
                                      "groups": {"a": {"status": "stalled"}}}).encode())))
    assert fleet.clusters_now() == {"prod": {
        "up": True, "last_poll": None, "errors": [], "findings": [], "dlqs": {},
        "groups": {"a": {"status": "stalled"}, "b": {"status": "ok"}}}}


def test_a_status_part_no_replica_writes_is_left_out(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_module, "MAX_PART_BYTES", 1000)
    bomb = zlib.compress(b" " * 1001, 9)
    fleet = fleet_with((1, bomb), (2, zlib.compress(b"[]")), (3, b"not zlib"))
    assert fleet.clusters_now()["prod"]["groups"] == {}
    assert [r.getMessage() for r in caplog.records] == [
        "ha: left out shard 1's status of cluster prod: over 1,000 bytes",
        "ha: left out shard 2's status of cluster prod: not a status part",
        "ha: left out shard 3's status of cluster prod: Error -3 while decompressing data: "
        "incorrect header check"]


def test_a_former_owner_s_status_after_the_new_owner_s_claim_is_discarded() -> None:
    state = ShardState()
    state.apply(1, b"claim", claim_value(B))
    assert state.apply(1, *status_record(A, "prod", b"x")) == (
        "a write of replica-a (generation 4), which no longer owns the shard")
    assert state.apply(1, *status_record(B, "prod", b"y")) is None
    assert state.status_parts() == {(1, "prod"): b"y"}
