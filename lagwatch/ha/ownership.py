"""Who owns which shard, and whether this replica may still act for one (pure, no clock).

Two guards keep a replica that lost a shard from acting for it (fencing):

- ``Lease``: the shards Kafka's group coordinator assigned to this replica, valid only
  while its membership loop kept ticking within the session timeout. A replica that was
  paused (SIGSTOP, a long GC, a frozen VM) past the timeout has lost its shards to another
  replica whether or not it has heard so yet; the first thing it finds on waking is that
  its lease lapsed, before it can send anything.
- ``Claims``: a replica that takes a shard over first writes a claim to the shard's
  partition of the state topic, then reads the partition up to it. Every record carries
  its writer; after a claim, readers admit only the claimant's records, so a late write
  from a former owner changes nothing. The claim's place in the log is the fence, not the
  group generation, which starts again at 1 if the coordination group is ever emptied and
  expires; a writer is a replica in one run (``incarnation``), so a replica restarted
  under the same name is another writer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lagwatch.ha.shards import shard_of


@dataclass(frozen=True, slots=True)
class Claim:
    """Who wrote a record: a replica in one run, and the generation of the coordination
    group it owned the shard in then (for people reading the topic)."""

    replica: str
    incarnation: str
    generation: int
    member: str | None = None  # in a claim: the coordination group's member id of its writer

    def same_writer(self, other: Claim) -> bool:
        """Whether two records come from the same replica in the same run."""
        return (self.replica, self.incarnation) == (other.replica, other.incarnation)


@dataclass(slots=True)
class Lease:
    """This replica's shards, as of its latest assignment, and when it last knew so."""

    session_timeout_s: float
    shards: frozenset[int] = frozenset()
    generation: int = -1
    renewed_at: float | None = None  # monotonic time of the membership loop's last tick
    adopted: frozenset[int] = frozenset()  # shards held by an outsider, watched here anyway

    def renew(self, shards: frozenset[int], generation: int, now: float) -> None:
        """The membership loop found the replica a stable member owning ``shards`` in
        ``generation``."""
        self.shards, self.generation, self.renewed_at = shards, generation, now

    def drop(self, lost: frozenset[int] | None = None) -> None:
        """Shards were revoked or lost (None: all): act for none of them until assigned
        again; with all lost, act for nothing until the next assignment."""
        if lost is None:
            self.shards, self.renewed_at, self.adopted = frozenset(), None, frozenset()
        else:
            self.shards -= lost

    def holds(self, shard: int, now: float) -> bool:
        """Whether this replica may act for ``shard`` now."""
        return (shard in self.shards or shard in self.adopted) and self.live(now)

    def live(self, now: float) -> bool:
        """Whether the lease has been renewed within the session timeout."""
        return self.renewed_at is not None and now - self.renewed_at < self.session_timeout_s


@dataclass(slots=True)
class Claims:
    """The latest claim on each shard that the state topic shows, in log order."""

    latest: dict[int, Claim] = field(default_factory=dict)

    def claimed(self, shard: int, claim: Claim) -> None:
        """A claim record: from here on the shard's records are the claimant's."""
        self.latest[shard] = claim

    def admit(self, shard: int, writer: Claim) -> bool:
        """Whether a record of ``writer`` counts: False when another replica claimed the
        shard since (a former owner's late write, to be discarded)."""
        seen = self.latest.get(shard)
        return seen is None or seen.same_writer(writer)


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

    def dropped(self, lost: frozenset[int] | None = None) -> None:
        with self._lock:
            self.lease.drop(lost)

    def adopt(self, shards: frozenset[int]) -> None:
        """Watch these shards too: outsiders hold them (and this replica claimed them)."""
        with self._lock:
            self.lease.adopted = shards

    def owns(self, cluster: str, group: str | None, now: float) -> bool:
        """Whether this replica watches ``group`` of ``cluster`` (None: the cluster's own
        health) now."""
        shard = shard_of(cluster, group, self.count)
        with self._lock:
            return self.lease.holds(shard, now)

    def owned(self, now: float) -> frozenset[int]:
        """The shards this replica holds now (none once its lease lapsed)."""
        with self._lock:
            lease = self.lease
            return lease.shards | lease.adopted if lease.live(now) else frozenset()


@dataclass(slots=True)
class Outsiders:
    """Which shards are held by a group member that is not a replica: one whose assignee
    has signed no claim on it for ``session_timeout_s`` (a new owner claims within a
    second of its assignment)."""

    session_timeout_s: float
    since: dict[int, float] = field(default_factory=dict)  # shard -> first seen unclaimed

    def held(self, assignees: Mapping[int, str], claimants: Mapping[int, str | None],
             now: float) -> frozenset[int]:
        """The shards held by outsiders now: ``assignees`` maps each assigned shard to its
        member id, ``claimants`` each claimed shard to the member id its latest claim
        names."""
        unclaimed = {s for s, member in assignees.items() if claimants.get(s) != member}
        self.since = {s: self.since.get(s, now) for s in unclaimed}
        return frozenset(s for s, t in self.since.items() if now - t >= self.session_timeout_s)


def adopted_by(outsiders: Iterable[int], replicas: Iterable[str], me: str) -> frozenset[int]:
    """The outsiders' shards this replica (member id ``me``) watches: each goes to one of
    the replicas (the members that signed a claim, and this one), the same whoever
    reckons."""
    live = sorted({*replicas, me})
    return frozenset(s for s in outsiders if live[s % len(live)] == me)
