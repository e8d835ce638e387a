"""Why a Kafka call failed: exceptions in one line, and connection failures from
kafka-python's own log records.

kafka-python reports a failed bootstrap as a bare timeout ("Unable to bootstrap from …")
and logs the reason (a refused connection, a certificate the CA did not sign, a wrong
SCRAM password) from its IO thread, which it names after the client id. This handler keeps
the last such reason per IO thread, so each cluster's collector (client id
``lagwatch-<cluster>``) can say what went wrong. kafka-python's records are not printed
unless the log level is debug.
"""

from __future__ import annotations

import logging
import re
import threading

from kafka.errors import KafkaError

FAILURES = (KafkaError, OSError, ValueError)  # what a call to Kafka may raise

_FAILED = re.compile(r"^(?:Bootstrap connection to \S+ failed|Connection failed): (.+?)"
                     r"(?: \(backoff [\d.]+ secs\))?$")
_DECISIVE = re.compile(r"Authentication|Authorization|SSL|certificate|Handshake")
_PREFIX = re.compile(r"^(?:\[Error \d+\] )?(\w+): (?=\1: )")  # "[Error 58] X: X: text"


class ConnectionCauses(logging.Handler):
    """The last connection failure kafka-python logged, per client id."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lock = threading.Lock()
        self._causes: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _FAILED.match(record.getMessage())
        if match is None or not record.threadName:
            return
        cause = _PREFIX.sub("", " ".join(match.group(1).split()))
        client = record.threadName.removeprefix("kafka-io-")
        with self._lock:
            # a broker that refused our credentials or certificate then drops or times out
            # the next attempts: the first such reason is the one worth telling
            if not _DECISIVE.search(self._causes.get(client, "")):
                self._causes[client] = cause

    def take(self, client_id: str) -> str | None:
        """Return and forget the last failure of a client's connections."""
        with self._lock:
            return self._causes.pop(client_id, None)


CAUSES = ConnectionCauses()


def install(debug: bool) -> None:
    """Capture kafka-python's connection failures; print its records only when debugging."""
    kafka = logging.getLogger("kafka")
    if CAUSES not in kafka.handlers:
        kafka.addHandler(CAUSES)
    kafka.setLevel(logging.DEBUG if debug else logging.WARNING)
    kafka.propagate = debug


def brief(exc: BaseException) -> str:
    """Return a one-line description of an exception, short enough for a log or a label."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if name in text:
        text = text[text.index(name):]
    elif text:
        text = f"{name}: {text}"
    else:
        text = name
    return text if len(text) <= 200 else text[:197] + "..."
