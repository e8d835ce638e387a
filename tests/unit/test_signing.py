"""The state topic's seal: what verifies, what is refused, and a key rotation."""

from __future__ import annotations

import logging

import pytest

from lagwatch.alerting.config import SilenceConfig
from lagwatch.ha.ownership import Claim
from lagwatch.ha.replica import Replica
from lagwatch.ha.signing import Opened, Seal, SealError, parse_keys
from lagwatch.ha.statelog import MAX_PART, ShardState, silence_record, status_record

OLD, NEW = b"o" * 32, b"n" * 40
SEAL = Seal([OLD], "lagwatch-state")
SILENCE = SilenceConfig.model_validate({"match": {}, "ends": "2026-12-08T00:00:00Z"})


def test_a_signed_value_opens_to_its_writer_time_and_payload() -> None:
    value = SEAL.sign(3, b"claim", b'{"v":1}', "replica a", 1_700_000_000_000)
    assert value.startswith(b"LW1 ")
    assert SEAL.open(3, b"claim", value) == Opened("replica a", 1_700_000_000_000, b'{"v":1}')


@pytest.mark.parametrize(("shard", "key", "edit", "why"), [
    (3, b"claim", lambda v: b'{"v":1}', "unsigned"),
    (3, b"claim", lambda v: v.replace(b" 5 ", b" 5x ", 1), "a malformed signature"),
    (4, b"claim", lambda v: v, "a bad signature"),  # moved to another shard
    (3, b"incident:x", lambda v: v, "a bad signature"),  # under another key
    (3, b"claim", lambda v: v[:-1] + b"2", "a bad signature"),  # payload changed
    (3, b"claim", lambda v: v.replace(b" a\n", b" b\n"), "a bad signature"),  # writer
    (3, b"claim", lambda v: Seal([NEW], "lagwatch-state").sign(3, b"claim", b"1", "a", 5),
     "signed with key '527ccc3e', which is not in ha.key_file"),
])
def test_a_value_not_signed_for_its_shard_and_key_with_a_key_held_is_refused(
        shard: int, key: bytes, edit: object, why: str) -> None:
    value = SEAL.sign(3, b"claim", b'{"v":1}', "a", 5)
    with pytest.raises(SealError) as refused:
        SEAL.open(shard, key, edit(value))  # type: ignore[operator]
    assert str(refused.value) == why


def test_a_key_rotates_without_downtime() -> None:
    step1 = Seal([OLD, NEW], "t")  # the new key added second: signs with the old
    step2 = Seal([NEW, OLD], "t")  # then first: signs with the new
    step3 = Seal([NEW], "t")  # the old one dropped
    old_only = Seal([OLD], "t")
    assert old_only.open(0, b"k", step1.sign(0, b"k", b"p", "a", 1)).payload == b"p"
    assert step1.open(0, b"k", step2.sign(0, b"k", b"p", "a", 1)).payload == b"p"
    assert step2.open(0, b"k", old_only.sign(0, b"k", b"p", "a", 1)).payload == b"p"
    assert step3.open(0, b"k", step2.sign(0, b"k", b"p", "a", 1)).payload == b"p"


@pytest.mark.parametrize(("text", "error"), [
    ("", "holds no key: write one key of at least 32 characters per line"),
    ("short\n", "key 1 is 5 characters; at least 32 (e.g. openssl rand -hex 32)"),
    ("\n".join(["k" * 32] * 9), "holds 9 keys; at most 8"),
])
def test_a_key_file_that_cannot_sign_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_keys(text)
    assert str(refused.value) == error


def test_a_forged_silence_mutes_nothing_and_its_writer_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    replica = Replica(4, 10.0, "a", incarnation="r1", seal=SEAL)
    key, payload = silence_record("forged", SILENCE)
    forged = Seal([NEW], "lagwatch-state").sign(0, key, payload, "mallory", 5)
    for value in (payload, forged, forged, payload):
        assert replica.apply_fleet(0, key, value) is None
    assert (replica.silences(), replica.refused) == ({}, 4)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "ha: refused a record of shard 0 of lagwatch-state written by unsigned: unsigned; "
        "further ones of this writer are only counted (README, Replicas)",
        "ha: refused a record of shard 0 of lagwatch-state written by mallory: signed with "
        "key '527ccc3e', which is not in ha.key_file; further ones of this writer are only "
        "counted (README, Replicas)"]
    # a silence signed by a replica is taken, and its signed deletion removes it
    replica.apply_fleet(0, key, SEAL.sign(0, key, payload, "b", 10))
    assert list(replica.silences()) == ["forged"]
    key, deleted = silence_record("forged", None)
    replica.apply_fleet(0, key, SEAL.sign(0, key, deleted, "b", 11))
    assert replica.silences() == {}


def test_status_parts_are_kept_only_for_configured_clusters_and_within_bounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    writer = Claim("a", "r1", 1)
    state = ShardState(frozenset({"prod"}))
    assert state.apply(1, *status_record(writer, "elsewhere", b"x")) == (
        "status of 'elsewhere', which is not a configured cluster")
    assert state.apply(1, *status_record(writer, "prod", b"x" * (MAX_PART + 1))) == (
        f"status of 'prod' is {MAX_PART + 1:,} bytes, over {MAX_PART:,}")
    monkeypatch.setattr("lagwatch.ha.statelog.MAX_PARTS", 10)
    assert state.apply(1, *status_record(writer, "prod", b"x" * 6)) is None
    assert state.apply(2, *status_record(writer, "prod", b"y" * 5)) == (
        "status of 'prod': the parts kept would pass 10 bytes")
    assert state.apply(1, *status_record(writer, "prod", b"z" * 10)) is None  # replaced
    assert (state.status_parts(), state.unreadable) == ({(1, "prod"): b"z" * 10}, 3)
