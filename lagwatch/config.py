"""Load and validate lagwatch's YAML configuration.

Every problem becomes one ConfigError whose text names the key path, e.g.
``clusters[0].security.protocol: must be one of 'PLAINTEXT', ... (got 'TLS')``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from lagwatch.alerting.config import AlertingConfig
from lagwatch.audit.config import AuditConfig
from lagwatch.configtypes import (
    Duration,
    Strict,
    TextFileError,
    describe,
    join_key,
    load_yaml,
    read_utf8,
)
from lagwatch.detect.config import DetectionConfig, DlqConfig, HealthConfig
from lagwatch.ha.config import HaConfig
from lagwatch.kafka.config import ClusterConfig
from lagwatch.serve.config import HttpConfig, MetricsConfig

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The configuration is unusable; the message is one line that names the key path."""


class Config(Strict):
    """The whole configuration."""

    clusters: list[ClusterConfig] = Field(min_length=1)
    poll_interval: Duration = 30.0
    poll_threads: int = Field(default=16, ge=1, le=256)  # polls of different clusters at once
    http: HttpConfig = Field(default_factory=HttpConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    dlq: DlqConfig = Field(default_factory=DlqConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    ha: HaConfig | None = None  # None: one process watches everything
    state_dir: str = Field(default_factory=lambda: os.environ.get("LAGWATCH_STATE_DIR")
                           or "/var/lib/lagwatch")
    persist: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def secrets(self) -> list[str]:
        """Every secret the configuration holds (passwords, tokens, keys, webhook URLs),
        so logs can be scrubbed of them."""
        found = [c.security.secret(name) for c in self.clusters
                 for name in ("password", "key_password")]
        if self.http.auth is not None:
            found += [self.http.auth.secret("password"), self.http.auth.secret("bearer_token")]
        if self.ha is not None:
            found += [key.decode() for key in self.ha.signing_keys()]
        for r in self.alerting.receivers:
            if r.slack is not None:
                found += [r.slack.bot_token(), r.slack.hook_url()]
            if r.pagerduty is not None:
                found.append(r.pagerduty.key())
            if r.webhook is not None:
                found += [r.webhook.secret(), *r.webhook.url_secrets()]
        return [s for s in found if s]

    @model_validator(mode="after")
    def _ha_cluster(self) -> Config:
        names = [c.name for c in self.clusters]
        if self.ha is not None and self.ha.cluster not in names:
            raise ValueError(f"ha.cluster: {self.ha.cluster!r} is not a configured cluster "
                             f"(clusters: {', '.join(names)})")
        return self

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
    except TextFileError as exc:
        raise ConfigError(f"config file {path!r} {exc}") from None
    try:
        data = load_yaml(text)
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
