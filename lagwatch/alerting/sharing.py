"""What the alerter needs from replicas that share the watching (``ha``), as a protocol.

With ``ha`` each incident belongs to a shard, and only the replica holding the shard may
raise, keep, deliver or resolve it. The alerter asks a ``Sharing`` which shard an incident
is in, which shards it holds now, what a shard's former owner left (the shard's open
incidents and their undelivered notifications, read back from the state topic before the
shard is held), and publishes every change of a shard's incidents back to it. The fleet's
incidents and the silences made through any replica come from the state topic too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lagwatch.alerting.config import SilenceConfig
from lagwatch.alerting.incidents import Incident, Signal

Pending = tuple[str, str, str]  # (receiver, action, message JSON) not yet delivered


@dataclass(frozen=True, slots=True)
class Handed:
    """An incident's latest record in its shard: the incident (None once resolved), the
    notifications of it not yet delivered, and what receivers answered to its trigger."""

    incident: Incident | None
    pending: tuple[Pending, ...] = ()
    receipts: Mapping[str, dict[str, Any]] = field(default_factory=dict)


class NotSharedError(Exception):
    """The state topic did not take a write that must reach every replica (a silence)."""


class Sharing(Protocol):
    """The replicas' shards, as seen by this replica."""

    def shard(self, signal: Signal) -> int | None:
        """The shard of an incident; None for lagwatch's own, which every replica keeps."""

    def held(self) -> frozenset[int]:
        """The shards this replica may act for now."""

    def handed(self, shard: int) -> Mapping[str, Handed]:
        """What the shard's records say, by incident id (read before the shard is held)."""

    def publish(self, shard: int, incident_id: str, handed: Handed) -> None:
        """Write an incident's new state to its shard (``flush`` waits for it)."""

    def flush(self) -> None:
        """Wait until what was published is written (before anyone is told of it)."""

    def incidents(self) -> list[Incident]:
        """Every replica's open incidents, as the state topic says."""

    def silences(self) -> Mapping[str, SilenceConfig]:
        """The silences made through any replica's API, by id."""

    def save_silence(self, silence_id: str, silence: SilenceConfig | None) -> None:
        """Write a silence (None: delete it) for every replica (raises NotSharedError)."""
