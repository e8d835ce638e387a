"""Regular expressions that users and API clients give, compiled with RE2.

RE2 matches in time linear in the subject's length whatever the pattern, so no pattern
in a config file or a silence can hold the daemon (Python's ``re`` backtracks: ``(.*)*x``
against a 37-character group name never finishes). It is also the engine and the dialect
of Prometheus's and Alertmanager's matchers: no backreferences, no lookaround.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each refusal on stderr; the error says it


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


def compile_pattern(text: str) -> Pattern:
    """Compile an RE2 pattern; raise ValueError saying why RE2 refuses it."""
    try:
        compiled: Any = re2.compile(text, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid regex {text!r}: {reason} (patterns are RE2, as in "
                         "Prometheus: no backreferences or lookaround)") from None
    return compiled  # type: ignore[no-any-return]


ANY = compile_pattern(".*")
