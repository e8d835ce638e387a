"""With ``ha``: the status document of the whole fleet, the same from every replica.

After each poll a replica writes, to each shard it holds, its part of the cluster's
status document: the documents of the shard's groups, and the cluster's own fields when
the shard is the cluster's. Every replica reads every shard (ha.replica.Replica.fleet), so
any of them can put the parts together when ``/api/v1/status`` is asked for: a load
balancer in front of the replicas answers alike whichever it picks.

The parts are signed by the replicas (ha.signing) and bounded in size (ha.statelog); each is
decompressed to at most ``MAX_PART_BYTES`` and checked for its shape; one that fails is
left out and logged.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from typing import Any

from lagwatch.ha.replica import Replica
from lagwatch.ha.shards import shard_of
from lagwatch.report.view import ClusterReport
from lagwatch.serve.documents import cluster_fields, group_document, iso, pending_cluster

log = logging.getLogger(__name__)
MAX_PART_BYTES = 64 * 1024 * 1024


class FleetStatus:
    """Shares this replica's parts of the status document, and puts the fleet's together."""

    def __init__(self, replica: Replica, clusters: list[str]) -> None:
        self.replica, self.clusters = replica, clusters
        self._lock = threading.Lock()
        self._parts: dict[tuple[int, str], bytes] | None = None  # what was put together
        self._clusters: dict[str, dict[str, Any]] = {}
        self._warned: set[tuple[int, str]] = set()

    def share(self, report: ClusterReport) -> None:
        """Write this replica's parts of a cluster's document to the shards it holds."""
        held = self.replica.held()
        count = self.replica.shards.count
        parts: dict[int, dict[str, Any]] = {shard: {} for shard in held}
        for g in report.groups:
            groups = parts.get(shard_of(report.cluster, g.group_id, count))
            if groups is not None:
                groups[g.group_id] = group_document(g)
        health = shard_of(report.cluster, None, count)
        for shard, groups in sorted(parts.items()):
            part = {"cluster": cluster_fields(report) if shard == health else None,
                    "groups": groups}
            self.replica.send_status(shard, report.cluster, zlib.compress(
                json.dumps(part, separators=(",", ":")).encode(), 1))

    def clusters_now(self) -> dict[str, dict[str, Any]]:
        """Every configured cluster's document, from the parts read so far (put together
        again only when a part changed)."""
        parts = self.replica.fleet.status_parts()
        with self._lock:
            before = self._parts
            if before is None or parts.keys() != before.keys() or any(
                    parts[k] is not before[k] for k in parts):
                self._clusters = self._assemble(parts)
                self._parts = parts
            return self._clusters

    def document(self, now: float) -> dict[str, Any]:
        """The /api/v1/status document of the whole fleet."""
        return {"generated_at": iso(now), "clusters": self.clusters_now()}

    def _assemble(self, parts: dict[tuple[int, str], bytes]) -> dict[str, dict[str, Any]]:
        documents = {c: pending_cluster() for c in self.clusters}
        groups: dict[str, dict[str, Any]] = {c: {} for c in self.clusters}
        for (shard, cluster), compressed in sorted(parts.items()):
            if cluster not in documents:
                continue
            part = self._read(shard, cluster, compressed)
            if part is None:
                continue
            if part["cluster"] is not None:
                documents[cluster].update(part["cluster"])
            groups[cluster].update(part["groups"])
        for cluster, document in documents.items():
            document["groups"] = dict(sorted(groups[cluster].items()))
        return documents

    def _read(self, shard: int, cluster: str, compressed: bytes) -> dict[str, Any] | None:
        try:
            inflate = zlib.decompressobj()
            text = inflate.decompress(compressed, MAX_PART_BYTES)
            if inflate.unconsumed_tail:
                raise ValueError(f"over {MAX_PART_BYTES:,} bytes")
            part = json.loads(text)
            if not (isinstance(part, dict) and isinstance(part.get("groups"), dict)
                    and isinstance(part.get("cluster"), dict | None)):
                raise ValueError("not a status part")
        except (zlib.error, ValueError) as exc:
            if (shard, cluster) not in self._warned:
                log.warning("ha: left out shard %d's status of cluster %s: %s", shard,
                            cluster, exc)
                self._warned.add((shard, cluster))
            return None
        return part
