"""A fix to kafka-python 3.0's socket reads: bytes that arrive just before a close count.

kafka-python reads a socket until it would block, and when that read ends at the peer's
close it reports only the close ("socket disconnected") and drops the bytes read before
it. A broker that refuses a SCRAM password answers with the reason and then closes the
connection (after ``connection.failed.authentication.delay.ms``, 100 ms by default), so a
client that reads late, on a busy host, lost the reason and lagwatch said "socket
disconnected" instead of "invalid credentials".

The fix hands the bytes over first and leaves the close for the next read, which finds it
again: a socket at end of stream keeps reporting it, and a reset one reports end of
stream after the reset.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

_Recv = Callable[[Any], tuple[bytes, Exception | None]]


def _deliver_before_closing(sock_recv: _Recv) -> _Recv:
    @functools.wraps(sock_recv)
    def recv(transport: Any) -> tuple[bytes, Exception | None]:
        data, err = sock_recv(transport)
        return (data, None) if data else (data, err)

    recv.lagwatch_fixed = True  # type: ignore[attr-defined]
    return recv


def apply() -> None:
    """Patch both transports once (idempotent)."""
    for transport in (KafkaTCPTransport, KafkaSSLTransport):
        own = transport.__dict__["_sock_recv"]
        if not getattr(own, "lagwatch_fixed", False):
            transport._sock_recv = _deliver_before_closing(own)
