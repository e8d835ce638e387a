"""Which shard watches what (pure): a stable hash of the cluster and the group.

A shard is one partition of the state topic. Each watched consumer group belongs to the
shard its cluster and group id hash to, and a cluster's own health (brokers, log dirs,
the controller) to the shard of its name alone. The hash is Kafka's murmur2, as the Java
client's default partitioner uses, so the mapping is the same in any language and in
every release; only changing ``ha.shards`` moves groups between shards.
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def shard_of(cluster: str, group: str | None, shards: int) -> int:
    """The shard of a group of a cluster; with ``group`` None, of the cluster's health."""
    key = cluster if group is None else f"{cluster}\x00{group}"
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % shards
