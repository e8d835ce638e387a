"""The audit's standards: the ``audit`` config section."""

from __future__ import annotations

from pydantic import Field

from lagwatch.configtypes import Duration, Strict


class AuditConfig(Strict):
    """What the production checklist asks of a group and the topics it reads."""

    replay_requirement: Duration = 7 * 86400.0  # how far back a replay must be able to go
    min_replication_factor: int = Field(default=3, ge=1)
    min_insync_replicas: int = Field(default=2, ge=1)
    # a classic group whose max.poll.interval.ms is below this stops at every slow batch
    min_rebalance_timeout: Duration = 60.0
    # a silence that lasts longer than this is as good as switching lag alerts off
    max_silence: Duration = 30 * 86400.0
