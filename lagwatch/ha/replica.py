"""This replica's part in the sharing: its lease, what it read of its shards, and the
``Sharing`` its alerter works through (the clock is read here, at the edge; the Kafka
reads and writes are the membership's)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from lagwatch.alerting.alerter import SELF
from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.incidents import Incident, Signal
from lagwatch.alerting.sharing import Handed, NotSharedError
from lagwatch.ha.ownership import Claim, Outsiders, Shards, adopted_by
from lagwatch.ha.shards import shard_of
from lagwatch.ha.signing import Seal, SealError, claimed_writer
from lagwatch.ha.statelog import (
    SILENCES_SHARD,
    ShardState,
    claim_value,
    finished,
    incident_record,
    silence_record,
    status_record,
)

log = logging.getLogger(__name__)


class Writer(Protocol):
    """Where the records go (kafka.membership.Membership)."""

    def write(self, shard: int, key: bytes, value: bytes | None) -> int | None:
        """Write and wait; the offset, or None when it failed."""

    def send(self, shard: int, key: bytes, value: bytes | None) -> None:
        """Write without waiting."""

    def flush(self) -> None:
        """Wait until what was sent is written."""


class Replica:
    """One replica: the membership thread renews its lease and feeds it the shards'
    records; the alerter asks it what it holds and publishes through it."""

    MAX_NAMED = 100  # writers of refused records named in the log, at most

    def __init__(self, count: int, session_timeout_s: float, name: str, *,
                 incarnation: str, seal: Seal, clusters: frozenset[str] | None = None
                 ) -> None:
        self.shards = Shards(count, session_timeout_s)
        # the shards this replica holds, read by its membership; every shard, read apart
        self.state, self.fleet = ShardState(clusters), ShardState(clusters)
        self.name, self.incarnation, self.seal = name, incarnation, seal
        self.writer: Writer | None = None  # the membership, once it is made
        self.refused = 0  # values read that are not signed with a key held here
        self._unclaimed = Outsiders(session_timeout_s)  # who holds shards unclaimed, since
        self._named: set[str] = set()  # writers of refused values already logged
        self._refusals = threading.Lock()

    # the membership's side ----------------------------------------------------------------
    def renewed(self, shards: frozenset[int], generation: int, now: float) -> None:
        """The replica is a stable member holding ``shards`` (read up to its claims)."""
        self.shards.renewed(shards, generation, now)

    def dropped(self, lost: frozenset[int] | None) -> None:
        """Shards were revoked or lost (None: every one): what was read of them will be
        read afresh if they come back."""
        self.shards.dropped(lost)
        for shard in range(self.shards.count) if lost is None else lost:
            self.state.forget(shard)

    def apply(self, shard: int, key: bytes | None, value: bytes | None) -> str | None:
        """Take one record of a shard; return why it was skipped, if it was."""
        return self._open_into(self.state, shard, key, value, count=False)

    def apply_fleet(self, shard: int, key: bytes | None, value: bytes | None) -> str | None:
        """Take one record of any shard, for the fleet's view."""
        return self._open_into(self.fleet, shard, key, value, count=True)

    def _open_into(self, state: ShardState, shard: int, key: bytes | None,
                   value: bytes | None, *, count: bool) -> str | None:
        """Verify a value's signature and give the payload to ``state``. A value not signed
        with a key held here is refused: counted once (by the fleet's reader, which reads
        every shard) and logged once per writer it names."""
        if value is None:
            return state.apply(shard, key, None)
        try:
            opened = self.seal.open(shard, key or b"", value)
        except SealError as exc:
            writer = claimed_writer(value)
            with self._refusals:
                self.refused += count
                first = writer not in self._named and len(self._named) < self.MAX_NAMED
                if first:
                    self._named.add(writer)
            if first:
                log.warning("ha: refused a record of shard %d of %s written by %s: %s; "
                            "further ones of this writer are only counted (README, "
                            "Replicas)", shard, self.seal.topic.decode(), writer, exc)
            return None
        return state.apply(shard, key, opened.payload, opened.at_ms)

    def _signed(self, shard: int, key: bytes, payload: bytes) -> bytes:
        return self.seal.sign(shard, key, payload, self.name, int(time.time() * 1000))

    def claim(self, shard: int, generation: int, member: str) -> bytes:
        """The value of the claim this replica (group member id ``member``) writes on
        taking ``shard`` in ``generation``."""
        claim = Claim(self.name, self.incarnation, generation, member)
        return self._signed(shard, b"claim", claim_value(claim))

    def adopt(self, shards: frozenset[int], generation: int, member: str, *,
              claim: bool) -> None:
        """Watch ``shards`` too (outsiders hold them), each from when the fleet's reader
        has read this replica's claim on it (what was written before is known then) until
        another replica claims it. With ``claim``, claim those not claimed yet (a write
        waits, so the membership loop asks it only now and then)."""
        me = self._as(generation)
        ready = frozenset(s for s in shards if self.fleet.claimed_by(s, me))
        writer = self.writer if claim else None
        if writer is not None:
            for shard in sorted(shards - ready):
                writer.write(shard, b"claim", self.claim(shard, generation, member))
        self.shards.adopt(ready)

    def _as(self, generation: int) -> Claim:
        """This replica as the writer of a record."""
        return Claim(self.name, self.incarnation, generation)

    # the alerter's side (alerting.sharing.Sharing) ----------------------------------------
    def shard(self, signal: Signal) -> int | None:
        """The shard of an incident; None for lagwatch's own."""
        if signal.key.cluster == SELF:
            return None
        return shard_of(signal.key.cluster, signal.group, self.shards.count)

    def owns(self, cluster: str, group: str | None) -> bool:
        """Whether this replica watches a group of a cluster (None: the cluster's own
        health) now."""
        return self.shards.owns(cluster, group, time.monotonic())

    def held(self) -> frozenset[int]:
        """The shards this replica may act for now."""
        return self.shards.owned(time.monotonic())

    def handed(self, shard: int) -> Mapping[str, Handed]:
        """What the shard's records say, by incident id (an adopted shard's, as the fleet's
        reader read them: the membership does not read it)."""
        adopted = shard in self.shards.lease.adopted
        return (self.fleet if adopted else self.state).handed(shard)

    def publish(self, shard: int, incident_id: str, handed: Handed) -> None:
        """Write an incident's state to its shard while this replica holds it (a replica
        whose lease lapsed writes nothing: the fence)."""
        if self.writer is None or shard not in self.held():
            log.info("ha: not writing incident %s: shard %d is not held here", incident_id,
                     shard)
            return
        claim = self._as(self.shards.lease.generation)
        key, payload = incident_record(claim, incident_id, handed)
        self.writer.send(shard, key, self._signed(shard, key, payload))
        if finished(handed):  # then the tombstone, for compaction
            self.writer.send(shard, key, None)

    def flush(self) -> None:
        """Wait until every record sent is written (or failed, which is logged)."""
        if self.writer is not None:
            self.writer.flush()

    def send_status(self, shard: int, cluster: str, compressed: bytes) -> None:
        """Write this replica's part of a cluster's status document to a shard it holds,
        without waiting (the next poll writes it again)."""
        if self.writer is not None and shard in self.held():
            claim = self._as(self.shards.lease.generation)
            key, payload = status_record(claim, cluster, compressed)
            self.writer.send(shard, key, self._signed(shard, key, payload))

    def outsiders(self, assignees: dict[int, str], members: set[str], me: str, now: float
                  ) -> tuple[frozenset[int], frozenset[int]]:
        """The shards outsiders hold (``assignees``: each assigned shard's member id;
        ``members``: the group's member ids; ``me``: this replica's), and those of them
        this replica is to watch."""
        claimants = self.fleet.claimants()
        theirs = {s: m for s, m in assignees.items() if m != me}  # mine: claimed in the loop
        held = self._unclaimed.held(theirs, claimants, now)
        replicas = {c for c in claimants.values() if c is not None} & members
        return held, adopted_by(held, replicas, me)

    def incidents(self) -> list[Incident]:
        """Every replica's open incidents, as the state topic says."""
        return self.fleet.incidents()

    def silences(self) -> Mapping[str, SilenceConfig]:
        """The silences made through any replica's API."""
        return self.fleet.silences()

    def save_silence(self, silence_id: str, silence: SilenceConfig | None) -> None:
        """Write a silence (None: its deletion) to the state topic, and take it here at
        once (the other replicas read it within a second)."""
        key, payload = silence_record(silence_id, silence)
        value = self._signed(SILENCES_SHARD, key, payload)
        if self.writer is None or self.writer.write(SILENCES_SHARD, key, value) is None:
            raise NotSharedError("the state topic did not take the silence; try again")
        if silence is None:  # then the tombstone, for compaction
            self.writer.send(SILENCES_SHARD, key, None)
        self.apply_fleet(SILENCES_SHARD, key, value)
