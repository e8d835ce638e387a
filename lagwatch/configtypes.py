"""Value types shared by every configuration section: durations, regexes, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Return seconds for 500ms, 30s, 5m, 1h, 1d or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use 500ms, 30s, 5m, 1h or seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            msg = f"invalid duration {value!r}: use 500ms, 30s, 5m, 1h or seconds"
            raise ValueError(msg)
        seconds = float(match.group(1)) * _UNITS_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration must be positive (got {value!r})")
    return seconds


def compile_regex(value: object) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string (got {value!r})")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex {value!r}: {exc}") from None


def host_port(value: object) -> str:
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (got {value!r})")
    return text


def server_list(value: object) -> object:
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Regex = Annotated[re.Pattern[str], BeforeValidator(compile_regex)]
HostPort = Annotated[str, BeforeValidator(host_port)]


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are frozen, inputs never echoed."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def read_secret_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror}") from None


def secret_of(section: BaseModel, name: str) -> str | None:
    """Return a section's secret ``name`` from its inline value or its ``name_file``."""
    inline: SecretStr | None = getattr(section, name)
    if inline is not None:
        return inline.get_secret_value()
    return read_secret_file(getattr(section, f"{name}_file"))
