"""A replica's shards, read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lagwatch.ha.replica import Replica


class ShardCollector(Collector):
    """Which shards this replica owns now, in which group generation, among how many
    replicas, and the state topic's records it skipped."""

    def __init__(self, replica: Replica, members: Callable[[], int | None],
                 outsiders: Callable[[], int]) -> None:
        self.replica, self.shards = replica, replica.shards
        self.members, self.outsiders = members, outsiders

    def collect(self) -> Iterator[Metric]:
        """Yield the ha families."""
        owned = self.shards.owned(time.monotonic())
        family = GaugeMetricFamily("lagwatch_shard_owned",
                                   "1 for each shard this replica owns now, else 0.",
                                   labels=["shard"])
        for shard in range(self.shards.count):
            family.add_metric([str(shard)], 1.0 if shard in owned else 0.0)
        yield family
        yield GaugeMetricFamily("lagwatch_ha_generation",
                                "The coordination group's generation of this replica's "
                                "latest assignment (-1 before the first).",
                                value=self.shards.lease.generation)
        skipped = CounterMetricFamily(
            "lagwatch_ha_records_skipped", "Records of the state topic this replica read and "
            "skipped, by why: unsigned (no valid signature of a key in ha.key_file), "
            "unreadable (not what a replica writes, a replay, over the bounds), "
            "former_owner (written after another replica claimed the shard).",
            labels=["reason"])
        fleet = self.replica.fleet
        for reason, count in (("unsigned", self.replica.refused),
                              ("unreadable", fleet.unreadable),
                              ("former_owner", fleet.discarded)):
            skipped.add_metric([reason], count)
        yield skipped
        yield GaugeMetricFamily("lagwatch_ha_outsider_shards",
                                "Shards a member of the coordination group that is not a "
                                "lagwatch replica holds (it signed no claim on them for a "
                                "session timeout); a replica watches them anyway.",
                                value=self.outsiders())
        members = self.members()
        if members is not None:
            yield GaugeMetricFamily("lagwatch_ha_members",
                                    "Replicas in the coordination group, as this replica "
                                    "last counted them.", value=members)
