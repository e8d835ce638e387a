"""The HTTP endpoint: /metrics, /healthz, /readyz and the JSON status API, on one port."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from lagwatch.config import HttpConfig, describe
from lagwatch.deflate import gzip_length, gzip_stream, text_stream
from lagwatch.export import CONTENT_TYPE, Exporter
from lagwatch.notify.alerter import Alerter
from lagwatch.report import cluster_document, group_document, to_document
from lagwatch.state import State

log = logging.getLogger(__name__)
_STATUS_PREFIX = "/api/v1/status/"
_SILENCES_PREFIX = "/api/v1/silences/"
_MAX_BODY = 64 * 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip: named, or through *, with q above 0."""
    weights: dict[str, float] = {}
    for entry in accept_encoding.split(","):
        coding, *params = (part.strip() for part in entry.split(";"))
        q = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            weights[coding.lower()] = float(q)
        except ValueError:
            weights[coding.lower()] = 0.0
    return weights.get("gzip", weights.get("*", 0.0)) > 0


class _Handler(BaseHTTPRequestHandler):
    server: HttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        state = self.server.state
        if not self._authorized(path):
            return
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ready = state.ready(time.time())
            self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n",
                       "text/plain; charset=utf-8")
        elif path == "/api/v1/status":
            self._json(200, to_document(state.reports(), time.time(), state.clusters))
        elif path.startswith(_STATUS_PREFIX):
            cluster, _, group = path.removeprefix(_STATUS_PREFIX).partition("/")
            self._status_of(unquote(cluster), unquote(group) if group else None)
        elif path == "/api/v1/incidents":
            self._json(200, {"incidents": self.server.alerter.incident_documents(time.time())})
        elif path == "/api/v1/silences":
            self._json(200, {"silences": self.server.alerter.silence_documents(time.time())})
        elif path == "/":
            self._send(200, b"lagwatch: see /metrics, /healthz, /readyz, /api/v1/status, "
                       b"/api/v1/incidents, /api/v1/silences\n", "text/plain; charset=utf-8")
        else:
            self._json(404, {"error": f"no such endpoint: {path}"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if not self._authorized(path):
            return
        if path != "/api/v1/silences":
            self._json(404, {"error": f"no such endpoint: POST {path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(min(length, _MAX_BODY)) or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(400, {"error": f"the body is not JSON: {exc}"})
            return
        if not isinstance(body, dict):
            self._json(400, {"error": "the body must be a JSON object with ends and match"})
            return
        try:
            silence_id = self.server.alerter.add_silence(body)
        except ValidationError as exc:
            self._json(400, {"error": describe(exc)})
            return
        self._json(201, {"id": silence_id})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if not self._authorized(path):
            return
        if not path.startswith(_SILENCES_PREFIX):
            self._json(404, {"error": f"no such endpoint: DELETE {path}"})
        elif self.server.alerter.drop_silence(unquote(path.removeprefix(_SILENCES_PREFIX))):
            self._json(200, {"deleted": path.removeprefix(_SILENCES_PREFIX)})
        else:
            self._json(404, {"error": "no such silence (silences from the config file "
                                      "cannot be deleted here)"})

    def _authorized(self, path: str) -> bool:
        """Answer 401 and return False when the path needs credentials that were not given."""
        auth = self.server.auth
        if auth is None or not (path.startswith("/api/") or
                                (path == "/metrics" and auth.protect_metrics)):
            return True
        given = self.headers.get("Authorization", "")
        if auth.username is not None:
            expected = "Basic " + base64.b64encode(
                f"{auth.username}:{auth.secret('password')}".encode()).decode()
            challenge = 'Basic realm="lagwatch"'
        else:
            expected = f"Bearer {auth.secret('bearer_token')}"
            challenge = 'Bearer realm="lagwatch"'
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
        body = json.dumps({"error": "authentication required"}).encode() + b"\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", challenge)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return False

    def _status_of(self, cluster: str, group: str | None) -> None:
        report = self.server.state.report(cluster)
        if report is None:
            self._json(404, {"error": f"unknown cluster {cluster!r}"})
        elif group is None:
            self._json(200, cluster_document(report))
        elif (found := report.group(group)) is None:
            self._json(404, {"error": f"group {group!r} is not watched in cluster {cluster!r}"})
        else:
            self._json(200, group_document(found))

    def _metrics(self) -> None:
        pieces = self.server.exporter.pieces()
        gzipped = accepts_gzip(self.headers.get("Accept-Encoding", ""))
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Vary", "Accept-Encoding")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(gzip_length(pieces) if gzipped
                                               else sum(p.size for p in pieces)))
        self.end_headers()
        for chunk in gzip_stream(pieces) if gzipped else text_stream(pieces):
            self.wfile.write(chunk)

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._send(code, json.dumps(body, indent=2).encode() + b"\n", "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("http %s - %s", self.address_string(), format % args)


class HttpServer(ThreadingHTTPServer):
    """Serves lagwatch's endpoints from a background thread."""

    daemon_threads = True

    def __init__(self, config: HttpConfig, state: State, exporter: Exporter,
                 alerter: Alerter) -> None:
        listen = config.listen
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state = state
        self.exporter = exporter
        self.alerter = alerter
        self.auth = config.auth
        super().__init__((host, int(port)), _Handler)
        self.scheme = "http"
        if config.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(config.tls.cert_file, config.tls.key_file)
            # the handshake happens in the handler's thread, so a slow client blocks only itself
            self.socket = context.wrap_socket(self.socket, server_side=True,
                                              do_handshake_on_connect=False)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)

    @property
    def url(self) -> str:
        """Return the base URL a person on this machine can open."""
        host, port = str(self.server_address[0]), self.server_address[1]
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reachable locally
            host = "127.0.0.1"
        return (f"{self.scheme}://[{host}]:{port}" if ":" in host
                else f"{self.scheme}://{host}:{port}")

    def start(self) -> HttpServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
