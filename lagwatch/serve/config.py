"""Where and how lagwatch serves HTTP: the ``http`` and ``metrics`` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator, model_validator

from lagwatch.configtypes import HostPort, Strict, read_secret_file, require_ascii, secret_of
from lagwatch.serve.webconfig import TlsServerConfig, WebConfig, WebConfigError, load_web_config

DEFAULT_LISTEN = "0.0.0.0:9391"
MIN_TOKEN = 16  # characters of lagwatch's own bearer token


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
