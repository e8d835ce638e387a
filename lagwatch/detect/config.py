"""The knobs of detection: the ``detection``, ``health`` and ``dlq`` sections."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from lagwatch.configtypes import Duration, Regex, Strict
from lagwatch.detect.findings import HealthSettings
from lagwatch.detect.history import MAX_SAMPLES
from lagwatch.detect.rebalance import ChurnSettings
from lagwatch.detect.rules import DetectionSettings
from lagwatch.patterns import Pattern, compile_pattern

# The pure rules' dataclasses hold each knob's default; the sections below repeat none.
_RULES, _HEALTH, _CHURN = DetectionSettings(), HealthSettings(), ChurnSettings()


class DetectionConfig(Strict):
    """How statuses are judged from history (see the README's Statuses section)."""

    window: Duration = _RULES.window_s
    min_duration: Duration = _RULES.min_duration_s
    stall_after: Duration = _RULES.stall_after_s
    retention_horizon: Duration = _RULES.retention_horizon_s
    retention_refresh: Duration = 600.0  # how often topic retention settings are re-read
    significance: float = Field(default=_RULES.significance_z, gt=0)
    max_samples: int = Field(default=MAX_SAMPLES, ge=10, le=10000)

    def settings(self) -> DetectionSettings:
        """Return the knobs the pure detection rules take."""
        return DetectionSettings(window_s=self.window, min_duration_s=self.min_duration,
                        stall_after_s=self.stall_after,
                        retention_horizon_s=self.retention_horizon,
                        significance_z=self.significance)

    @model_validator(mode="after")
    def _window_holds_the_trend(self) -> DetectionConfig:
        if self.min_duration > self.window or self.stall_after > self.window:
            raise ValueError("window must be at least as long as min_duration and stall_after")
        return self


class HealthConfig(Strict):
    """Thresholds of the skew findings (see the README's Findings section)."""

    lag_skew_share: float = Field(default=_HEALTH.lag_skew_share, gt=0.5, le=1.0)
    lag_skew_min_messages: int = Field(default=_HEALTH.lag_skew_min_messages, ge=1)
    hot_partition_ratio: float = Field(default=_HEALTH.hot_partition_ratio, gt=1.0)
    hot_partition_min_rate: float = Field(default=_HEALTH.hot_partition_min_rate, ge=0)
    max_rebalances_per_hour: float = Field(default=_CHURN.max_per_hour, gt=0)
    max_rebalancing_share: float = Field(default=_CHURN.max_rebalancing_share, gt=0, le=1.0)
    rebalance_episode: Duration = _CHURN.episode_gap_s
    disk_horizon: Duration = _HEALTH.disk_horizon_s

    def churn(self, window_s: float) -> ChurnSettings:
        """Return when rebalance churn becomes a finding."""
        return ChurnSettings(window_s=window_s, max_per_hour=self.max_rebalances_per_hour,
                             max_rebalancing_share=self.max_rebalancing_share,
                             episode_gap_s=self.rebalance_episode)

    def settings(self, expected_brokers: int | None, memory_s: float) -> HealthSettings:
        """Return the knobs the pure finding rules take, for a cluster of so many brokers."""
        return HealthSettings(lag_skew_share=self.lag_skew_share,
                              lag_skew_min_messages=self.lag_skew_min_messages,
                              hot_partition_ratio=self.hot_partition_ratio,
                              hot_partition_min_rate=self.hot_partition_min_rate,
                              expected_brokers=expected_brokers, memory_s=memory_s,
                              disk_horizon_s=self.disk_horizon)


DEFAULT_DLQ_PATTERNS = (
    r"^(?P<source>.+)\.DLT$", r"^(?P<source>.+)-dlt$", r"^(?P<source>.+)\.dlq$",
    r"^(?P<source>.+)-dlq$", r"^(?P<source>.+)_dlq$", r"^dlq\.(?P<source>.+)$",
    r"^dlq-(?P<source>.+)$", r"^(?P<source>.+)\.deadletter$",
)


class DlqConfig(Strict):
    """Which topics are dead-letter queues, and of which source topic."""

    patterns: list[Regex] = Field(
        default_factory=lambda: [compile_pattern(p) for p in DEFAULT_DLQ_PATTERNS])
    topics: dict[str, str | None] = Field(default_factory=dict)  # dlq topic -> source topic

    @field_validator("patterns")
    @classmethod
    def _name_the_source(cls, patterns: list[Pattern]) -> list[Pattern]:
        for pattern in patterns:
            if "source" not in pattern.groupindex:
                raise ValueError(f"pattern {pattern.pattern!r} needs a (?P<source>...) group "
                                 "naming the source topic")
        return patterns

    def source_of(self, topic: str) -> tuple[bool, str | None]:
        """Say whether a topic is a DLQ, and the source topic its name points to."""
        if topic in self.topics:
            return True, self.topics[topic]
        for pattern in self.patterns:
            if (match := pattern.match(topic)) is not None:
                return True, match.group("source")
        return False, None
