"""Regular expressions that users and API clients give, compiled with RE2.

RE2 matches in time linear in the subject's length whatever the pattern, so no pattern
in a config file or a silence can hold the daemon (Python's ``re`` backtracks: ``(.*)*x``
against a 37-character group name never finishes). It is also the engine and the dialect
of Prometheus's and Alertmanager's matchers: no backreferences, no lookaround.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Protocol

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each refusal on stderr; the error says it
# Patterns from requests (audit, silences made through the API) get a smaller budget: a
# pattern whose program outgrows it (\pL{1000}) is refused in milliseconds, not compiled
_REQUEST_OPTIONS = re2.Options()
_REQUEST_OPTIONS.log_errors = False
_REQUEST_OPTIONS.max_mem = 2 << 20
MAX_REQUEST_PATTERN = 1024  # characters
_ONE_AT_A_TIME = threading.Lock()


class Match(Protocol):
    """What lagwatch reads of a match."""

    def group(self, name: str | int = 0, /) -> str: ...


class Pattern(Protocol):
    """A compiled pattern: the calls lagwatch makes of it."""

    @property
    def pattern(self) -> str: ...
    @property
    def groupindex(self) -> dict[str, int]: ...
    def search(self, text: str) -> Match | None: ...
    def match(self, text: str) -> Match | None: ...
    def fullmatch(self, text: str) -> Match | None: ...


def compile_pattern(text: str, options: Any = _OPTIONS) -> Pattern:
    """Compile an RE2 pattern; raise ValueError saying why RE2 refuses it."""
    try:
        compiled: Any = re2.compile(text, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid regex {text!r}: {reason} (patterns are RE2, as in "
                         "Prometheus: no backreferences or lookaround)") from None
    return compiled  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def compile_request_pattern(text: str) -> Pattern:
    """Compile a pattern a request gave: at most MAX_REQUEST_PATTERN characters, a 2 MB
    program, one compile at a time, and a pattern asked again is not compiled again."""
    if len(text) > MAX_REQUEST_PATTERN:
        raise ValueError(f"invalid regex: {len(text):,} characters, more than the "
                         f"{MAX_REQUEST_PATTERN:,} a request may give")
    with _ONE_AT_A_TIME:
        return compile_pattern(text, _REQUEST_OPTIONS)


ANY = compile_pattern(".*")
