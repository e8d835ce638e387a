"""Who owns which shard, and whether this replica may still act for one (pure, no clock).

Two guards keep a replica that lost a shard from acting for it (fencing):

- ``Lease``: the shards Kafka's group coordinator assigned to this replica, valid only
  while its membership loop kept ticking within the session timeout. A replica that was
  paused (SIGSTOP, a long GC, a frozen VM) past the timeout has lost its shards to another
  replica whether or not it has heard so yet; the first thing it finds on waking is that
  its lease lapsed, before it can send anything.
- ``Claims``: every record a shard's owner writes to the state topic carries the group
  generation it owns the shard in. Readers keep the highest generation seen per shard and
  discard writes from older ones: a late write from a former owner changes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from lagwatch.ha.shards import shard_of


@dataclass(frozen=True, slots=True)
class Claim:
    """A replica's ownership of a shard in one generation of the coordination group."""

    replica: str
    generation: int


@dataclass(slots=True)
class Lease:
    """This replica's shards, as of its latest assignment, and when it last knew so."""

    session_timeout_s: float
    shards: frozenset[int] = frozenset()
    generation: int = -1
    renewed_at: float | None = None  # monotonic time of the membership loop's last tick

    def renew(self, shards: frozenset[int], generation: int, now: float) -> None:
        """The membership loop found the replica a stable member owning ``shards`` in
        ``generation``."""
        self.shards, self.generation, self.renewed_at = shards, generation, now

    def drop(self) -> None:
        """The shards were revoked or lost: act for none until the next assignment."""
        self.shards, self.renewed_at = frozenset(), None

    def holds(self, shard: int, now: float) -> bool:
        """Whether this replica may act for ``shard`` now."""
        return shard in self.shards and self.live(now)

    def live(self, now: float) -> bool:
        """Whether the lease has been renewed within the session timeout."""
        return self.renewed_at is not None and now - self.renewed_at < self.session_timeout_s


@dataclass(slots=True)
class Claims:
    """The latest claim on each shard that the state topic shows."""

    latest: dict[int, Claim] = field(default_factory=dict)

    def admit(self, shard: int, claim: Claim) -> bool:
        """Take a record's claim; False when it is older than the shard's latest claim (a
        former owner's late write, to be discarded). One generation gives a shard to one
        replica, so a different replica in the same generation is refused too."""
        seen = self.latest.get(shard)
        if seen is not None and (claim.generation < seen.generation or (
                claim.generation == seen.generation and claim.replica != seen.replica)):
            return False
        self.latest[shard] = claim
        return True


class Shards:
    """What this replica may watch and act for: its lease, shared between the membership
    thread that renews it and the pollers and alerter that ask it (the caller says when
    ``now`` is, on the monotonic clock)."""

    def __init__(self, count: int, session_timeout_s: float) -> None:
        self.count = count
        self.lease = Lease(session_timeout_s)
        self._lock = threading.Lock()

    def renewed(self, shards: frozenset[int], generation: int, now: float) -> None:
        with self._lock:
            self.lease.renew(shards, generation, now)

    def dropped(self) -> None:
        with self._lock:
            self.lease.drop()

    def owns(self, cluster: str, group: str | None, now: float) -> bool:
        """Whether this replica watches ``group`` of ``cluster`` (None: the cluster's own
        health) now."""
        shard = shard_of(cluster, group, self.count)
        with self._lock:
            return self.lease.holds(shard, now)

    def owned(self, now: float) -> frozenset[int]:
        """The shards this replica holds now (none once its lease lapsed)."""
        with self._lock:
            return self.lease.shards if self.lease.live(now) else frozenset()
