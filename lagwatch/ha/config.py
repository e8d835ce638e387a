"""The ``ha`` config section: replicas that share the watching through a Kafka group."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from lagwatch.configtypes import Duration, Strict, read_secret_file
from lagwatch.ha.signing import parse_keys

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # what Kafka accepts as a topic name


class HaConfig(Strict):
    """Where the replicas meet: a consumer group on a compacted state topic of one of the
    watched clusters, whose partitions are the shards they share out."""

    cluster: str  # the name of a configured cluster to coordinate through
    group: str = Field(default="lagwatch-ha", min_length=1, max_length=249)
    topic: str = "lagwatch-state"
    shards: int = Field(default=12, ge=1, le=1000)
    replica: str | None = Field(default=None, min_length=1, max_length=200)  # host-pid
    session_timeout: Duration = 10.0  # how soon a silent replica's shards move
    key_file: str  # the keys every record on the state topic is signed with, one per line

    def signing_keys(self) -> list[bytes]:
        """The signing keys, first the one that signs (checked when the config loads)."""
        return parse_keys(read_secret_file(self.key_file) or "")

    @field_validator("key_file")
    @classmethod
    def _keys(cls, path: str) -> str:
        try:
            parse_keys(read_secret_file(path) or "")
        except ValueError as exc:
            message = str(exc)
            raise ValueError(message if message.startswith("cannot read")
                             else f"{path!r} {message}") from None
        return path

    @field_validator("replica")
    @classmethod
    def _replica(cls, name: str | None) -> str | None:
        if name is not None and not name.isprintable():
            raise ValueError("must be printable (no newline or control character)")
        return name

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, topic: str) -> str:
        if not _TOPIC.match(topic) or topic in (".", ".."):
            raise ValueError(f"invalid topic name {topic!r}: use 1 to 249 of a-z, A-Z, 0-9, "
                             "'.', '_' and '-'")
        return topic

    @field_validator("session_timeout")
    @classmethod
    def _session(cls, seconds: float) -> float:
        # the brokers' group.min.session.timeout.ms and group.max.session.timeout.ms
        if not 6.0 <= seconds <= 1800.0:
            raise ValueError("must be between 6s and 30m (the brokers' default group "
                             "session timeout bounds)")
        return seconds
