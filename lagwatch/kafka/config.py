"""How lagwatch reaches each Kafka cluster it watches: the ``clusters[]`` section."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from lagwatch.configtypes import (
    Duration,
    HostPort,
    Regex,
    Strict,
    read_secret_file,
    secret_of,
    server_list,
)
from lagwatch.patterns import ANY

RECONNECT_BACKOFF_MAX_MS = 1000  # cap on the wait between connection attempts to a broker


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
