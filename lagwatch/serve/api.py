"""The HTTP application: /metrics, /healthz, /readyz and the JSON status API.

Starlette routing (HEAD for every GET, 405 with ``Allow``); endpoints that read lagwatch's
state are plain functions Starlette runs in its thread pool, so the event loop only moves
bytes. A request's body must arrive within 10 s of its headers and hold at most 64 KiB
(413 beyond). lagwatch.serve.server runs it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lagwatch.alerting.alerter import Alerter
from lagwatch.alerting.sharing import NotSharedError
from lagwatch.audit.items import ClusterAudit
from lagwatch.configtypes import describe
from lagwatch.patterns import Pattern, compile_request_pattern
from lagwatch.report.latest import LatestReports
from lagwatch.report.view import ClusterReport
from lagwatch.serve.auth import Credentials, FailedLogins
from lagwatch.serve.deflate import gzip_length, gzip_stream, text_stream
from lagwatch.serve.documents import (
    audit_document,
    cluster_document,
    group_document,
    incident_document,
    silence_document,
    to_document,
)
from lagwatch.serve.fleet import FleetStatus
from lagwatch.serve.metrics import CONTENT_TYPE, Exporter

MAX_BODY = 64 * 1024
BODY_TIMEOUT_S = 10.0
_NO_WRITES = ("changing silences needs credentials: set http.auth (basic or bearer) or "
              "basic_auth_users in the web configuration file (http.web_config_file)")


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


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(code, {"error": message}, headers)


_CHECKER = ThreadPoolExecutor(1, thread_name_prefix="lagwatch-bcrypt")  # one check at a time


class _Guard:
    """ASGI middleware: credentials where they are needed, and none means no writes.

    Credentials known good or bad (a token, a pair checked before) are judged on the event
    loop at no cost, so an honest scrape never waits behind a bcrypt check. A pair not seen
    before is checked on one thread of its own, one check at a time; a client address with
    too many failed checks in a minute is answered 429 without one (``FailedLogins``).
    """

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self.app, self.credentials = app, credentials
        self.failures = FailedLogins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        writes = scope["method"] in ("POST", "DELETE") and path.startswith("/api/v1/silences")
        refusal: Response | None = None
        if writes and not self.credentials.configured:
            refusal = _error(403, _NO_WRITES)
        elif self.credentials.needed(path) or writes:
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            refusal = await self._check(given, (scope.get("client") or ("?", 0))[0])
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await self.app(scope, receive, send)


    async def _check(self, given: str, client: str) -> Response | None:
        """The refusal of a request's credentials, or None when they are good."""
        ok = self.credentials.known(given) if given else False
        if ok is None:
            wait_s = self.failures.attempt(client, time.monotonic())
            if wait_s > 0:
                wait = f"{max(1, round(wait_s))}"
                return _error(429, f"too many failed logins from {client}; try again in "
                                   f"{wait}s", {"Retry-After": wait})
            ok = await asyncio.get_running_loop().run_in_executor(
                _CHECKER, self.credentials.accept, given)
            if ok:
                self.failures.passed(client)
        if ok:
            return None
        return _error(401, "authentication required",
                      {"WWW-Authenticate": self.credentials.challenge()})


class _PerPoll:
    """The status document, built once per set of reports (once a poll), not once a
    request: at 50,000 group-partitions a build takes a second, and 200 clients asking
    at once would each pay it (and keep the CPU from the poll, long after they gave up)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: list[ClusterReport] = []  # held, so their ids stay theirs
        self._body = b""

    def body(self, state: LatestReports) -> bytes:
        reports = state.reports()
        with self._lock:
            if [id(r) for r in reports] != [id(r) for r in self._reports] or not self._body:
                document = to_document(reports, time.time(), state.clusters)
                self._body = json.dumps(document, indent=2).encode() + b"\n"
                self._reports = reports
            return self._body


Audits = Callable[[Pattern | None], list[ClusterAudit]]
"""Audit every cluster's watched groups (those a pattern matches, when given)."""


class Endpoints:
    """The routes, over lagwatch's state, exporter and alerter (and its auditor)."""

    def __init__(self, state: LatestReports, exporter: Exporter, alerter: Alerter,
                 audits: Audits | None = None, fleet: FleetStatus | None = None) -> None:
        self.state, self.exporter, self.alerter = state, exporter, alerter
        self.audits = audits
        self.fleet = fleet  # with ha: the status of every replica's shards
        self._status = _PerPoll()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index), Route("/healthz", self.healthz),
            Route("/readyz", self.readyz), Route("/metrics", self.metrics),
            Route("/api/v1/status", self.status),
            Route("/api/v1/status/{cluster}", self.status_of),
            Route("/api/v1/status/{cluster}/{group:path}", self.status_of),
            Route("/api/v1/incidents", self.incidents),
            Route("/api/v1/audit", self.audit),
            Route("/api/v1/silences", self.silences, methods=["GET", "POST"]),
            Route("/api/v1/silences/{silence_id}", self.drop_silence, methods=["DELETE"]),
        ]

    def index(self, _request: Request) -> Response:
        return PlainTextResponse("lagwatch: see /metrics, /healthz, /readyz, /api/v1/status, "
                                 "/api/v1/incidents, /api/v1/silences, /api/v1/audit\n")

    def healthz(self, _request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def readyz(self, _request: Request) -> Response:
        ready = self.state.ready(time.time())
        # a state file that cannot be written is said, not made a reason to stop serving
        said = "".join(f"state file: {why}; lagwatch runs from memory\n"
                       for why in self.alerter.state_problems)
        return PlainTextResponse(("ready\n" if ready else "not ready\n") + said,
                                 200 if ready else 503)

    def metrics(self, request: Request) -> Response:
        pieces = self.exporter.pieces()
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))
        headers = {"Vary": "Accept-Encoding", "Content-Length": str(
            gzip_length(pieces) if gzipped else sum(p.size for p in pieces))}
        if gzipped:  # a few megabytes at most, already compressed: written in one go
            headers["Content-Encoding"] = "gzip"
            return Response(b"".join(gzip_stream(pieces)), headers=headers,
                            media_type=CONTENT_TYPE)
        chunks: Iterator[bytes] = text_stream(pieces)  # decompressed a megabyte at a time
        return StreamingResponse(chunks, headers=headers, media_type=CONTENT_TYPE)

    def status(self, _request: Request) -> Response:
        if self.fleet is not None:
            return _json(200, self.fleet.document(time.time()))
        return Response(self._status.body(self.state), media_type="application/json")

    def status_of(self, request: Request) -> Response:
        cluster = request.path_params["cluster"]
        group = request.path_params.get("group") or None
        if self.fleet is not None:
            return self._fleet_status_of(cluster, group)
        report = self.state.report(cluster)
        if report is None:
            return _error(404, f"unknown cluster {cluster!r}")
        if group is None:
            return _json(200, cluster_document(report))
        found = report.group(group)
        if found is None:
            return _error(404, _unwatched(cluster, group))
        return _json(200, group_document(found))

    def _fleet_status_of(self, cluster: str, group: str | None) -> Response:
        assert self.fleet is not None
        document = self.fleet.clusters_now().get(cluster)
        if document is None:
            return _error(404, f"unknown cluster {cluster!r}")
        if group is None:
            return _json(200, document)
        found = document["groups"].get(group)
        if found is None:
            return _error(404, _unwatched(cluster, group))
        return _json(200, found)

    def audit(self, request: Request) -> Response:
        if self.audits is None:
            return _error(404, "no such endpoint: /api/v1/audit")
        text = request.query_params.get("group")
        try:
            groups = compile_request_pattern(text) if text is not None else None
        except ValueError as exc:
            return _error(400, f"group: {exc}")
        if not any(r.last_success is not None for r in self.state.reports()):
            return _error(503, "no poll has finished yet: nothing to audit")
        audits = self.audits(groups)
        if groups is not None and not any(a.groups for a in audits):
            return _error(404, f"group {text!r} matches none of the watched groups")
        return _json(200, audit_document(audits, time.time()))

    def incidents(self, _request: Request) -> Response:
        return _json(200, {"incidents": [incident_document(i, silenced) for i, silenced
                                          in self.alerter.incidents(time.time())]})

    async def silences(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._add_silence(request)
        now = time.time()
        silences = await asyncio.to_thread(self.alerter.silences)
        documents = [silence_document(sid, s, now) for sid, s in silences]
        return _json(200, {"silences": documents})

    async def _add_silence(self, request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object with ends and match")
        try:
            silence_id = await asyncio.to_thread(self.alerter.add_silence, body, time.time())
        except ValidationError as exc:
            return _error(400, describe(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        except NotSharedError as exc:
            return _error(503, str(exc))
        return _json(201, {"id": silence_id})

    async def drop_silence(self, request: Request) -> Response:
        silence_id = request.path_params["silence_id"]
        try:
            dropped = await asyncio.to_thread(self.alerter.drop_silence, silence_id)
        except NotSharedError as exc:
            return _error(503, str(exc))
        if dropped:
            return _json(200, {"deleted": silence_id})
        return _error(404, "no such silence (silences from the config file cannot be "
                           "deleted here)")


def _unwatched(cluster: str, group: str) -> str:
    return f"group {group!r} is not watched in cluster {cluster!r}"


async def _body(request: Request) -> Any:
    """The request's JSON body, or the error response that refuses it."""
    too_large = _error(413, f"the body is over {MAX_BODY:,} bytes", {"Connection": "close"})
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > MAX_BODY:  # h11 checked it is a number
        return too_large
    try:
        raw = await asyncio.wait_for(_read(request), BODY_TIMEOUT_S)
    except TimeoutError:
        return _error(408, f"the body did not arrive within {BODY_TIMEOUT_S:g} s",
                      {"Connection": "close"})
    if raw is None:
        return too_large
    try:
        return json.loads(raw or b"null")
    except RecursionError:
        return _error(400, "the body is not JSON: nested too deeply")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"the body is not JSON: {exc}")


async def _read(request: Request) -> bytes | None:
    """The body, or None once it is over MAX_BODY."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return None
    return bytes(raw)


def _json(code: int, body: dict[str, Any], headers: dict[str, str] | None = None
          ) -> Response:
    return Response(json.dumps(body, indent=2).encode() + b"\n", code, headers=headers,
                    media_type="application/json")


async def _not_found(request: Request, _exc: Exception) -> Response:
    method = "" if request.method in ("GET", "HEAD") else f"{request.method} "
    return _error(404, f"no such endpoint: {method}{request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    given = (exc.headers or {}).get("Allow", "") if isinstance(exc, HTTPException) else ""
    allow = ", ".join(sorted(m.strip() for m in given.split(",") if m.strip()))
    return _error(405, f"{request.method} is not allowed on {request.url.path}"
                       f"{f' (allowed: {allow})' if allow else ''}", {"Allow": allow})


def build_app(endpoints: Endpoints, credentials: Credentials) -> ASGIApp:
    """The whole HTTP application."""
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        404: _not_found, 405: _not_allowed}
    app = Starlette(routes=endpoints.routes(), exception_handlers=handlers)
    app.router.redirect_slashes = False
    return _Guard(_Slashless(app), credentials)


class _Slashless:
    """ASGI middleware: ``/metrics/`` is ``/metrics``, as it always was."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = {**scope, "path": scope["path"].rstrip("/") or "/"}
        await self.app(scope, receive, send)
