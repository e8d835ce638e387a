"""The ``alerting`` config section: lifecycle timings, receivers, routes, silences, retry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from lagwatch.alerting.incidents import IncidentKey, Route, Signal, Timings
from lagwatch.configtypes import (
    Duration,
    Regex,
    Strict,
    read_secret_file,
    require_ascii,
    secret_of,
)
from lagwatch.patterns import ANY
from lagwatch.status import Severity


class SlackConfig(Strict):
    """A Slack channel, through the Web API (bot token) or an incoming webhook."""

    token: SecretStr | None = None
    token_file: str | None = None
    channel: str | None = None
    webhook_url: SecretStr | None = None
    webhook_url_file: str | None = None
    base_url: str = "https://slack.com/api/"

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackConfig:
        token = self.token is not None or self.token_file is not None
        hook = self.webhook_url is not None or self.webhook_url_file is not None
        if token == hook:
            raise ValueError("set either token (or token_file) with channel, or webhook_url "
                             "(or webhook_url_file)")
        if token and not self.channel:
            raise ValueError("channel is required with a bot token")
        for path in (self.token_file, self.webhook_url_file):
            read_secret_file(path)
        require_ascii(self.bot_token(), "the token")
        require_ascii(self.hook_url(), "webhook_url")
        return self

    def bot_token(self) -> str | None:
        """Return the bot token, from its inline value or its file."""
        return secret_of(self, "token")

    def hook_url(self) -> str | None:
        """Return the incoming-webhook URL, from its inline value or its file."""
        return secret_of(self, "webhook_url")


class PagerDutyConfig(Strict):
    """A PagerDuty service, through the Events API v2."""

    routing_key: SecretStr | None = None
    routing_key_file: str | None = None
    base_url: str = Field(default="https://events.pagerduty.com", pattern=r"^https://")
    ca_file: str | None = None  # a private CA to trust (a TLS-inspecting proxy, say)

    @model_validator(mode="after")
    def _has_key(self) -> PagerDutyConfig:
        if self.routing_key is None and self.routing_key_file is None:
            raise ValueError("routing_key (or routing_key_file) is required")
        read_secret_file(self.routing_key_file)
        read_secret_file(self.ca_file)
        require_ascii(self.key(), "routing_key")
        return self

    def key(self) -> str:
        """Return the routing key."""
        return secret_of(self, "routing_key") or ""


class WebhookConfig(Strict):
    """Any HTTP endpoint that takes a JSON POST, optionally signed with HMAC-SHA256."""

    url: str = Field(pattern=r"^https?://")
    hmac_secret: SecretStr | None = None
    hmac_secret_file: str | None = None
    timeout: Duration = 10.0

    @field_validator("hmac_secret_file")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        read_secret_file(path)
        return path

    @field_validator("url")
    @classmethod
    def _ascii(cls, url: str) -> str:
        require_ascii(url, "url")
        return url

    def secret(self) -> str | None:
        """Return the HMAC secret, if one is set."""
        return secret_of(self, "hmac_secret")

    def url_secrets(self) -> list[str]:
        """What of the URL may be a credential: its query (``?token=…``) and the password
        of its user part."""
        parts = urlsplit(self.url)
        return [s for s in (parts.query, parts.password) if s]

    def shown_url(self) -> str:
        """The URL as logs and messages show it: no user part, ``?***`` for its query."""
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}" + ("?***" if parts.query else "")


class ReceiverConfig(Strict):
    """A named place notifications go: exactly one of slack, pagerduty or webhook."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    slack: SlackConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    webhook: WebhookConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReceiverConfig:
        if sum(x is not None for x in (self.slack, self.pagerduty, self.webhook)) != 1:
            raise ValueError(f"receiver {self.name!r} needs exactly one of slack, pagerduty "
                             "or webhook")
        return self


class Match(Strict):
    """Which incidents a route or silence covers; an absent field matches everything."""

    cluster: Regex = ANY
    group: Regex = ANY  # the group, or the topic or log dir of a cluster finding
    kind: Regex = ANY

    def covers(self, key: IncidentKey) -> bool:
        """Say whether every pattern matches the incident key (each anchored at both ends)."""
        return bool(self.cluster.fullmatch(key.cluster) and self.group.fullmatch(key.subject)
                    and self.kind.fullmatch(key.kind))


class RouteConfig(Strict):
    """Incidents that match go to these receivers; the first matching route wins."""

    match: Match = Field(default_factory=Match)
    severity: Literal["warning", "critical"] | None = None  # at least this severe
    receivers: list[str] = Field(min_length=1)
    repeat_interval: Duration | None = None
    continue_matching: bool = False  # also try the routes after this one

    def takes(self, signal: Signal) -> bool:
        """Say whether this route covers a signal."""
        if self.severity == "critical" and signal.severity is not Severity.CRITICAL:
            return False
        return self.match.covers(signal.key)


class SilenceConfig(Strict):
    """Mute matching incidents between two times (a maintenance window, say)."""

    match: Match = Field(default_factory=Match)
    starts: datetime | None = None
    ends: datetime
    comment: str = ""

    @field_validator("starts", "ends")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-27T22:00:00Z")
        return value

    @model_validator(mode="after")
    def _ends_after_starts(self) -> SilenceConfig:
        if self.starts is not None and self.ends <= self.starts:
            raise ValueError(f"ends ({self.ends.isoformat()}) must be after starts "
                             f"({self.starts.isoformat()})")
        return self

    def mutes(self, key: IncidentKey, now: float) -> bool:
        """Say whether this silence is in force at ``now`` and covers the incident."""
        started = self.starts is None or self.starts.timestamp() <= now
        return started and now < self.ends.timestamp() and self.match.covers(key)


class RetryConfig(Strict):
    """How a delivery that failed for a passing reason (429, 5xx, network) is retried."""

    initial_delay: Duration = 1.0
    max_delay: Duration = 300.0
    max_attempts: int = Field(default=12, ge=1)
    max_age: Duration = 3600.0


class LinksConfig(Strict):
    """URL templates; {cluster}, {group}, {subject} and {kind} are filled in."""

    dashboard: str | None = None
    runbook: str | None = None

    @field_validator("dashboard", "runbook")
    @classmethod
    def _known_fields(cls, template: str | None) -> str | None:
        if template is not None:
            try:
                template.format(cluster="", group="", subject="", kind="")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {template!r} uses {exc}; the fields are "
                                 "{cluster}, {group}, {subject} and {kind}") from None
        return template


_TIMINGS = Timings()  # the incident book's defaults


class AlertingConfig(Strict):
    """When incidents notify, whom, and how hard lagwatch tries."""

    for_: Duration = Field(default=_TIMINGS.for_s, alias="for")
    resolve_after: Duration = _TIMINGS.resolve_after_s
    min_firing: Duration = _TIMINGS.min_firing_s
    repeat_interval: Duration = 4 * 3600.0
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    default_receivers: list[str] = Field(default_factory=list)
    silences: list[SilenceConfig] = Field(default_factory=list)
    links: LinksConfig = Field(default_factory=LinksConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    slack_min_interval: Duration = 1.0  # between two messages to one channel

    @model_validator(mode="after")
    def _receivers_exist(self) -> AlertingConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"receiver name {twice!r} is used twice")
        for where, used in [("default_receivers", self.default_receivers),
                            *((f"routes[{i}].receivers", r.receivers)
                              for i, r in enumerate(self.routes))]:
            for name in used:
                if name not in names:
                    raise ValueError(f"{where}: no receiver is named {name!r}")
        return self

    def settings(self) -> Timings:
        """Return the lifecycle timings the incident book takes."""
        return Timings(for_s=self.for_, resolve_after_s=self.resolve_after,
                        min_firing_s=self.min_firing)

    def route(self, signal: Signal) -> Route:
        """Return where a signal's notifications go: the matching routes, else the default."""
        receivers: list[str] = []
        repeat = None
        for r in self.routes:
            if r.takes(signal):
                receivers += [n for n in r.receivers if n not in receivers]
                repeat = repeat or r.repeat_interval
                if not r.continue_matching:
                    break
        if not receivers:
            receivers = list(self.default_receivers)
        return Route(tuple(receivers), repeat or self.repeat_interval)
