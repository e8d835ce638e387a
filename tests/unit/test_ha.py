"""High availability's pure parts: the shard of a group, a replica's lease, the claims
that fence a former owner's late writes, and the ``ha`` config section."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from lagwatch.config import ConfigError, load_config
from lagwatch.ha.ownership import Claim, Claims, Lease, Outsiders, adopted_by
from lagwatch.ha.shards import shard_of


def test_a_group_s_shard_is_the_java_client_s_partition_of_cluster_nul_group() -> None:
    # the values Kafka's Utils.toPositive(Utils.murmur2(key)) % 12 gives for these keys
    assert [shard_of("default", g, 12) for g in ("billing", "orders", "payments", "")] == [
        5, 6, 3, 10]
    assert shard_of("default", None, 12) == 7  # the cluster's own health: its name alone


def test_groups_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of("prod", f"group-{i}", 12) for i in range(12_000))
    assert sorted(counts) == list(range(12))
    assert max(counts.values()) < 1.1 * 1000 and min(counts.values()) > 0.9 * 1000


def test_a_lease_holds_its_shards_only_while_renewed_within_the_session_timeout() -> None:
    lease = Lease(session_timeout_s=10.0)
    assert not lease.holds(3, 100.0)  # nothing assigned yet
    lease.renew(frozenset({3, 5}), generation=4, now=100.0)
    assert (lease.holds(3, 109.9), lease.holds(4, 105.0)) == (True, False)
    # a replica paused past its session timeout may not act when it wakes
    assert not lease.holds(3, 110.0)
    lease.renew(frozenset({5}), generation=5, now=111.0)  # after a rebalance
    assert (lease.holds(5, 120.0), lease.holds(3, 120.0), lease.generation) == (True, False, 5)
    lease.drop()
    assert not lease.holds(5, 120.0)


def test_after_a_claim_only_the_claimant_s_writes_count() -> None:
    claims = Claims()
    a, b = Claim("replica-a", "run-1", 5), Claim("replica-b", "run-7", 6)
    assert claims.admit(3, a)  # nothing claimed yet (compaction removed older claims)
    claims.claimed(3, b)  # b took the shard over
    assert not claims.admit(3, a)  # a's write after it lost the shard
    assert claims.admit(3, Claim("replica-b", "run-7", 9))  # b, kept through a rebalance
    assert not claims.admit(3, Claim("replica-b", "run-8", 9))  # b restarted: another run
    claims.claimed(3, Claim("replica-a", "run-1", 1))  # the group emptied and expired: the
    assert claims.admit(3, a)  # generation starts again, and the claim still fences
    assert claims.admit(4, b)


@pytest.mark.parametrize(("ha", "error"), [
    ({"cluster": "nope", "key_file": "KEY"},
     "ha.cluster: 'nope' is not a configured cluster (clusters: a)"),
    ({"cluster": "a", "topic": "lagwatch state"},
     "ha.topic: invalid topic name 'lagwatch state': use 1 to 249 of a-z, A-Z, 0-9, '.', "
     "'_' and '-'"),
    ({"cluster": "a", "session_timeout": "1s"},
     "ha.session_timeout: must be between 6s and 30m (the brokers' default group session "
     "timeout bounds)"),
    ({"cluster": "a", "shards": 0}, "ha.shards: must be greater than or equal to 1 (got 0)"),
    ({"cluster": "a", "shard": 3, "key_file": "KEY"}, "ha.shard: unknown key"),
    ({"cluster": "a"}, "ha.key_file: required key is missing"),
    ({"cluster": "a", "key_file": "SHORT"},
     "ha.key_file: 'SHORT' key 2 is 9 characters; at least 32 (e.g. openssl rand -hex 32)"),
    ({"cluster": "a", "key_file": "missing"}, "ha.key_file: cannot read 'missing': No such "
     "file or directory"),
    ({"cluster": "a", "key_file": "KEY", "replica": "a\nb"},
     "ha.replica: must be printable (no newline or control character)"),
    ({}, "ha.cluster: required key is missing"),
])
def test_bad_ha_settings_name_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      ha: dict[str, object], error: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "KEY").write_text("k" * 32 + "\n")
    (tmp_path / "SHORT").write_text("k" * 32 + "\nnot-a-key\n")
    path = tmp_path / "lagwatch.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "a", "bootstrap_servers": ["127.0.0.1:9092"]}], "ha": ha}))
    with pytest.raises(ConfigError) as raised:
        load_config(str(path))
    assert str(raised.value) == error


def test_without_ha_one_process_watches_everything(tmp_path: Path) -> None:
    path = tmp_path / "lagwatch.yaml"
    path.write_text("clusters: [{name: a, bootstrap_servers: ['127.0.0.1:9092']}]\n")
    assert load_config(str(path)).ha is None


def test_the_ha_keys_are_secrets_scrubbed_from_logs(tmp_path: Path) -> None:
    keys = tmp_path / "ha-key"
    keys.write_text("n" * 40 + "\n" + "o" * 32 + "\n")
    path = tmp_path / "lagwatch.yaml"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "a", "bootstrap_servers": ["127.0.0.1:9092"]}],
        "ha": {"cluster": "a", "key_file": str(keys)}}))
    config = load_config(str(path))
    assert config.ha is not None
    assert config.ha.signing_keys() == [b"n" * 40, b"o" * 32]
    assert config.secrets() == ["n" * 40, "o" * 32]


def test_a_shard_whose_assignee_signed_no_claim_for_a_session_is_an_outsider_s() -> None:
    outsiders = Outsiders(session_timeout_s=10.0)
    assignees = {0: "m-a", 1: "m-a", 2: "m-x", 3: "m-x"}
    claimants = {0: "m-a", 1: "m-a", 2: "m-a", 3: None}  # m-x took 2 and 3 from m-a
    assert outsiders.held(assignees, claimants, 100.0) == frozenset()
    assert outsiders.held(assignees, claimants, 109.9) == frozenset()
    assert outsiders.held(assignees, claimants, 110.0) == {2, 3}
    # a replica assigned shard 3 claims it: its own again, and the clock starts anew
    assignees[3], claimants[3] = "m-b", "m-b"
    assert outsiders.held(assignees, claimants, 111.0) == {2}
    assignees[3] = "m-x"
    assert outsiders.held(assignees, claimants, 115.0) == {2}
    assert outsiders.held(assignees, claimants, 125.0) == {2, 3}


def test_each_outsider_s_shard_is_watched_by_one_replica_by_every_replica_s_reckoning() -> None:
    held = frozenset({2, 3, 7})
    mine = {me: adopted_by(held, ["m-b", "m-a"], me) for me in ("m-a", "m-b")}
    assert mine == {"m-a": {2}, "m-b": {3, 7}}
    # a replica whose claims the others have not read yet counts itself in
    assert adopted_by(held, [], "m-c") == held
