"""Value types shared by every configuration section: durations, regexes (RE2), secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
)

from lagwatch.patterns import Pattern, compile_pattern, compile_request_pattern

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


def compile_regex(value: object, info: ValidationInfo) -> Pattern:
    """A pattern from a file; one from a request (validation context ``request``) gets
    the smaller budget of ``compile_request_pattern``."""
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string (got {value!r})")
    if info.context and info.context.get("request"):
        return compile_request_pattern(value)
    return compile_pattern(value)


def require_ascii(value: str | None, what: str) -> None:
    """Refuse a value that must travel in an HTTP request line or header but cannot: not
    printable ASCII, or with a space. The message names it without the value."""
    if value is not None and not (value.isascii() and value.isprintable() and " " not in value):
        raise ValueError(f"{what} must be printable ASCII without spaces (percent-encode "
                         "other characters in a URL)")


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
Regex = Annotated[Pattern, PlainValidator(compile_regex),
                  PlainSerializer(lambda p: p.pattern, return_type=str)]
HostPort = Annotated[str, BeforeValidator(host_port)]


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are frozen, inputs never echoed."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TextFileError(ValueError):
    """A file lagwatch reads is not UTF-8 text, or is larger than a config may be."""


MAX_TEXT_FILE = 1 << 20  # bytes: a config, a web config or a secret file
MAX_YAML_VALUES = 100_000  # what a YAML document may hold once its aliases are expanded


def read_utf8(path: str) -> str:
    """Read a text file as UTF-8; one that is not, or larger than MAX_TEXT_FILE, raises
    TextFileError saying so (with the offset of its first bad byte, never the byte: the
    file may hold a secret)."""
    with Path(path).open("rb") as file:
        data = file.read(MAX_TEXT_FILE + 1)
    if len(data) > MAX_TEXT_FILE:
        raise TextFileError(f"is larger than {MAX_TEXT_FILE:,} bytes, the most lagwatch "
                            "reads of a configuration file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextFileError(f"is not UTF-8 text (the first byte that is not is at offset "
                            f"{exc.start:,})") from None


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, refusing (yaml.YAMLError) a document whose aliases would expand
    to more than MAX_YAML_VALUES values (an alias bomb of a few hundred bytes would take
    minutes and gigabytes), or nested too deeply to read, before anything is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded(node, {}) > MAX_YAML_VALUES:
            raise yaml.YAMLError(f"it holds more than {MAX_YAML_VALUES:,} values once its "
                                 "aliases are expanded, more than lagwatch reads (an alias "
                                 "bomb?)")
        return None if node is None else loader.construct_document(node)
    except RecursionError:
        raise yaml.YAMLError("it is nested too deeply to read") from None
    finally:
        loader.dispose()


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values a node stands for once every alias in it is expanded (each node
    worked out once, so a bomb costs what its text does)."""
    if id(node) not in sizes:
        children: list[yaml.Node] = (
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
            else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        sizes[id(node)] = min(1 + sum(_expanded(c, sizes) for c in children),
                              MAX_YAML_VALUES + 1)
    return sizes[id(node)]


def read_secret_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return read_utf8(path).strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror}") from None
    except TextFileError as exc:
        raise ValueError(f"{path!r} {exc}") from None


def secret_of(section: BaseModel, name: str) -> str | None:
    """Return a section's secret ``name`` from its inline value or its ``name_file``."""
    inline: SecretStr | None = getattr(section, name)
    if inline is not None:
        return inline.get_secret_value()
    return read_secret_file(getattr(section, f"{name}_file"))


_SECRET_WORDS = ("password", "token", "secret", "key", "webhook", "url")


def describe(exc: ValidationError) -> str:
    """Turn pydantic's first error into one line: key path, then what is wrong.

    A value is echoed only under a key that cannot hold a secret (a password, a token,
    a key, an HMAC secret, a webhook URL or an integration key never is).
    """
    error = exc.errors()[0]
    path = ""
    for part in error["loc"]:
        path = f"{path}[{part}]" if isinstance(part, int) else join_key(path, part)
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if message.startswith("Input should be"):
            message = message.replace("Input should be", "must be", 1)
            if not any(word in path.lower() for word in _SECRET_WORDS):
                message += f" (got {error['input']!r})"
    return f"{path}: {message}" if path else message


def join_key(path: str, key: object) -> str:
    """A key path with one more key: `http.auth`, then `http.auth.password`."""
    return f"{path}.{key}" if path else str(key)
