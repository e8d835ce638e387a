"""Local HTTP servers that answer as the Slack Web API and PagerDuty Events API v2 do.

Each records every request it gets and can be told to answer the next requests with
failures first (429 with Retry-After, 5xx, 400, Slack's ``ok: false``).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Call:
    """One request the fake received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int = 0


@dataclass(frozen=True)
class Failure:
    """An answer to give instead of success: a status, headers, and a body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()


class FakeApi(ThreadingHTTPServer):
    """Base: records calls, plays queued failures, then answers with ``succeed``."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.calls: list[Call] = []
        self.failures: deque[Failure] = deque()
        self.delay_s = 0.0  # how long to take over each answer
        self.in_flight = False  # True while a request waits for its answer
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """Return the base URL."""
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def fail_next(self, *failures: Failure) -> None:
        """Answer the next requests with these failures, in order."""
        with self.lock:
            self.failures.extend(failures)

    def answer(self, call: Call) -> tuple[int, dict[str, Any], tuple[tuple[str, str], ...]]:
        """Return (status, body, headers) for a call."""
        with self.lock:
            failure = self.failures.popleft() if self.failures else None
        if failure is not None:
            return failure.status, failure.body, failure.headers
        return self.succeed(call)

    def succeed(self, call: Call) -> tuple[int, dict[str, Any], tuple[tuple[str, str], ...]]:
        raise NotImplementedError

    def accepted(self, path: str | None = None) -> list[Call]:
        """Return the calls answered with success (2xx, and ok for Slack)."""
        with self.lock:
            return [c for c in self.calls if 200 <= c.status < 300
                    and (path is None or c.path == path)
                    and c.body.get("_answer_ok", True)]


class _Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def do_POST(self) -> None:
        import time

        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(raw or "{}")
        else:
            body = dict(parse_qsl(raw))
        call = Call(self.path, body, {k.lower(): v for k, v in self.headers.items()},
                    time.time())
        self.server.in_flight = True
        time.sleep(self.server.delay_s)
        status, answer, headers = self.server.answer(call)
        call.status = status
        if status == 200 and answer.get("ok") is False:
            call.body["_answer_ok"] = False
        with self.server.lock:
            self.server.calls.append(call)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.server.in_flight = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class FakeSlack(FakeApi):
    """chat.postMessage and chat.update, with a ts per posted message."""

    CHANNEL_ID = "C0LAGWATCH"

    def __init__(self) -> None:
        super().__init__()
        self._next_ts = 0

    @property
    def api_url(self) -> str:
        """Return the base URL to give slack-sdk's WebClient."""
        return f"{self.url}/api/"

    def succeed(self, call: Call) -> tuple[int, dict[str, Any], tuple[tuple[str, str], ...]]:
        if call.path.endswith("chat.postMessage"):
            with self.lock:
                self._next_ts += 1
                ts = f"1790000000.{self._next_ts:06d}"
            return 200, {"ok": True, "channel": self.CHANNEL_ID, "ts": ts}, ()
        if call.path.endswith("chat.update"):
            return 200, {"ok": True, "channel": self.CHANNEL_ID,
                         "ts": call.body.get("ts")}, ()
        return 200, {"ok": True}, ()  # an incoming webhook answers "ok" (text) in reality

    def posts(self) -> list[Call]:
        """Return the accepted chat.postMessage calls."""
        return [c for c in self.accepted() if c.path.endswith("chat.postMessage")]

    def updates(self) -> list[Call]:
        """Return the accepted chat.update calls."""
        return [c for c in self.accepted() if c.path.endswith("chat.update")]


def rate_limited(retry_after_s: int = 1) -> Failure:
    """Slack's answer when over the rate limit."""
    return Failure(429, {"ok": False, "error": "ratelimited"},
                   (("Retry-After", str(retry_after_s)),))


def slack_error(error: str) -> Failure:
    """Slack's answer to a request it refuses: HTTP 200 with ok false."""
    return Failure(200, {"ok": False, "error": error})


class FakePagerDuty(FakeApi):
    """POST /v2/enqueue: 202 for a valid event; keeps which dedup keys are open.

    PagerDuty's client only talks HTTPS, so this fake serves TLS with a test certificate.
    """

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(tls)
        self.open: set[str] = set()

    def succeed(self, call: Call) -> tuple[int, dict[str, Any], tuple[tuple[str, str], ...]]:
        body = call.body
        key = body.get("dedup_key")
        action = body.get("event_action")
        if call.path != "/v2/enqueue" or action not in ("trigger", "resolve") or not key:
            return 400, {"status": "invalid event", "message": "Event object is invalid",
                         "errors": ["bad event"]}, ()
        if action == "trigger":
            payload = body.get("payload") or {}
            if not all(payload.get(k) for k in ("summary", "severity", "source")):
                return 400, {"status": "invalid event", "message": "payload incomplete"}, ()
            with self.lock:
                self.open.add(key)
        else:
            with self.lock:
                self.open.discard(key)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, ()

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        """Return the accepted events' bodies."""
        return [c.body for c in self.accepted("/v2/enqueue")
                if action is None or c.body.get("event_action") == action]


@contextmanager
def serving(api: FakeApi) -> Iterator[FakeApi]:
    """Stop the fake server when done."""
    try:
        yield api
    finally:
        api.shutdown()
        api.server_close()
