"""Serves the HTTP application on one port, from a thread of its own.

uvicorn with h11: strict request parsing, so no request smuggling or desync. Limits: a
listen backlog of 1,024, a request's headers within 10 s of connecting (or of the previous
response), an idle keep-alive connection closed after 5 s, at most 1,024 connections at
once (503 beyond).
"""

from __future__ import annotations

import asyncio
import socket
import threading

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lagwatch.alerting.alerter import Alerter
from lagwatch.report.latest import LatestReports
from lagwatch.serve.api import Audits, Endpoints, build_app
from lagwatch.serve.auth import Credentials
from lagwatch.serve.config import HttpConfig
from lagwatch.serve.fleet import FleetStatus
from lagwatch.serve.metrics import Exporter
from lagwatch.serve.webconfig import BasicUsers, ReloadingTls

BACKLOG = 1024
HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 1024


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers.

    uvicorn times out idle keep-alive connections only after a response; a client that
    connects and sends nothing, or a header a byte at a time, would hold its connection
    for good.
    """

    tls: ReloadingTls | None = None  # set on the subclass each server makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.tls is not None:
            self.tls.completed(transport.get_extra_info("ssl_object"))
        self._deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._deadline()

    def _deadline(self) -> None:
        self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late, self.cycle)

    def _headers_late(self, cycle: object) -> None:
        if self.cycle is cycle and self.conn.their_state is h11.IDLE:
            self.transport.close()


def _listening_socket(listen: str) -> socket.socket:
    """Bind and listen now, so a busy port fails at start and early clients queue."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class HttpServer:
    """Serves lagwatch's endpoints from a background thread."""

    def __init__(self, config: HttpConfig, state: LatestReports, exporter: Exporter,
                 alerter: Alerter, audits: Audits | None = None, *,
                 fleet: FleetStatus | None = None) -> None:
        web = config.web()
        self.credentials = credentials = Credentials(config.auth,
                                                     BasicUsers(web.basic_auth_users))
        self.tls = ReloadingTls(web.tls_server_config) if web.tls_server_config else None
        if self.tls is None and config.tls is not None:
            self.tls = ReloadingTls(config.tls.server_config())
        self._socket = _listening_socket(config.listen)
        protocol = type("Protocol", (_Protocol,), {"tls": self.tls})
        self.config = uvicorn.Config(
            build_app(Endpoints(state, exporter, alerter, audits, fleet), credentials),
            http=protocol,
            ws="none", lifespan="off", loop="asyncio", log_config=None, access_log=False,
            server_header=False, proxy_headers=False, backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=5, h11_max_incomplete_event_size=16 * 1024)
        self.config.load()
        self.config.ssl = self.tls.context if self.tls else None
        self._server = uvicorn.Server(self.config)  # signals: the daemon's (not main thread)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    @property
    def address(self) -> tuple[str, int]:
        """The host and port it listens on."""
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Return the base URL a person on this machine can open."""
        host, port = self.address
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reachable locally
            host = "127.0.0.1"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def start(self) -> HttpServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (5 s at most), close."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(15)
        self._socket.close()
