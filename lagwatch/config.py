"""Load and validate lagwatch's YAML configuration.

Every problem becomes one ConfigError whose text names the key path, e.g.
``clusters[0].security.protocol: must be one of 'PLAINTEXT', ... (got 'TLS')``.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from lagwatch.alerting.config import AlertingConfig
from lagwatch.configtypes import (
    Duration,
    HostPort,
    NotUtf8Error,
    Regex,
    Strict,
    describe,
    join_key,
    read_secret_file,
    read_utf8,
    require_ascii,
    secret_of,
    server_list,
)
from lagwatch.detect.findings import HealthSettings
from lagwatch.detect.rebalance import ChurnSettings
from lagwatch.detect.rules import Settings
from lagwatch.patterns import ANY, Pattern, compile_pattern
from lagwatch.serve.webconfig import TlsServerConfig, WebConfig, WebConfigError, load_web_config

DEFAULT_LISTEN = "0.0.0.0:9391"
MIN_TOKEN = 16  # characters of lagwatch's own bearer token
RECONNECT_BACKOFF_MAX_MS = 1000  # cap on the wait between connection attempts to a broker
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The configuration is unusable; the message is one line that names the key path."""


class Security(Strict):
    """How to reach a secured cluster; passed through to kafka-python."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: SecretStr | None = None
    key_password_file: str | None = None
    check_hostname: bool = True

    @field_validator("password_file", "key_password_file")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        read_secret_file(path)
        return path

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Security:
        if self.protocol.startswith("SASL") and not self.sasl_mechanism:
            raise ValueError(f"sasl_mechanism is required with protocol {self.protocol}")
        if self.sasl_mechanism and (self.username is None or self.secret("password") is None):
            raise ValueError(f"{self.sasl_mechanism} needs username and password "
                             "(or password_file)")
        return self

    def secret(self, name: Literal["password", "key_password"]) -> str | None:
        """Return a secret from its inline value or its *_file form."""
        return secret_of(self, name)

    def client_options(self) -> dict[str, Any]:
        """Return the matching kafka-python client keyword arguments."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl_mechanism:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.username,
                           sasl_plain_password=self.secret("password"))
        if "SSL" in self.protocol:
            options.update(ssl_cafile=self.ca_file, ssl_certfile=self.cert_file,
                           ssl_keyfile=self.key_file, ssl_password=self.secret("key_password"),
                           ssl_check_hostname=self.check_hostname)
        return options


class GroupFilter(Strict):
    """Which consumer groups a cluster entry watches."""

    include: list[Regex] = Field(default_factory=lambda: [ANY])
    exclude: list[Regex] = Field(default_factory=list)

    def matches(self, group_id: str) -> bool:
        """Say whether a group is watched: some include matches and no exclude does."""
        return (any(p.search(group_id) for p in self.include)
                and not any(p.search(group_id) for p in self.exclude))


class ClusterConfig(Strict):
    """One Kafka cluster to watch."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    bootstrap_servers: Annotated[list[HostPort], BeforeValidator(server_list)] = Field(
        min_length=1)
    security: Security = Field(default_factory=Security)
    groups: GroupFilter = Field(default_factory=GroupFilter)
    request_timeout: Duration = 10.0
    expected_brokers: int | None = Field(default=None, ge=1)
    read_offsets_topic: bool = True  # exact rebalance counts and commit times
    # committed offsets whose record is fetched each poll, for exact time lag (0: none)
    record_fetches_per_poll: int = Field(default=1000, ge=0, le=100_000)

    def client_options(self) -> dict[str, Any]:
        """Return the kafka-python keyword arguments every client of this cluster takes."""
        timeout_ms = int(self.request_timeout * 1000)
        return {
            "bootstrap_servers": list(self.bootstrap_servers),
            "request_timeout_ms": timeout_ms,
            # a client waiting on a broker that is down retries each second (plus up to 20%
            # jitter), so it sees the broker return at once, not after a 5 to 30 s backoff
            "reconnect_backoff_max_ms": min(timeout_ms, RECONNECT_BACKOFF_MAX_MS),
            **self.security.client_options(),
        }


class HttpTls(Strict):
    """Serve HTTPS with this certificate and key (PEM); the web configuration file's
    ``tls_server_config`` does the same and more (client certificates, TLS versions)."""

    cert_file: str
    key_file: str

    @field_validator("cert_file", "key_file")
    @classmethod
    def _readable(cls, path: str) -> str:
        read_secret_file(path)
        return path

    def server_config(self) -> TlsServerConfig:
        """The same, as the web configuration file would say it."""
        return TlsServerConfig(cert_file=self.cert_file, key_file=self.key_file)


class HttpAuth(Strict):
    """Credentials the JSON API (and, if asked, /metrics) requires: basic or bearer."""

    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: str | None = None
    protect_metrics: bool = False

    @model_validator(mode="after")
    def _one_scheme(self) -> HttpAuth:
        basic = self.username is not None
        bearer = self.bearer_token is not None or self.bearer_token_file is not None
        if basic == bearer:
            raise ValueError("set either username with password (or password_file), or "
                             "bearer_token (or bearer_token_file)")
        if basic and self.secret("password") is None:
            raise ValueError("username needs password (or password_file)")
        token = self.secret("bearer_token")
        require_ascii(token, "bearer_token")
        if token is not None and len(token) < MIN_TOKEN:
            where = "bearer_token" if self.bearer_token is not None else (
                f"the token in bearer_token_file {self.bearer_token_file}")
            raise ValueError(f"{where} must be at least {MIN_TOKEN} characters long (make "
                             "one with: openssl rand -hex 32)")
        return self

    def secret(self, name: Literal["password", "bearer_token"]) -> str | None:
        """Return a secret from its inline value or its *_file form."""
        return secret_of(self, name)


class HttpConfig(Strict):
    """Where /metrics, the health checks and the JSON API are served, and how."""

    listen: HostPort = DEFAULT_LISTEN
    tls: HttpTls | None = None
    auth: HttpAuth | None = None
    web_config_file: str | None = None  # exporter-toolkit's format: TLS, basic_auth_users

    @model_validator(mode="after")
    def _one_of_each(self) -> HttpConfig:
        web = self.web()
        if self.tls is not None and web.tls_server_config is not None:
            raise ValueError("tls: set TLS here or in the web configuration file's "
                             "tls_server_config, not both")
        if self.auth is not None and web.basic_auth_users:
            raise ValueError("auth: set credentials here or in the web configuration file's "
                             "basic_auth_users, not both")
        return self

    def web(self) -> WebConfig:
        """The web configuration file's settings (none when no file is given)."""
        if self.web_config_file is None:
            return WebConfig()
        try:
            return load_web_config(self.web_config_file)
        except WebConfigError as exc:
            raise ValueError(f"web_config_file {self.web_config_file}: {exc}") from None


class MetricsConfig(Strict):
    """What /metrics exposes."""

    per_partition: bool = True  # the lagwatch_partition_* families


class DetectionConfig(Strict):
    """How statuses are judged from history (see the README's Statuses section)."""

    window: Duration = 1800.0
    min_duration: Duration = 120.0
    stall_after: Duration = 60.0
    retention_horizon: Duration = 6 * 3600.0
    retention_refresh: Duration = 600.0
    significance: float = Field(default=2.33, gt=0)
    max_samples: int = Field(default=240, ge=10, le=10000)

    def settings(self) -> Settings:
        """Return the knobs the pure detection rules take."""
        return Settings(window_s=self.window, min_duration_s=self.min_duration,
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

    lag_skew_share: float = Field(default=0.8, gt=0.5, le=1.0)
    lag_skew_min_messages: int = Field(default=100, ge=1)
    hot_partition_ratio: float = Field(default=2.0, gt=1.0)
    hot_partition_min_rate: float = Field(default=1.0, ge=0)
    max_rebalances_per_hour: float = Field(default=6.0, gt=0)
    max_rebalancing_share: float = Field(default=0.2, gt=0, le=1.0)
    rebalance_episode: Duration = 15.0
    disk_horizon: Duration = 6 * 3600.0

    def churn(self, window_s: float) -> ChurnSettings:
        """Return when rebalance churn becomes a finding."""
        return ChurnSettings(window_s=window_s, max_per_hour=self.max_rebalances_per_hour,
                             max_rebalancing_share=self.max_rebalancing_share,
                             episode_gap_s=self.rebalance_episode)

    def settings(self, cluster: ClusterConfig, memory_s: float) -> HealthSettings:
        """Return the knobs the pure finding rules take, for one cluster."""
        return HealthSettings(lag_skew_share=self.lag_skew_share,
                              lag_skew_min_messages=self.lag_skew_min_messages,
                              hot_partition_ratio=self.hot_partition_ratio,
                              hot_partition_min_rate=self.hot_partition_min_rate,
                              expected_brokers=cluster.expected_brokers, memory_s=memory_s,
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


class Config(Strict):
    """The whole configuration."""

    clusters: list[ClusterConfig] = Field(min_length=1)
    poll_interval: Duration = 30.0
    http: HttpConfig = Field(default_factory=HttpConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    dlq: DlqConfig = Field(default_factory=DlqConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    state_dir: str = "/var/lib/lagwatch"
    persist: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def secrets(self) -> list[str]:
        """Every secret the configuration holds (passwords, tokens, keys, webhook URLs),
        so logs can be scrubbed of them."""
        found = [c.security.secret(name) for c in self.clusters
                 for name in ("password", "key_password")]
        if self.http.auth is not None:
            found += [self.http.auth.secret("password"), self.http.auth.secret("bearer_token")]
        for r in self.alerting.receivers:
            if r.slack is not None:
                found += [r.slack.bot_token(), r.slack.hook_url()]
            if r.pagerduty is not None:
                found.append(r.pagerduty.key())
            if r.webhook is not None:
                found.append(r.webhook.secret())
        return [s for s in found if s]

    @field_validator("clusters")
    @classmethod
    def _unique_names(cls, clusters: list[ClusterConfig]) -> list[ClusterConfig]:
        seen: set[str] = set()
        for cluster in clusters:
            if cluster.name in seen:
                raise ValueError(f"cluster name {cluster.name!r} is used twice")
            seen.add(cluster.name)
        return clusters


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read, interpolate and validate a config file; apply command-line overrides on top."""
    raw = _read_yaml(path) if path else {}
    raw = _interpolate(raw, "")
    for key, value in (overrides or {}).items():
        if key == "bootstrap_servers":
            _override_bootstrap(raw, value)
        elif key in ("listen", "web_config_file"):
            raw.setdefault("http", {})
            if isinstance(raw["http"], dict):
                raw["http"][key] = value
        else:
            raw[key] = value
    if "clusters" not in raw:
        raise ConfigError("clusters: no cluster configured; pass --bootstrap-server HOST:PORT "
                          "or a config file with a clusters list")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def _override_bootstrap(raw: dict[str, Any], servers: object) -> None:
    clusters = raw.get("clusters")
    if not clusters:
        raw["clusters"] = [{"name": "default", "bootstrap_servers": servers}]
    elif isinstance(clusters, list) and len(clusters) == 1 and isinstance(clusters[0], dict):
        clusters[0]["bootstrap_servers"] = servers
    else:
        raise ConfigError("--bootstrap-server: the config file lists several clusters; "
                          "set bootstrap_servers in the file instead")


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        text = read_utf8(path)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path!r} cannot be read: {exc.strerror}") from None
    except NotUtf8Error as exc:
        raise ConfigError(f"config file {path!r} {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {path!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r}: expected a mapping of keys at the top level")
    return data


def _interpolate(node: Any, path: str) -> Any:
    """Replace ${NAME} in every string with the environment variable's value."""
    if isinstance(node, dict):
        return {key: _interpolate(value, join_key(path, key)) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, f"{path}[{i}]") for i, value in enumerate(node)]
    if isinstance(node, str):
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            return os.environ[name]
        return _ENV.sub(substitute, node)
    return node
